"""The write-ahead journal of a workspace: how a write survives a kill at any point.

While a command holds the workspace lock, its files are staged under ``.finetrail-journal/`` and
its ledger entries and the new manifest are built in memory. Commit writes one
:class:`WriteIntent` (``.finetrail-journal/intent.json``) naming every staged file, the exact
ledger lines and the new manifest, and then applies it: moves the files into place, cuts the
ledger at the recorded offset and appends the lines, rewrites ``manifest.json``, deletes the
intent. The intent's rename is the commit point:

- killed before it, nothing the workspace shows has changed; the next write deletes the staged
  files and records that it did (``workspace.recovered``, action ``rolled back``);
- killed after it, the next command applies the intent again (every step is idempotent),
  adding a ``workspace.recovered`` event (action ``completed``) to it first.

Recovery checks that the workspace is still in a state the intent can explain (each file is
staged or already in place with the intended digest; the ledger past the offset is a prefix of
the intended lines or the torn tail the intent cut) and refuses otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from finetrail.errors import FinetrailError, InputError
from finetrail.governance.evidence.base import EvidenceRecord, Frozen
from finetrail.governance.evidence.workspace import (
    SHA256_PATTERN,
    LedgerAnchor,
    LedgerEntry,
    Manifest,
)
from finetrail.governance.findings import Finding
from finetrail.governance.io import (
    atomic_write_bytes,
    fsync_dir,
    read_bytes_strict,
    sha256_bytes,
    sha256_file,
)
from finetrail.governance.keys import active_signer
from finetrail.governance.ledger import LEDGER_NAME, build_entry, write_lines

JOURNAL_DIR = ".finetrail-journal"
CHECKPOINTS_FILE = "checkpoints.jsonl"  # governance.checkpoint.CHECKPOINTS_FILE
INTENT_FILE = "intent.json"
STAGED_DIR = "staged"
MANIFEST_FILE = "manifest.json"
RECOVERED_EVENT = "workspace.recovered"
RECOVERY_ACTOR = "finetrail"


class StagedFile(Frozen):
    """One file of a write: where it is staged (relative to the journal) and where it goes."""

    rel: str = Field(min_length=1)  # workspace-relative target
    staged: str = Field(min_length=1)
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)


class WriteIntent(EvidenceRecord):
    """``.finetrail-journal/intent.json``: everything one committed write is to change."""

    record_type: Literal["write_intent"] = "write_intent"
    txid: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    files: tuple[StagedFile, ...] = ()
    ledger_offset: int = Field(ge=0)  # cut the ledger here before appending (drops a torn tail)
    ledger_size: int = Field(ge=0)  # the ledger's size when the write began
    torn_sha256: str | None = None  # of the bytes between offset and size, when there were any
    lines: tuple[str, ...] = Field(min_length=1)  # ledger lines, canonical JSON, no newline
    manifest: Manifest
    discard: tuple[str, ...] = ()  # journal-relative folders of uncommitted writes to delete
    remove: tuple[str, ...] = ()  # workspace-relative leftovers of interrupted writes
    # the signed log checkpoint of the ledger after ``lines`` (checkpoints.jsonl), and where
    # that file is cut before appending it
    checkpoint: str | None = None
    checkpoints_offset: int = Field(default=0, ge=0)

    def ledger_bytes(self) -> bytes:
        return b"".join(line.encode("utf-8") + b"\n" for line in self.lines)


def journal_dir(root: Path) -> Path:
    return root / JOURNAL_DIR


def staging_dir(root: Path, txid: str) -> Path:
    return root / JOURNAL_DIR / STAGED_DIR / txid


def has_intent(root: Path) -> bool:
    return os.path.lexists(root / JOURNAL_DIR / INTENT_FILE)


def uncommitted(root: Path) -> list[str]:
    """Staging folders left by writes killed before their commit point (journal-relative)."""
    base = root / JOURNAL_DIR / STAGED_DIR
    try:
        names = sorted(p.name for p in base.iterdir())
    except OSError:
        return []
    return [f"{STAGED_DIR}/{name}" for name in names]


def commit(root: Path, intent: WriteIntent) -> None:
    """The commit point (the intent is durably in place), then everything it names."""
    atomic_write_bytes(root / JOURNAL_DIR / INTENT_FILE, intent.canonical_bytes())
    apply(root, intent)


def apply(root: Path, intent: WriteIntent) -> None:
    """Carry out a committed intent; every step can be repeated after a kill."""
    jdir = root / JOURNAL_DIR
    parents: set[Path] = set()
    for f in intent.files:
        src, dst = jdir / f.staged, root / f.rel
        if os.path.lexists(src):
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            parents.add(dst.parent)
    for parent in sorted(parents):
        fsync_dir(parent)
    write_lines(root / LEDGER_NAME, intent.ledger_offset, intent.ledger_bytes())
    if intent.checkpoint is not None:
        write_lines(
            root / CHECKPOINTS_FILE,
            intent.checkpoints_offset,
            intent.checkpoint.encode("utf-8") + b"\n",
        )
    atomic_write_bytes(root / MANIFEST_FILE, intent.manifest.canonical_bytes())
    for rel in intent.remove:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(root / rel)
    # the staging folders go before the intent: a staging folder without an intent is always
    # a write that never reached its commit point
    for folder in (f"{STAGED_DIR}/{intent.txid}", *intent.discard):
        shutil.rmtree(jdir / folder, ignore_errors=True)
    os.unlink(jdir / INTENT_FILE)
    fsync_dir(jdir)
    tidy(root)


def tidy(root: Path) -> None:
    """Remove the journal's folders once empty, so a finished write leaves no trace."""
    jdir = root / JOURNAL_DIR
    for folder in (jdir / STAGED_DIR, jdir):
        with contextlib.suppress(OSError):
            folder.rmdir()


def recover(root: Path) -> WriteIntent | None:
    """Complete the write a killed command committed, recording that; ``None`` if there was none.

    Call with the workspace lock held.
    """
    path = root / JOURNAL_DIR / INTENT_FILE
    if not os.path.lexists(path):
        return None
    try:
        intent = WriteIntent.read(path)
    except FinetrailError as err:
        raise _refuse(
            root, f"the record of an interrupted write is unreadable: {err.what}"
        ) from err
    _check_explains(root, intent)
    last = LedgerEntry.model_validate_json(intent.lines[-1])
    if last.kind == RECOVERED_EVENT and last.payload.get("interrupted") == intent.txid:
        completed = intent  # killed while completing it: the event is already in the intent
    else:
        # signed when the recovering command has a key; a repair is never refused for lack of one
        signer = active_signer(RECOVERED_EVENT)
        event = build_entry(
            last.seq + 1,
            last.digest,
            RECOVERED_EVENT,
            RECOVERY_ACTOR,
            {
                "action": "completed",
                "interrupted": intent.txid,
                "events": [LedgerEntry.model_validate_json(x).kind for x in intent.lines],
                "files": [f.rel for f in intent.files],
            },
            signer=signer.keyid if signer else None,
            sign=signer.sign if signer else None,
        )
        manifest = Manifest(
            files=dict(intent.manifest.files),
            ledger=LedgerAnchor(entries=event.seq + 1, head=event.digest),
        )
        completed = intent.model_copy(
            update={
                "lines": (*intent.lines, event.line().decode("utf-8").rstrip("\n")),
                "manifest": manifest,
            }
        )
        atomic_write_bytes(path, completed.canonical_bytes())
    apply(root, completed)
    return completed


def _check_explains(root: Path, intent: WriteIntent) -> None:
    jdir = root / JOURNAL_DIR
    for f in intent.files:
        src, dst = jdir / f.staged, root / f.rel
        if os.path.lexists(src):
            if sha256_file(src) != f.sha256:
                raise _refuse(root, f"the staged copy of {f.rel} differs from the one recorded")
        elif not (dst.is_file() and sha256_file(dst) == f.sha256):
            raise _refuse(root, f"{f.rel} is neither staged nor in place with its recorded digest")
    ledger = root / LEDGER_NAME
    data = read_bytes_strict(ledger) if os.path.lexists(ledger) else b""
    if len(data) < intent.ledger_offset:
        raise _refuse(root, "the ledger is shorter than when the interrupted write began")
    tail = data[intent.ledger_offset :]
    torn = intent.torn_sha256 is not None and sha256_bytes(tail) == intent.torn_sha256
    if not (intent.ledger_bytes().startswith(tail) or torn):
        raise _refuse(root, "the ledger was changed after the interrupted write began")


def _refuse(root: Path, why: str) -> InputError:
    return InputError(
        "cannot complete an interrupted write",
        path=str(root / JOURNAL_DIR / INTENT_FILE),
        why=why,
        fix="run `finetrail verify` to see what changed; restore the workspace from a copy, or "
        "delete the .finetrail-journal folder to abandon that write",
    )


def pending_findings(root: str | os.PathLike[str]) -> list[Finding]:
    """What ``verify`` reports about interrupted writes (the next write completes them)."""
    base = Path(root)
    out: list[Finding] = []
    if has_intent(base):
        out.append(
            Finding(
                "error",
                "interrupted",
                f"{JOURNAL_DIR}/{INTENT_FILE}",
                "a write was interrupted after its commit point; the next finetrail command "
                "that writes to this workspace completes it",
            )
        )
    for folder in uncommitted(base):
        if has_intent(base) and folder.endswith(_txid_of(base)):
            continue
        out.append(
            Finding(
                "warning",
                "interrupted",
                f"{JOURNAL_DIR}/{folder}",
                "files staged by a write interrupted before its commit point (nothing was "
                "recorded); the next write deletes them",
            )
        )
    return out


def _txid_of(root: Path) -> str:
    try:
        return WriteIntent.read(root / JOURNAL_DIR / INTENT_FILE).txid
    except FinetrailError:
        return "\x00"  # no folder name ends with it


def discard_uncommitted(root: Path) -> None:
    """Delete staging folders of uncommitted writes (for ``init``: there is no ledger to tell)."""
    for folder in uncommitted(root):
        shutil.rmtree(root / JOURNAL_DIR / folder, ignore_errors=True)
    tidy(root)
