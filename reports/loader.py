"""Read a workspace's evidence as JSON, per docs/evidence-contract.md, and nothing else.

Every kind is optional: a kind that is absent is ``None`` (or an empty list) and renders as
"needs input" / "not addressed". A kind whose record class is registered in
``governance/evidence/registry.py`` is validated with that class first (a malformed record is bad
input, exit 2). Every string read passes through :func:`finetrail.reports.redact.scrub`, so a PII
value that slipped into evidence is masked before any template sees it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from finetrail.errors import InputError
from finetrail.governance.evidence.registry import kind_by_name, record_class
from finetrail.governance.evidence.workspace import Manifest, WorkspaceMetadata
from finetrail.governance.io import read_json_strict, sha256_file
from finetrail.governance.ledger import LEDGER_NAME, scan_ledger
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import MANIFEST_FILE, WORKSPACE_FILE
from finetrail.reports.redact import scrub

# kind name -> file (relative to the workspace), as in docs/evidence-contract.md.
SINGLE_KINDS: tuple[tuple[str, str], ...] = (
    ("training", "evidence/training.json"),
    ("probes.exposure", "evidence/probes/exposure.json"),
    ("probes.extraction", "evidence/probes/extraction.json"),
    ("probes.membership", "evidence/probes/membership.json"),
    ("probes.dp_audit", "evidence/probes/dp_audit.json"),
    ("bias", "evidence/bias.json"),
)
DATASETS_DIR = "evidence/datasets"
GATE_DIR = "evidence/gate"
REVIEW_PREFIX = "review."


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


def _read_kind(root: Path, kind: str, rel: str) -> dict[str, Any]:
    path = root / rel
    data = read_json_strict(path)
    if not isinstance(data, dict):
        raise InputError("an evidence record must be a JSON object", path=str(path), field=kind)
    registered = kind_by_name(kind)
    if registered is not None and registered.name != "workspace":
        data = record_class(registered).parse(data, source=str(path)).to_json_dict()
    result: dict[str, Any] = scrub(data)
    return result


def _gate_key(path: Path) -> tuple[int, str]:
    stem = path.name.removesuffix(".json")
    return (int(stem), stem) if stem.isdigit() else (1 << 30, stem)


def load_evidence(root: str | os.PathLike[str], *, check_integrity: bool = True) -> Evidence:
    """Load every evidence kind present in the workspace at ``root`` (masked)."""
    path = Path(root)
    if not (path / WORKSPACE_FILE).is_file():
        raise InputError(
            f"not a finetrail workspace (no {WORKSPACE_FILE})",
            path=str(path),
            fix="create it with `finetrail init`, or pass the workspace folder",
        )
    meta: dict[str, Any] = scrub(WorkspaceMetadata.read(path / WORKSPACE_FILE).to_json_dict())

    datasets: list[dict[str, Any]] = []
    ds_dir = path / DATASETS_DIR
    if ds_dir.is_dir():
        for f in sorted(ds_dir.glob("*.json")):
            rec = _read_kind(path, "datasets", f.relative_to(path).as_posix())
            rec.setdefault("sha256", f.stem)
            datasets.append(rec)
    datasets.sort(key=lambda d: (str(d.get("name", "")), str(d.get("sha256", ""))))

    single: dict[str, dict[str, Any] | None] = {}
    for kind, rel in SINGLE_KINDS:
        single[kind] = _read_kind(path, kind, rel) if (path / rel).is_file() else None

    gates: list[dict[str, Any]] = []
    gate_dir = path / GATE_DIR
    if gate_dir.is_dir():
        decisions = [f for f in gate_dir.glob("*.json") if not f.name.endswith(".dsse.json")]
        for f in sorted(decisions, key=_gate_key):
            rec = _read_kind(path, "gate", f.relative_to(path).as_posix())
            rec["_file"] = f.relative_to(path).as_posix()
            rec["_attested"] = f.with_name(f.name.removesuffix(".json") + ".dsse.json").is_file()
            gates.append(rec)

    scan = scan_ledger(path / LEDGER_NAME) if (path / LEDGER_NAME).exists() else None
    entries = scan.entries if scan else []
    reviews = []
    for e in entries:
        if e.kind.startswith(REVIEW_PREFIX):
            reviews.append(
                scrub(
                    {
                        "seq": e.seq,
                        "kind": e.kind,
                        "time": e.time.isoformat(),
                        "actor": e.actor,
                        "payload": e.payload,
                        "signer": e.signer,
                        "signed": e.signature is not None,
                        "digest": e.digest,
                    }
                )
            )

    manifest_digest = None
    files: dict[str, str] = {}
    if (path / MANIFEST_FILE).is_file():
        manifest = Manifest.read(path / MANIFEST_FILE)
        manifest_digest = manifest.files_digest()
        files = {k: v.sha256 for k, v in manifest.files.items()}
        files[LEDGER_NAME] = manifest.ledger.head  # the digest of the ledger's anchored last entry
    files[WORKSPACE_FILE] = sha256_file(path / WORKSPACE_FILE)

    integrity = IntegrityStatus(ok=False, entries=len(entries), files=len(files), findings=())
    if check_integrity:
        report = verify_workspace(path)
        integrity = IntegrityStatus(
            ok=report.ok,
            entries=report.entries,
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
                for f in report.findings
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
        ledger_kinds=tuple(e.kind for e in entries),
        manifest_digest=manifest_digest,
        files=files,
        integrity=integrity,
    )


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
