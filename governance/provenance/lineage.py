"""Registered datasets of a workspace: lookup, lineage (a DAG), and the checks ``verify`` runs.

Light: standard library and the evidence models only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from finetrail.errors import FinetrailError, InputError
from finetrail.governance.evidence.dataset import (
    DatasetRecord,
    dataset_record_path,
    leaves_artifact_path,
)
from finetrail.governance.evidence.registry import DATASETS_DIR
from finetrail.governance.findings import Finding
from finetrail.governance.io import sha256_file

if TYPE_CHECKING:
    from finetrail.governance.verify import VerifyContext

_HEX = re.compile(r"[0-9a-f]+")


def load_datasets(root: str | Path) -> dict[str, DatasetRecord]:
    """Every dataset record of the workspace, by SHA-256 (raises on an unreadable record)."""
    base = Path(root) / DATASETS_DIR
    out: dict[str, DatasetRecord] = {}
    if base.is_dir():
        for path in sorted(base.glob("*.json")):
            rec = DatasetRecord.read(path)
            out[rec.sha256] = rec
    return out


def resolve(datasets: Mapping[str, DatasetRecord], ref: str) -> DatasetRecord:
    """A dataset by full digest, a unique digest prefix (8+ hex digits) or a unique name."""
    ref = ref.strip()
    if ref in datasets:
        return datasets[ref]
    matches: list[DatasetRecord] = []
    if len(ref) >= 8 and _HEX.fullmatch(ref):
        matches = [r for d, r in datasets.items() if d.startswith(ref)]
    if not matches:
        matches = [r for r in datasets.values() if r.name == ref]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = (
            ", ".join(sorted(f"{r.name} ({r.sha256[:12]})" for r in datasets.values())) or "none"
        )
        raise InputError(
            f"no registered dataset matches {ref!r}",
            field="dataset",
            fix=f"give a digest, a digest prefix or a name; registered: {known}",
        )
    raise InputError(
        f"{ref!r} matches {len(matches)} datasets",
        field="dataset",
        fix="give the full SHA-256 digest",
    )


def ancestors(datasets: Mapping[str, DatasetRecord], parents: Iterable[str]) -> set[str]:
    """Every dataset reachable through ``derived_from`` from ``parents`` (parents included)."""
    seen: set[str] = set()
    stack = list(parents)
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        rec = datasets.get(d)
        if rec is not None:
            stack.extend(rec.derived_from)
    return seen


def lineage_problems(
    datasets: Mapping[str, DatasetRecord], sha256: str, parents: Iterable[str]
) -> list[str]:
    """Why a dataset with ``sha256`` cannot be derived from ``parents`` (empty if it can)."""
    problems = []
    parents = list(parents)
    for p in parents:
        if p not in datasets:
            problems.append(f"parent {p[:12]}... is not a registered dataset")
    if sha256 in ancestors(datasets, parents):
        problems.append(
            "the lineage would contain a cycle: this file is identical to one of its own ancestors"
        )
    return problems


def _cycles(datasets: Mapping[str, DatasetRecord]) -> list[list[str]]:
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(datasets, white)
    found: list[list[str]] = []
    for start in datasets:
        if colour[start] != white:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                colour[node] = grey
                path.append(node)
            parents = [p for p in datasets[node].derived_from if p in datasets]
            if i < len(parents):
                stack.append((node, i + 1))
                nxt = parents[i]
                if colour[nxt] == grey:
                    found.append([*path[path.index(nxt) :], nxt])
                elif colour[nxt] == white:
                    stack.append((nxt, 0))
            else:
                colour[node] = black
                path.pop()
    return found


def check_datasets(root: Path, ctx: VerifyContext) -> list[Finding]:
    """``verify`` check: records name their file, parents exist, no cycles, leaves match roots."""
    from finetrail.governance.provenance.merkle import root_of_leaves_file

    findings: list[Finding] = []
    base = root / DATASETS_DIR
    datasets: dict[str, DatasetRecord] = {}
    if base.is_dir():
        for path in sorted(base.glob("*.json")):
            rel = path.relative_to(root).as_posix()
            try:
                rec = DatasetRecord.read(path)
            except FinetrailError as err:
                findings.append(Finding("error", "invalid", rel, err.what))
                continue
            if rel != dataset_record_path(rec.sha256):
                findings.append(
                    Finding("error", "misplaced", rel, f"the record is for {rec.sha256[:12]}...")
                )
            if path.read_bytes() != rec.canonical_bytes():
                findings.append(Finding("error", "modified", rel, "not in canonical form"))
            datasets[rec.sha256] = rec
    for sha, rec in datasets.items():
        rel = dataset_record_path(sha)
        for parent in rec.derived_from:
            if parent not in datasets:
                findings.append(
                    Finding(
                        "error",
                        "lineage",
                        rel,
                        f"parent {parent[:12]}... is not a registered dataset",
                    )
                )
        leaves = root / rec.merkle.leaves_artifact
        if rec.merkle.leaves_artifact != leaves_artifact_path(sha):
            findings.append(
                Finding("error", "misplaced", rel, "the leaves artifact path does not match")
            )
        if not leaves.is_file():
            findings.append(
                Finding(
                    "error",
                    "missing",
                    rec.merkle.leaves_artifact,
                    "the record's leaf hashes are missing",
                )
            )
            continue
        if sha256_file(leaves) != rec.merkle.leaves_sha256:
            findings.append(
                Finding(
                    "error",
                    "modified",
                    rec.merkle.leaves_artifact,
                    "does not match the record's leaves_sha256",
                )
            )
            continue
        try:
            got_root, count = root_of_leaves_file(leaves)
        except FinetrailError as err:
            findings.append(Finding("error", "modified", rec.merkle.leaves_artifact, err.what))
            continue
        if count != rec.records or got_root.hex() != rec.merkle_root:
            findings.append(
                Finding(
                    "error",
                    "merkle",
                    rel,
                    "the leaf hashes do not rebuild the recorded Merkle root and count",
                )
            )
    for cycle in _cycles(datasets):
        shown = " -> ".join(d[:12] for d in cycle)
        findings.append(
            Finding("error", "lineage", dataset_record_path(cycle[0]), f"lineage cycle: {shown}")
        )
    artifacts = root / "artifacts" / "datasets"
    if artifacts.is_dir():
        for leaves in sorted(artifacts.glob("*.leaves")):
            if leaves.stem not in datasets:
                rel = leaves.relative_to(root).as_posix()
                findings.append(
                    Finding("warning", "orphan", rel, "leaf hashes without a dataset record")
                )
    return findings
