"""Canary planting: part of data preparation, before training.

m canaries of declared formats (:mod:`.formats`) are drawn; each is included independently with
probability 1/2 (the one-run audit needs that coin) and an included canary is repeated 1, 4 or 16
times (configurable; the exposure study). The augmented training JSONL is written, and the canary
set with its inclusion vector is committed to the workspace as ``artifacts/canaries.json``; the
ledger event ``canaries.committed`` carries the digests of the set and of the inclusion vector, so
anyone can later check that the canaries were fixed before training started.

The canary set is synthetic and lives under ``artifacts/`` (restricted); evidence refers to
canaries by id only.
"""

from __future__ import annotations

import json
import os
import random
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from finetrail.errors import InputError
from finetrail.governance.evidence.base import EvidenceRecord, Frozen
from finetrail.governance.evidence.registry import location
from finetrail.governance.io import (
    atomic_write_bytes,
    canonical_json,
    read_text_strict,
    sha256_bytes,
)
from finetrail.governance.probes.formats import CanaryFormat, format_by_name
from finetrail.governance.workspace import Workspace, default_actor

CANARIES_ARTIFACT = "artifacts/canaries.json"
COMMIT_EVENT = "canaries.committed"


class Canary(Frozen):
    id: str = Field(pattern=r"^c[0-9]{4,}$")
    format: str
    secret: str = Field(min_length=1)
    text: str
    repetitions: int = Field(ge=1, description="copies inserted when included")
    included: bool

    @property
    def copies(self) -> int:
        return self.repetitions if self.included else 0


class FileLineage(Frozen):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    records: int = Field(ge=0)


class Lineage(Frozen):
    """What the augmented dataset was derived from (for the provenance layer to register)."""

    transform: Literal["finetrail canaries plant"] = "finetrail canaries plant"
    source: FileLineage
    output: FileLineage
    text_field: str
    examples_added: int = Field(ge=0)


class CanarySet(EvidenceRecord):
    """``artifacts/canaries.json``: the canaries, their inclusion coins and the lineage."""

    record_type: Literal["canary_set"] = "canary_set"
    inclusion_probability: float = Field(gt=0, lt=1)
    repetition_cycle: tuple[int, ...]
    formats: dict[str, str] = Field(description="format name -> template")
    canaries: tuple[Canary, ...] = Field(min_length=1)
    canaries_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inclusion_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    lineage: Lineage | None = None

    @model_validator(mode="after")
    def _digests_match(self) -> CanarySet:
        if self.canaries_sha256 != canary_digest(self.canaries):
            raise ValueError("canaries_sha256 does not match the canaries")
        if self.inclusion_sha256 != inclusion_digest(self.canaries):
            raise ValueError("inclusion_sha256 does not match the inclusion vector")
        return self

    def format_of(self, canary: Canary) -> CanaryFormat:
        return format_by_name(canary.format)

    @property
    def included(self) -> tuple[Canary, ...]:
        return tuple(c for c in self.canaries if c.included)


def canary_digest(canaries: Sequence[Canary]) -> str:
    body = [
        {
            "id": c.id,
            "format": c.format,
            "secret": c.secret,
            "text": c.text,
            "repetitions": c.repetitions,
        }
        for c in canaries
    ]
    return sha256_bytes(canonical_json(body))


def inclusion_digest(canaries: Sequence[Canary]) -> str:
    return sha256_bytes("".join("1" if c.included else "0" for c in canaries).encode("ascii"))


def draw_canaries(
    *,
    formats: Sequence[CanaryFormat],
    m: int,
    repetitions: Sequence[int] = (1, 4, 16),
    inclusion_probability: float = 0.5,
    seed: int | None = None,
    avoid: Sequence[str] = (),
) -> list[Canary]:
    """Draw m canaries: format and repetition count by position, inclusion by a fair coin each.

    Secrets are unique and never occur in ``avoid`` (the texts they are planted into). Without a
    seed the draw uses the operating system's randomness.
    """
    if m < 1:
        raise InputError("need at least one canary", field="m")
    if not formats:
        raise InputError("no canary format given", field="formats")
    if not repetitions or any(r < 1 for r in repetitions):
        raise InputError("repetitions must be positive integers", field="repetitions")
    rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
    seen: set[str] = set()
    haystack = "\n".join(avoid)
    out = []
    for i in range(m):
        fmt = formats[i % len(formats)]
        reps = repetitions[(i // len(formats)) % len(repetitions)]
        for _ in range(1000):
            secret = fmt.random_secret(rng)
            if secret not in seen and secret not in haystack:
                break
        else:  # pragma: no cover - needs a space nearly exhausted by the data
            raise InputError(f"could not draw a fresh {fmt.name} secret", field="m")
        seen.add(secret)
        out.append(
            Canary(
                id=f"c{i:04d}",
                format=fmt.name,
                secret=secret,
                text=fmt.render(secret),
                repetitions=reps,
                included=rng.random() < inclusion_probability,
            )
        )
    return out


def build_canary_set(
    canaries: Sequence[Canary],
    *,
    repetitions: Sequence[int],
    inclusion_probability: float = 0.5,
    lineage: Lineage | None = None,
) -> CanarySet:
    names = sorted({c.format for c in canaries})
    return CanarySet(
        inclusion_probability=inclusion_probability,
        repetition_cycle=tuple(repetitions),
        formats={n: format_by_name(n).template for n in names},
        canaries=tuple(canaries),
        canaries_sha256=canary_digest(canaries),
        inclusion_sha256=inclusion_digest(canaries),
        lineage=lineage,
    )


def augment(
    records: Sequence[dict[str, Any]],
    canaries: Sequence[Canary],
    *,
    text_field: str,
    seed: int | None,
) -> list[dict[str, Any]]:
    """The training records with each included canary's copies inserted at random positions."""
    rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
    out = [dict(r) for r in records]
    for c in canaries:
        for _ in range(c.copies):
            out.insert(rng.randrange(len(out) + 1), {text_field: c.text})
    return out


def read_jsonl(path: str | os.PathLike[str], *, text_field: str) -> list[dict[str, Any]]:
    """Read a JSONL dataset strictly: every line an object with a string ``text_field``."""
    text = read_text_strict(path)
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {lineno}: malformed JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {lineno}: expected an object")
        elif not isinstance(obj.get(text_field), str):
            problems.append(f"line {lineno}: field '{text_field}' missing or not a string")
        else:
            records.append(obj)
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise InputError(
            f"invalid dataset: {shown}",
            path=str(path),
            field=text_field,
            fix=f"each line must be a JSON object with a string '{text_field}'",
        )
    if not records:
        raise InputError(
            "the dataset is empty", path=str(path), fix="give a JSONL file with records"
        )
    return records


def jsonl_bytes(records: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n" for r in records
    )


def commit_canaries(ws: Workspace, canary_set: CanarySet, *, actor: str) -> None:
    """Write ``artifacts/canaries.json`` and the ``canaries.committed`` ledger event."""
    _check_before_training(ws)
    lineage = canary_set.lineage
    ws.write_bytes(
        CANARIES_ARTIFACT,
        canary_set.canonical_bytes(),
        event=COMMIT_EVENT,
        actor=actor,
        extra={
            "canaries_sha256": canary_set.canaries_sha256,
            "inclusion_sha256": canary_set.inclusion_sha256,
            "canaries": len(canary_set.canaries),
            "included": len(canary_set.included),
            "formats": sorted(canary_set.formats),
            "augmented_sha256": lineage.output.sha256 if lineage else None,
            "source_sha256": lineage.source.sha256 if lineage else None,
        },
    )


def _check_before_training(ws: Workspace) -> None:
    if ws.path(location("training")).exists():
        raise InputError(
            "training evidence already exists: canaries must be committed before training",
            path=str(ws.path(location("training"))),
            fix="plant canaries in a fresh workspace, then train on the augmented data",
        )
    if ws.path(CANARIES_ARTIFACT).exists():
        raise InputError(
            "this workspace already holds a committed canary set",
            path=str(ws.path(CANARIES_ARTIFACT)),
            fix="one canary set per workspace; start a new workspace to plant again",
        )


def plant_file(
    workspace: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    formats: Sequence[str] = ("pin6",),
    m: int = 90,
    repetitions: Sequence[int] = (1, 4, 16),
    seed: int | None = None,
    text_field: str = "text",
    actor: str | None = None,
) -> CanarySet:
    """Plant canaries into ``data`` (JSONL), write ``out`` and commit the set to the workspace."""
    ws = Workspace.open(workspace)
    actor = default_actor(actor, owner=ws.metadata.owner)
    _check_before_training(ws)
    fmts = [format_by_name(f) for f in formats]
    records = read_jsonl(data, text_field=text_field)
    texts = [r[text_field] for r in records]
    if seed is None:
        seed = secrets.randbits(63)
    canaries = draw_canaries(formats=fmts, m=m, repetitions=repetitions, seed=seed, avoid=texts)
    augmented = augment(records, canaries, text_field=text_field, seed=seed + 1)
    payload = jsonl_bytes(augmented)
    if Path(out).resolve() == Path(data).resolve():
        raise InputError(
            "refusing to overwrite the source dataset",
            path=str(out),
            fix="write the augmented data to a new file",
        )
    atomic_write_bytes(out, payload)
    lineage = Lineage(
        source=FileLineage(
            path=str(data), sha256=sha256_bytes(Path(data).read_bytes()), records=len(records)
        ),
        output=FileLineage(path=str(out), sha256=sha256_bytes(payload), records=len(augmented)),
        text_field=text_field,
        examples_added=len(augmented) - len(records),
    )
    canary_set = build_canary_set(canaries, repetitions=repetitions, lineage=lineage)
    commit_canaries(ws, canary_set, actor=actor)
    return canary_set


def load_canaries(workspace: Workspace) -> CanarySet | None:
    path = workspace.path(CANARIES_ARTIFACT)
    if not path.exists():
        return None
    return CanarySet.read(path)
