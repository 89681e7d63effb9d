"""Read a workspace's evidence for rendering, through the one reader, and nothing else.

Records come from :class:`~finetrail.governance.evidence.store.EvidenceSet`, validated by the
class the registry names (a malformed record is bad input, exit 2); review states come from
:func:`finetrail.governance.review.review_status`, the same function the gate uses, so the
dossier never shows an approval as current that the gate counts as stale or invalid.

Every kind is optional: a kind that is absent is ``None`` (or an empty list) and renders as
"needs input" / "not addressed". Every string read passes through
:func:`finetrail.reports.redact.scrub`, so a PII value that slipped into evidence is masked
before any template sees it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PureWindowsPath
from typing import Any

from finetrail.errors import InputError
from finetrail.governance.coverage import REPORT_EVENT
from finetrail.governance.evidence.registry import EVIDENCE_KINDS
from finetrail.governance.evidence.store import EvidenceSet, LoadedRecord
from finetrail.governance.evidence.workspace import LedgerEntry, Manifest, WorkspaceMetadata
from finetrail.governance.io import sha256_file
from finetrail.governance.ledger import LEDGER_NAME, scan_ledger
from finetrail.governance.review.api import review_status
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import MANIFEST_FILE, WORKSPACE_FILE
from finetrail.reports.redact import scrub

SINGLE_KINDS: tuple[str, ...] = tuple(
    k.name for k in EVIDENCE_KINDS if not k.many and k.name != "workspace"
)


@dataclass(frozen=True)
class IntegrityStatus:
    """What ``governance.verify.verify_workspace`` found."""

    ok: bool
    entries: int
    files: int
    findings: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class Evidence:
    """A workspace's evidence, masked, as JSON values."""

    root: str
    workspace: dict[str, Any]
    datasets: tuple[dict[str, Any], ...]
    training: dict[str, Any] | None
    probes: dict[str, dict[str, Any] | None]
    bias: dict[str, Any] | None
    gates: tuple[dict[str, Any], ...]
    reviews: tuple[dict[str, Any], ...]
    ledger_kinds: tuple[str, ...]
    manifest_digest: str | None
    files: dict[str, str] = field(default_factory=dict)
    # current, valid approvals by distinct people, as the gate counts them (review_status)
    approvals: int = 0
    approvals_keyring_problem: str | None = None
    integrity: IntegrityStatus = IntegrityStatus(ok=False, entries=0, files=0, findings=())

    def has(self, kind: str) -> bool:
        """Whether evidence of ``kind`` exists (``datasets``, ``training``, ``probes.exposure``...)."""
        if kind == "datasets":
            return bool(self.datasets)
        if kind == "gate":
            return bool(self.gates)
        if kind == "reviews":
            return bool(self.reviews)
        if kind.startswith("probes."):
            return self.probes.get(kind.split(".", 1)[1]) is not None
        if kind == "training":
            return self.training is not None
        if kind == "bias":
            return self.bias is not None
        if kind == "workspace":
            return True
        raise KeyError(kind)


def _json(rec: LoadedRecord, root: Path) -> dict[str, Any]:
    if rec.record is None:
        raise InputError(f"invalid {rec.kind} evidence: {rec.error}", path=str(root / rec.rel))
    result: dict[str, Any] = scrub(rec.record.to_json_dict())
    return result


def load_evidence(
    root: str | os.PathLike[str],
    *,
    check_integrity: bool = True,
    keyring: str | os.PathLike[str] | None = None,
    ledger: list[LedgerEntry] | None = None,
) -> Evidence:
    """Load every evidence kind present in the workspace at ``root`` (masked). ``ledger``: its
    ledger's entries when the caller has just scanned them (the console, under the read lock)."""
    path = Path(root)
    if not (path / WORKSPACE_FILE).is_file():
        raise InputError(
            f"not a finetrail workspace (no {WORKSPACE_FILE})",
            path=str(path),
            fix="create it with `finetrail init`, or pass the workspace folder",
        )
    meta: dict[str, Any] = scrub(WorkspaceMetadata.read(path / WORKSPACE_FILE).to_json_dict())

    store = EvidenceSet(path)
    datasets: list[dict[str, Any]] = []
    for rec in store.many("datasets", strict=False):
        data = _json(rec, path)
        data.setdefault("sha256", Path(rec.rel).stem)
        datasets.append(data)
    datasets.sort(key=lambda d: (str(d.get("name", "")), str(d.get("sha256", ""))))

    single: dict[str, dict[str, Any] | None] = {}
    for kind in SINGLE_KINDS:
        recs = store.records(kind)
        single[kind] = _json(recs[0], path) if recs else None

    gates: list[dict[str, Any]] = []
    for rec in store.many("gate", strict=False):
        data = _json(rec, path)
        data["_file"] = rec.rel
        data["_attested"] = (
            (path / rec.rel.removesuffix(".json")).with_suffix(".dsse.json").is_file()
        )
        gates.append(data)

    if ledger is None:
        scan = scan_ledger(path / LEDGER_NAME) if (path / LEDGER_NAME).exists() else None
        ledger = scan.entries if scan else []
    entries = ledger
    # A report describes the evidence: the ``report.rendered`` events that reports append after
    # writing (the dossier's digests, checked by verify) are not part of what they describe, so
    # that rendering again, and ``report --check``, see the same ledger.
    rendered_tail = 0
    while rendered_tail < len(entries) and entries[-1 - rendered_tail].kind == REPORT_EVENT:
        rendered_tail += 1
    described = entries[: len(entries) - rendered_tail]
    manifest_obj = Manifest.read(path / MANIFEST_FILE) if (path / MANIFEST_FILE).is_file() else None
    status = review_status(
        root=path,
        entries=entries,
        manifest=manifest_obj,
        owner=str(meta.get("owner")) if meta.get("owner") else None,
        keyring_file=keyring,
    )
    reviews = [
        scrub(
            {
                "seq": row.seq,
                "kind": f"review.{row.decision}",
                "time": row.time,
                "actor": row.reviewer,
                "reviewer": row.reviewer,
                "role": row.role or "",
                "decision": row.decision,
                "note": row.note,
                "state": row.state,
                "problems": list(row.problems),
                "binds": row.manifest_sha256 or "",
                "signer": row.signer,
                "signed": row.signer is not None,
            }
        )
        for row in status.rows
    ]

    manifest_digest = None
    files: dict[str, str] = {}
    if manifest_obj is not None:
        manifest = manifest_obj
        manifest_digest = manifest.files_digest()
        files = {k: v.sha256 for k, v in manifest.files.items()}
        files[LEDGER_NAME] = manifest.ledger.head  # the digest of the ledger's anchored last entry
        if rendered_tail and described and manifest.ledger.head == entries[-1].digest:
            files[LEDGER_NAME] = described[-1].digest  # the last entry the report describes
    files[WORKSPACE_FILE] = sha256_file(path / WORKSPACE_FILE)

    integrity = IntegrityStatus(ok=False, entries=len(described), files=len(files), findings=())
    if check_integrity:
        report = verify_workspace(path, keyring=keyring)
        integrity = IntegrityStatus(
            ok=report.ok,
            entries=report.entries - rendered_tail,
            files=report.files,
            findings=tuple(
                scrub(
                    {
                        "severity": f.severity,
                        "code": f.code,
                        "location": _relative(f.location, path),
                        "message": f.message,
                    }
                )
                for f in _described_findings(report.findings, entries[len(described) :])
            ),
        )

    return Evidence(
        root=str(path),
        workspace=meta,
        datasets=tuple(datasets),
        training=single["training"],
        probes={k.split(".", 1)[1]: v for k, v in single.items() if k.startswith("probes.")},
        bias=single["bias"],
        gates=tuple(gates),
        reviews=tuple(reviews),
        approvals=status.summary.approvals,
        approvals_keyring_problem=status.keyring_problem,
        ledger_kinds=tuple(e.kind for e in described),
        manifest_digest=manifest_digest,
        files=files,
        integrity=integrity,
    )


_COUNTED = re.compile(r"^(\d+) of (\d+) (ledger entries|checkpoint\(s\))(.*)$", re.S)
_SIGNED = re.compile(
    r"^(.*\((\d+) gate attestation\(s\), )(\d+) signed ledger entr(?:y|ies)(\).*)$", re.S
)


def _described_findings(findings: Any, tail: list[Any]) -> list[Any]:
    """verify's findings as of the state the report describes: the counts of unsigned ledger
    entries and checkpoints leave out the ``report.rendered`` events the reports appended
    (one entry and one checkpoint each) and that they do not describe; so does the count of
    signed entries in the ``untrusted`` warning (the reports' own events may be signed)."""
    unsigned_tail = sum(1 for e in tail if not (e.signature or e.signer))
    signed_tail = len(tail) - unsigned_tail
    if not tail:
        return list(findings)
    out = []
    for f in findings:
        s = _SIGNED.match(f.message) if f.code == "untrusted" and signed_tail else None
        if s is not None:  # the signed count without the signed report.rendered events
            envelopes, signed = int(s.group(2)), int(s.group(3)) - signed_tail
            if envelopes or signed > 0:
                noun = "entry" if signed == 1 else "entries"
                out.append(
                    replace(f, message=f"{s.group(1)}{signed} signed ledger {noun}{s.group(4)}")
                )
            continue
        m = _COUNTED.match(f.message) if f.code == "unsigned" else None
        if m is None:
            out.append(f)
            continue
        n, total = int(m.group(1)) - unsigned_tail, int(m.group(2)) - len(tail)
        if n > 0:
            out.append(replace(f, message=f"{n} of {total} {m.group(3)}{m.group(4)}"))
    return out


def _relative(location: str, root: Path) -> str:
    """Findings name workspace-relative paths; never leak the analyst's absolute folders."""
    return re.sub(re.escape(str(root)) + r"/?", "", location)


def get(data: Any, dotted: str) -> Any:
    """``get(rec, "dp.epsilon")``: the value at a dotted path, or None where any part is absent."""
    cur = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def base_model_label(training: Any) -> str:
    """What the base model is, for people: the configured name, else its type and folder name.

    Only the folder's last component is shown: the rest of a local path says nothing to a reader.
    The model's identity is its weights digest, shown beside this label.
    """
    name = get(training, "base_model.name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    kind = get(training, "base_model.model_type")
    folder = get(training, "base_model.path")
    parts = [str(kind) if isinstance(kind, str) and kind != "unknown" else "base"]
    parts.append("model")
    if isinstance(folder, str):
        tail = PureWindowsPath(folder).name if "\\" in folder else Path(folder).name
        if tail:
            parts.append(f"'{tail}'")
    return " ".join(parts)


def num(value: Any) -> float | None:
    """A finite number, or None (booleans and strings are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if f == f and f not in (float("inf"), float("-inf")) else None
