"""``finetrail verify``: recompute every digest and walk the ledger chain; report every problem.

Light on purpose: imports no torch, transformers, mlflow or presidio.

Checks (all run; every problem is reported, not just the first):
- ``workspace.json`` parses and matches the digest announced by the ledger's first event;
- ``manifest.json`` parses; every file it lists exists with that SHA-256 (``missing``,
  ``modified``); no untracked file sits under ``evidence/`` or ``artifacts/`` (``extra``);
- the ledger: each entry's own digest and payload digest, canonical form, sequence and chain
  (``modified``, ``reordered``, ``deleted``, ``duplicated``, ``chain``), a torn last line
  (``incomplete``, a warning);
- the manifest's anchor names the ledger's last entry (``truncated`` / ``unanchored``);
- the manifest agrees with the last ledger event for each file (``disagrees``);
- the manifest's sizes and version stamp, then the checks of :func:`extra_checks`
  (attestations, reviews, dataset lineage, signed entries, the log's signed checkpoints with
  RFC 9162 consistency proofs, ``--checkpoint`` and ``--anchor``:
  :mod:`finetrail.governance.checkpoint`, :mod:`finetrail.governance.anchor`).

Signatures: with a trust root (``trust=``, ``--trust FILE``; :mod:`finetrail.governance.trust`)
every gate attestation and signed ledger entry is checked against the keys it names, by role and
validity window, and against the release it was made for; without one, the keyring (reviews) and
the records themselves (attestations) are all there is, and a warning says so (``untrusted``).
A trust file inside the workspace, a malformed trust file and an unreadable ``keyring=`` are bad
input (:class:`~finetrail.errors.InputError`, exit 2), never findings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from finetrail.errors import FinetrailError, InputError
from finetrail.governance.evidence.workspace import LedgerEntry, Manifest, WorkspaceMetadata
from finetrail.governance.findings import Finding
from finetrail.governance.io import sha256_file
from finetrail.governance.ledger import LEDGER_NAME, scan_ledger
from finetrail.governance.workspace import MANIFEST_FILE, TRACKED_DIRS, WORKSPACE_FILE

if TYPE_CHECKING:
    from finetrail.governance.checkpoint import Checkpoint
    from finetrail.governance.trust import TrustRoot
    from finetrail.governance.verify_incremental import VerifyCache

ExtraCheck = Callable[[Path, "VerifyContext"], list[Finding]]


@dataclass
class VerifyContext:
    """What the core checks read, handed to the extra checks so they need not re-read it.

    ``keyring`` is the keyring file the caller named (``--keyring``); ``None`` means the
    workspace's own ``keyring.json`` if it has one. ``trust`` is the trust root (``--trust``),
    ``metadata`` the workspace's ``workspace.json`` when it parses (the release's identity).
    """

    manifest: Manifest | None
    entries: list[LedgerEntry]
    keyring: Path | None = None
    trust: TrustRoot | None = None
    metadata: WorkspaceMetadata | None = None
    checkpoint: Checkpoint | None = None  # --checkpoint FILE: an older checkpoint to prove against
    anchor: str | None = None  # --anchor FILE or REPO:REF: where the checkpoint was anchored
    cache: VerifyCache | None = None  # what an earlier run of this workspace already checked


def extra_checks() -> tuple[ExtraCheck, ...]:
    """The checks other modules contribute, run after the core checks (imported on first use,
    so that importing :mod:`verify` stays cheap and cycle-free)."""
    from finetrail.governance.anchor import check_anchor
    from finetrail.governance.checkpoint import check_checkpoints
    from finetrail.governance.coverage import coverage_checks
    from finetrail.governance.gate.attest import check_attestations
    from finetrail.governance.provenance.lineage import check_datasets
    from finetrail.governance.review.assess import check_reviews
    from finetrail.governance.trust import check_trust

    return (
        check_manifest_sizes,
        check_attestations,
        check_reviews,
        check_datasets,
        check_trust,
        check_checkpoints,
        check_anchor,
        *coverage_checks(),
    )


def check_manifest_sizes(root: Path, ctx: VerifyContext) -> list[Finding]:
    """The manifest agrees with the files and the ledger in full.

    The core checks compare each file's SHA-256 with the manifest and the manifest's anchor with
    the ledger's head. This closes what they leave open, so that any edit of ``manifest.json`` is
    caught: every file's size must match the manifest's ``size``, and the manifest's version stamp
    must be that of the ledger's last entry (both are written in the same locked step).
    """
    manifest = ctx.manifest
    if manifest is None:
        return []
    out = []
    for rel, info in manifest.files.items():
        file = root / rel
        if file.is_file() and file.stat().st_size != info.size:
            out.append(
                Finding(
                    "error",
                    "modified",
                    rel,
                    f"size {file.stat().st_size} differs from the manifest's {info.size}",
                )
            )
    entries = ctx.entries
    if (
        entries
        and manifest.ledger.head == entries[-1].digest
        and manifest.finetrail_version != entries[-1].finetrail_version
    ):
        out.append(
            Finding(
                "error",
                "modified",
                MANIFEST_FILE,
                f"version stamp {manifest.finetrail_version!r} differs from the ledger "
                f"head's {entries[-1].finetrail_version!r} (written together)",
            )
        )
    return out


@dataclass
class VerifyReport:
    workspace: str
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    # The ledger entries verify parsed (readable ones, flagged or not), for callers such as the
    # gate that need them too: the ledger is read and parsed once.
    ledger: list[LedgerEntry] = field(default_factory=list, repr=False, compare=False)

    @property
    def entries(self) -> int:
        return len(self.ledger)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def render(self) -> str:
        lines = [
            f"workspace: {self.workspace}",
            f"ledger entries: {self.entries}; tracked files: {self.files}",
        ]
        lines += [f.render() for f in self.findings]
        n_err = len(self.errors)
        lines.append(
            "verify: OK" if self.ok else f"verify: FAILED ({n_err} problem{'s' * (n_err != 1)})"
        )
        return "\n".join(lines)


def verify_workspace(
    root: str | os.PathLike[str],
    *,
    keyring: str | os.PathLike[str] | None = None,
    trust: TrustRoot | str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    anchor: str | os.PathLike[str] | None = None,
    cache: VerifyCache | None = None,
) -> VerifyReport:
    """Run every check on the workspace at ``root``.

    ``keyring`` names a keyring file explicitly (it must be readable: a broken one raises
    :class:`InputError`); ``trust`` is a trust file (path) or a loaded
    :class:`~finetrail.governance.trust.TrustRoot`, refused when it lies inside ``root``.
    ``checkpoint`` is a checkpoint file the caller kept (the log must extend it); ``anchor`` a
    team anchor file (:mod:`finetrail.governance.anchor`). Either, unreadable, is bad input.
    ``cache`` (:class:`~finetrail.governance.verify_incremental.VerifyCache`, one per workspace)
    lets a repeated run skip what cannot have changed: ledger lines whose bytes are those it
    checked before, files whose inode, size, mtime and ctime are unchanged, the checkpoints over
    an unchanged part of the log; the report is the one a run without it gives.
    """
    from finetrail.governance.review.keyring import load_keyring
    from finetrail.governance.trust import as_trust_root

    path = Path(root)
    if not path.is_dir():
        raise InputError("workspace not found", path=str(path))
    if not (path / WORKSPACE_FILE).exists() and not (path / LEDGER_NAME).exists():
        raise InputError(f"not a finetrail workspace (no {WORKSPACE_FILE})", path=str(path))
    trust_root = as_trust_root(trust, path)
    if cache is not None:
        trust_root = cache.trust_root(trust_root)
    given = None
    if checkpoint is not None:
        from finetrail.governance.checkpoint import read_checkpoint_file

        given = read_checkpoint_file(checkpoint)
    if anchor is not None:
        from finetrail.governance.anchor import read_anchor

        read_anchor(str(anchor))  # an unreadable anchor the caller named: bad input
    if keyring:
        load_keyring(keyring)  # an unreadable keyring the caller named is bad input
    report = VerifyReport(workspace=str(path))
    add = report.findings.append

    # ledger
    scan = cache.scan_ledger(path / LEDGER_NAME) if cache else scan_ledger(path / LEDGER_NAME)
    report.findings.extend(scan.findings)
    entries = scan.entries
    report.ledger = entries

    # workspace.json
    metadata_digest: str | None = None
    meta: WorkspaceMetadata | None = None
    try:
        meta = WorkspaceMetadata.read(path / WORKSPACE_FILE)
        metadata_digest = meta.content_digest()
        if (path / WORKSPACE_FILE).read_bytes() != meta.canonical_bytes():
            add(Finding("error", "modified", WORKSPACE_FILE, "not in canonical form"))
    except FinetrailError as err:
        add(
            Finding(
                "error",
                "modified" if (path / WORKSPACE_FILE).exists() else "missing",
                WORKSPACE_FILE,
                err.what,
            )
        )
    created = [e for e in entries if e.kind == "workspace.created"]
    if not created:
        add(Finding("error", "truncated", LEDGER_NAME, "no workspace.created event"))
    elif metadata_digest and created[0].payload.get("sha256") != metadata_digest:
        add(
            Finding(
                "error",
                "modified",
                WORKSPACE_FILE,
                "does not match the digest recorded when the workspace was created",
            )
        )

    # manifest
    manifest: Manifest | None = None
    try:
        manifest = Manifest.read(path / MANIFEST_FILE)
        if (path / MANIFEST_FILE).read_bytes() != manifest.canonical_bytes():
            add(Finding("error", "modified", MANIFEST_FILE, "not in canonical form"))
    except FinetrailError as err:
        code = "modified" if (path / MANIFEST_FILE).exists() else "missing"
        add(Finding("error", code, MANIFEST_FILE, err.what))

    if manifest is not None:
        report.files = len(manifest.files)
        _check_anchor(manifest, entries, add)
        _check_files(
            path, manifest, _last_recorded(entries), add, cache.sha256_file if cache else None
        )

    ctx = VerifyContext(
        manifest=manifest,
        entries=entries,
        keyring=Path(keyring) if keyring else None,
        trust=trust_root,
        metadata=meta,
        checkpoint=given,
        anchor=str(anchor) if anchor is not None else None,
        cache=cache,
    )
    for check in extra_checks():
        report.findings.extend(check(path, ctx))
    return report


def _check_anchor(
    manifest: Manifest, entries: list[LedgerEntry], add: Callable[[Finding], None]
) -> None:
    anchor = manifest.ledger
    n = len(entries)
    if n == anchor.entries and n and entries[-1].digest == anchor.head:
        return
    positions = [i for i, e in enumerate(entries) if e.digest == anchor.head]
    if positions and positions[0] + 1 < n:
        add(
            Finding(
                "error",
                "unanchored",
                LEDGER_NAME,
                f"{n - positions[0] - 1} entr{'ies' if n - positions[0] - 1 != 1 else 'y'} "
                "after the manifest's anchor (appended outside finetrail, or a write was "
                "interrupted)",
            )
        )
    elif n < anchor.entries:
        add(
            Finding(
                "error",
                "truncated",
                LEDGER_NAME,
                f"the manifest anchors {anchor.entries} entries; the ledger holds {n}",
            )
        )
    else:
        add(
            Finding(
                "error",
                "truncated",
                LEDGER_NAME,
                f"the ledger's head is not the entry the manifest anchors ({anchor.head[:12]}...)",
            )
        )


def _last_recorded(entries: list[LedgerEntry]) -> dict[str, str]:
    """The digest the ledger last recorded for each file."""
    last: dict[str, str] = {}
    for e in entries:
        p, digest = e.payload.get("path"), e.payload.get("sha256")
        if isinstance(p, str) and isinstance(digest, str) and p != WORKSPACE_FILE:
            last[p] = digest
    return last


def _check_files(
    root: Path,
    manifest: Manifest,
    recorded: dict[str, str],
    add: Callable[[Finding], None],
    digest: Callable[[Path], str] | None = None,
) -> None:
    """Compare each file's actual digest with the manifest's and the ledger's, and blame the
    one that differs from the other two."""
    digest = digest or sha256_file
    for rel, info in manifest.files.items():
        file = root / rel
        ledger_digest = recorded.get(rel)
        if ledger_digest is None:
            add(
                Finding(
                    "error",
                    "disagrees",
                    rel,
                    "listed in the manifest, but no ledger event records it",
                )
            )
        if not file.is_file():
            add(Finding("error", "missing", rel, "listed in the manifest but absent"))
            continue
        actual = digest(file)
        if actual == info.sha256 == ledger_digest or (
            ledger_digest is None and actual == info.sha256
        ):
            continue
        if actual == ledger_digest:
            add(
                Finding(
                    "error",
                    "modified",
                    MANIFEST_FILE,
                    f"its entry for {rel} ({info.sha256[:16]}...) differs from the file and "
                    "the ledger",
                )
            )
        elif info.sha256 == ledger_digest or ledger_digest is None:
            add(
                Finding(
                    "error",
                    "modified",
                    rel,
                    f"sha256 {actual[:16]}... differs from the recorded {info.sha256[:16]}...",
                )
            )
        else:
            add(
                Finding(
                    "error",
                    "disagrees",
                    rel,
                    "the file, the manifest and the ledger name three different digests "
                    "(file and manifest edited outside finetrail?)",
                )
            )
    for rel in sorted(set(recorded) - set(manifest.files)):
        add(
            Finding("error", "missing", rel, "recorded in the ledger but dropped from the manifest")
        )
    listed = set(manifest.files)
    for top in TRACKED_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        for file in sorted(base.rglob("*")):
            if not file.is_file():
                continue
            rel = file.relative_to(root).as_posix()
            if file.name.startswith(".") and file.name.endswith(".tmp"):
                add(Finding("warning", "temporary", rel, "left over from an interrupted write"))
                continue
            if rel not in listed:
                add(Finding("error", "extra", rel, "not listed in the manifest"))
