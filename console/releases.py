"""The releases the console shows: found under ``--root``, read through governance and reports.

A release id is the first 16 hex digits of the SHA-256 of the workspace's path relative to the
root. Ids are looked up in the enumerated list (:func:`find_releases`) and never joined into a
path, so no URL can name a folder the enumeration did not find.

Every figure comes from the existing readers: the typed release view and the report model
(:mod:`finetrail.reports.model`, the dossier's), the review states from
:func:`finetrail.governance.review.api.review_status` (the gate's own count) and ``verify`` from
:func:`finetrail.governance.verify.verify_workspace`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetrail.errors import FinetrailError

if TYPE_CHECKING:
    from finetrail.governance.evidence.workspace import LedgerEntry
    from finetrail.governance.policy.rules import Approvals
    from finetrail.governance.review.api import ReviewStatus
    from finetrail.governance.trust import TrustRoot
    from finetrail.reports.model import ReportModel

WORKSPACE_FILE = "workspace.json"
MAX_DEPTH = 6  # folders below --root searched for workspaces
SKIP = {".finetrail-journal", "evidence", "artifacts", "node_modules", ".git"}
COMMENT_KIND = "console.comment"
COMMENT_STATES = ("open", "answered", "resolved")


@dataclass(frozen=True)
class ReleaseRef:
    id: str
    rel: str  # path below the root, for display
    path: Path


def release_id(rel: str) -> str:
    return hashlib.sha256(rel.encode("utf-8")).hexdigest()[:16]


def find_releases(root: Path) -> dict[str, ReleaseRef]:
    """Every workspace (a folder holding ``workspace.json``) below ``root``, by id."""
    out: dict[str, ReleaseRef] = {}
    base = root.resolve()
    for here, dirs, files in os.walk(base, followlinks=False):
        depth = len(Path(here).relative_to(base).parts)
        if WORKSPACE_FILE in files and Path(here, WORKSPACE_FILE).is_file():
            rel = Path(here).relative_to(base).as_posix() or "."
            out[release_id(rel)] = ReleaseRef(release_id(rel), rel, Path(here))
            dirs[:] = []  # a workspace's own folders hold no releases
            continue
        dirs[:] = sorted(
            d for d in dirs if d not in SKIP and not d.startswith(".") and depth < MAX_DEPTH
        )
    return dict(sorted(out.items(), key=lambda kv: kv[1].rel))


# -- the approval requirement of the policy the last gate applied -----------------------------------
def policy_rule(gate: dict[str, Any] | None) -> tuple[Approvals | None, str]:
    """The shipped policy pack the last gate decision names, when its digest matches."""
    if not gate:
        return None, "no gate decision"
    from importlib import resources

    from finetrail.governance.io import sha256_bytes
    from finetrail.governance.policy.load import load_policy

    name = str(gate.get("policy_file") or "")
    pack = resources.files("finetrail.policies") / name
    if not name or "/" in name or not pack.is_file():
        return None, f"policy {name or '?'} is not a shipped pack"
    data = pack.read_bytes()
    if sha256_bytes(data) != gate.get("policy_sha256"):
        return None, f"policy {name} differs from the shipped pack"
    with resources.as_file(pack) as p:
        loaded = load_policy(p, lint=False)
    return loaded.policy.approvals, name


# -- what the queue and the release page show ---------------------------------------------------------
@dataclass
class Comment:
    seq: int
    thread: str  # "release" or "rule:<id>"
    author: str
    time: str
    text: str
    state: str
    reply_to: int | None


@dataclass
class Thread:
    key: str
    comments: list[Comment] = field(default_factory=list)

    @property
    def state(self) -> str:
        """The latest state any event of the thread set (a thread opens as ``open``)."""
        return self.comments[-1].state if self.comments else "open"


def comment_threads(entries: list[LedgerEntry]) -> dict[str, Thread]:
    threads: dict[str, Thread] = {}
    for e in entries:
        if e.kind != COMMENT_KIND:
            continue
        p = e.payload
        key = str(p.get("thread", "release"))
        reply = p.get("reply_to")
        c = Comment(
            seq=e.seq,
            thread=key,
            author=e.actor,
            time=e.time.isoformat(),
            text=str(p.get("text", "")),
            state=str(p.get("state", "open")),
            reply_to=reply if isinstance(reply, int) else None,
        )
        threads.setdefault(key, Thread(key)).comments.append(c)
    return threads


@dataclass
class QueueRow:
    ref: ReleaseRef
    model: str
    version: str
    owner: str
    created: datetime | None
    verdict: str
    verdict_css: str
    required: int | None
    roles: tuple[str, ...]
    current: int
    stale: int
    invalid: int
    open_threads: int
    problem: str | None = None

    @property
    def age(self) -> str:
        if self.created is None:
            return "n/a"
        days = (datetime.now(UTC) - self.created).days
        return f"{days} d" if days >= 1 else "< 1 d"

    @property
    def status(self) -> str:
        """approved / awaiting approval / blocked / not gated / error (the status filter)."""
        if self.problem:
            return "error"
        if self.verdict == "not gated":
            return "not gated"
        if self.verdict != "passed":
            return "blocked"
        if self.required is not None and self.current < self.required:
            return "awaiting approval"
        return "approved"


@dataclass
class ReleaseDetail:
    row: QueueRow
    m: ReportModel
    status: ReviewStatus
    rule: Approvals | None
    policy_note: str
    entries: list[LedgerEntry]
    verify_ok: bool
    verify_findings: list[dict[str, str]]
    records: list[dict[str, Any]]  # evidence file -> digest, ledger entry, actor, signer, time
    statements: list[dict[str, str]]  # statement -> value -> evidence record
    rules: list[dict[str, Any]]
    threads: dict[str, Thread]
    _charts: dict[str, str | None] | None = field(default=None, repr=False)

    def charts(self) -> dict[str, str | None]:
        """The dossier's chart SVGs (name -> SVG), drawn once per reading."""
        if self._charts is None:
            from finetrail.reports import charts

            self._charts = charts.all_charts(self.m.ev)
        return self._charts


def _trust_for(ref: ReleaseRef, trust_file: Path | None) -> TrustRoot | None:
    if trust_file is None:
        return None
    from finetrail.governance.trust import load_trust

    return load_trust(trust_file, workspace=ref.path)


def _records(entries: list[LedgerEntry], files: dict[str, str]) -> list[dict[str, Any]]:
    last: dict[str, LedgerEntry] = {}
    for e in entries:
        path = e.payload.get("path")
        if isinstance(path, str):
            last[path] = e
    out = []
    for rel, sha in sorted(files.items()):
        e = last.get(rel)
        out.append(
            {
                "file": rel,
                "anchor": "ev-" + hashlib.sha256(rel.encode()).hexdigest()[:12],
                "sha256": sha,
                "seq": e.seq if e else None,
                "kind": e.kind if e else "",
                "actor": e.actor if e else "",
                "signer": e.signer or "" if e else "",
                "time": e.time.isoformat() if e else "",
            }
        )
    return out


def _statement_file(statement: str, files: dict[str, str], gate_file: str | None) -> str | None:
    """Which evidence record a dossier statement is derived from."""
    if statement.startswith("dataset "):
        sha = statement.split("(", 1)[1][:12] if "(" in statement else ""
        return next((f for f in files if f.startswith("evidence/datasets/") and sha in f), None)
    if statement in ("verdict", "current approvals"):
        return gate_file
    if statement == "manifest digest":
        return "ledger.jsonl"
    return next((f for f in files if f.endswith("/training.json")), None)


def fingerprint(ref: ReleaseRef, trust_file: Path | None) -> tuple[Any, ...]:
    """What a cached reading depends on: the size, modification and change time and inode of
    every file of the workspace and of the trust file, and the minute (key validity windows move
    with time). Any write through the Workspace API (or around it) changes it: an edit that puts
    the size and mtime back still moves the change time, which no unprivileged process sets."""
    import time

    out: list[Any] = [int(time.time() // 60)]
    for path in [trust_file] if trust_file else []:
        try:
            st = path.stat()
            out.append((str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        except OSError:
            out.append((str(path), None))
    for here, dirs, files in os.walk(ref.path, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            try:
                st = os.lstat(os.path.join(here, name))
            except OSError:
                continue
            out.append((here, name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(out)


_CACHE: dict[tuple[str, str], tuple[tuple[Any, ...], ReleaseDetail]] = {}
_CACHE_LOCK = threading.Lock()
_VERIFY: dict[str, Any] = {}  # workspace path -> VerifyCache


def verify_cache(ref: ReleaseRef) -> Any:
    """The workspace's :class:`~finetrail.governance.verify_incremental.VerifyCache`: after a
    write, verify parses only the new ledger lines and checks the new checkpoints (everything
    else it checks runs again in full)."""
    from finetrail.governance.verify_incremental import VerifyCache

    with _CACHE_LOCK:
        return _VERIFY.setdefault(str(ref.path), VerifyCache())


def load_detail(ref: ReleaseRef, *, trust_file: Path | None) -> ReleaseDetail:
    """:func:`read_detail`, cached while :func:`fingerprint` is unchanged."""
    key = (str(ref.path), str(trust_file))
    fp = fingerprint(ref, trust_file)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None and hit[0] == fp:
        return hit[1]
    detail = read_detail(ref, trust_file=trust_file)
    if fingerprint(ref, trust_file) == fp:  # nothing was written while it was read
        with _CACHE_LOCK:
            _CACHE[key] = (fp, detail)
    return detail


def read_detail(ref: ReleaseRef, *, trust_file: Path | None) -> ReleaseDetail:
    """Everything the queue row and the release page show, read once from the workspace."""
    from finetrail.governance.ledger import LEDGER_NAME, scan_ledger
    from finetrail.governance.review.api import review_status
    from finetrail.governance.verify import verify_workspace
    from finetrail.governance.workspace import read_locked
    from finetrail.reports.claims import expected_claims
    from finetrail.reports.loader import load_evidence
    from finetrail.reports.model import build_model, gate_rules, verdict

    with read_locked(ref.path):
        trust = _trust_for(ref, trust_file)
        report = verify_workspace(ref.path, trust=trust, cache=verify_cache(ref))
        ev = load_evidence(ref.path, check_integrity=False, ledger=report.ledger)
        from dataclasses import replace

        from finetrail.reports.loader import IntegrityStatus

        ev = replace(
            ev,
            integrity=IntegrityStatus(
                ok=report.ok,
                entries=report.entries,
                files=report.files,
                findings=tuple(
                    {"severity": f.severity, "code": f.code, "location": str(f.location),
                     "message": f.message}
                    for f in report.findings
                ),
            ),
        )  # fmt: skip
        entries = report.ledger or scan_ledger(ref.path / LEDGER_NAME).entries
        from finetrail.governance.evidence.workspace import Manifest

        manifest = Manifest.read(ref.path / "manifest.json")
    gate = ev.gates[-1] if ev.gates else None
    rule, note = policy_rule(gate)
    status = review_status(
        root=ref.path,
        entries=entries,
        manifest=manifest,
        owner=str(ev.workspace.get("owner") or ""),
        rule=rule,
        trust=trust,
    )
    v = verdict(ev)
    threads = comment_threads(entries)
    created = ev.workspace.get("created")
    row = QueueRow(
        ref=ref,
        model=str(ev.workspace.get("model")),
        version=str(ev.workspace.get("version")),
        owner=str(ev.workspace.get("owner")),
        created=datetime.fromisoformat(created) if isinstance(created, str) else None,
        verdict=v.status,
        verdict_css=v.css,
        required=rule.count if rule else None,
        roles=rule.roles if rule else (),
        current=status.summary.approvals,
        stale=status.summary.stale,
        invalid=status.summary.invalid,
        open_threads=sum(1 for t in threads.values() if t.state != "resolved"),
    )
    m = build_model(ev)
    files = dict(ev.files)
    gate_file = str(gate["_file"]) if gate else None
    statements = [
        {"file": name, "statement": k, "value": val,
         "evidence": _statement_file(k, files, gate_file) or ""}
        for name, claims in expected_claims(m).items()
        for k, val in claims.items()
    ]  # fmt: skip
    return ReleaseDetail(
        row=row,
        m=m,
        status=status,
        rule=rule,
        policy_note=note,
        entries=entries,
        verify_ok=report.ok,
        verify_findings=[dict(f) for f in ev.integrity.findings],
        records=_records(entries, files),
        statements=statements,
        rules=gate_rules(gate) if gate else [],
        threads=threads,
    )


def gate_rule_ids(ref: ReleaseRef) -> set[str]:
    """The rule ids of the last gate decision (the threads a comment may open)."""
    from finetrail.reports.loader import load_evidence
    from finetrail.reports.model import gate_rules

    ev = load_evidence(ref.path, check_integrity=False)
    return {str(r["id"]) for r in gate_rules(ev.gates[-1])} if ev.gates else set()


def queue_row(ref: ReleaseRef, *, trust_file: Path | None) -> QueueRow:
    try:
        return load_detail(ref, trust_file=trust_file).row
    except FinetrailError as err:
        return QueueRow(
            ref, "?", "?", "?", None, "error", "bad", None, (), 0, 0, 0, 0, problem=err.what
        )


# -- the diff against the previous release of the same model ------------------------------------------
def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """``1.10.0`` after ``1.9.0``: numbers compared as numbers, other parts as text."""
    import re

    return tuple(
        (0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[^\d.\-+_]+", version)
    )


def release_order(row: QueueRow) -> tuple[Any, ...]:
    """When a release came: the time its workspace was created, then its version."""
    created = row.created.isoformat() if row.created else ""
    return (created, _version_key(row.version), row.ref.rel)


def previous_release(
    ref: ReleaseRef, refs: dict[str, ReleaseRef], *, trust_file: Path | None
) -> tuple[ReleaseDetail | None, str]:
    """The release of the same model that came before ``ref`` (:func:`release_order`) among
    those under the root, with a sentence saying which or why there is none."""
    me = load_detail(ref, trust_file=trust_file).row
    earlier: list[tuple[tuple[Any, ...], ReleaseDetail]] = []
    for other in refs.values():
        if other.id == ref.id:
            continue
        try:
            d = load_detail(other, trust_file=trust_file)
        except FinetrailError:
            continue  # unreadable: the queue shows it as an error
        if d.row.model == me.model and release_order(d.row) < release_order(me):
            earlier.append((release_order(d.row), d))
    if not earlier:
        return None, f"no earlier release of {me.model} under this console's root"
    before = max(earlier, key=lambda kv: kv[0])[1]
    return before, (
        f"{before.row.model} {before.row.version} ({before.row.ref.rel}), the release of the same "
        "model created before this one"
    )


def diff_against_previous(
    ref: ReleaseRef, refs: dict[str, ReleaseRef], *, trust_file: Path | None
) -> tuple[Any, ReleaseRef | None, str]:
    """``finetrail diff`` (:func:`finetrail.reports.diff.diff`) from the previous release of the
    same model to this one: ``(Diff or None, the previous release, a note)``."""
    from finetrail.reports.diff import diff

    before, note = previous_release(ref, refs, trust_file=trust_file)
    if before is None:
        return None, None, note
    after = load_detail(ref, trust_file=trust_file)
    return diff(before.m, after.m), before.row.ref, note
