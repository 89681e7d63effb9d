"""One command's writes to a workspace, built under its lock and committed at once.

:class:`Transaction` is what :meth:`Workspace.transaction` yields. It starts by completing any
write a killed command committed (:func:`~finetrail.governance.journal.recover`), reads the
ledger's tail and the manifest, and notes what an interrupted write left behind: a torn ledger
line, entries the manifest does not anchor, staged files of an uncommitted write, temp files. Each
write stages its file and builds its ledger entry at once (the sequence number is chosen here,
under the lock); :meth:`Transaction.commit` turns them into one
:class:`~finetrail.governance.journal.WriteIntent` and applies it. The repairs are recorded as the
first entries of the commit (``ledger.recovered``, ``workspace.recovered``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from finetrail.errors import InputError
from finetrail.governance import clock
from finetrail.governance.checkpoint import (
    CHECKPOINTS_FILE,
    Checkpoint,
    digests_in,
    make_checkpoint,
)
from finetrail.governance.evidence.workspace import (
    GENESIS,
    LedgerAnchor,
    LedgerEntry,
    Manifest,
    ManifestFile,
)
from finetrail.governance.io import os_error, sha256_bytes, sha256_file, write_durable
from finetrail.governance.journal import (
    INTENT_FILE,
    JOURNAL_DIR,
    MANIFEST_FILE,
    RECOVERED_EVENT,
    RECOVERY_ACTOR,
    STAGED_DIR,
    StagedFile,
    WriteIntent,
    commit,
    recover,
    staging_dir,
    tidy,
    uncommitted,
)
from finetrail.governance.keys import DEV_UNSIGNED_ENV, LEDGER_KEY_ENV, active_signer, dev_unsigned
from finetrail.governance.ledger import LEDGER_NAME, Signer, build_entry, read_tail, scan_ledger

WORKSPACE_FILE = "workspace.json"
TRACKED_DIRS = ("evidence", "artifacts")
_TEMP_PREFIXES = (f".{MANIFEST_FILE}.", f".{WORKSPACE_FILE}.")


class EntrySignerLike:
    """The key that signed an entry of this transaction (its id and signing function): the
    checkpoint is signed with the key that signed the transaction's last signed entry."""

    def __init__(self, keyid: str, sign: Signer) -> None:
        self.keyid = keyid
        self._sign = sign

    def sign(self, message: bytes) -> bytes:
        return self._sign(message)


class Transaction:
    """The writes of one command; see the module docstring. Use through
    :meth:`~finetrail.governance.workspace.Workspace.transaction`."""

    def __init__(self, root: Path, *, new: bool = False, workspace_id: str | None = None) -> None:
        self.root = root
        self.workspace_id = workspace_id
        self.txid = secrets.token_hex(8)
        self.recovered = recover(root)
        self._tail = read_tail(root / LEDGER_NAME)
        base = self._base_manifest(new)
        self._files: dict[str, ManifestFile] = dict(base.files)
        self._entries: list[LedgerEntry] = []
        self._staged: list[StagedFile] = []
        self._writes = 0
        self._committed = False
        self._signer: EntrySignerLike | None = None  # who signed this transaction's last entry
        self._seq, self._prev = self._tail.seq, self._tail.prev
        self._discard = tuple(uncommitted(root))
        self._remove = tuple(_leftovers(root, set(self._files)))
        self._note_repairs(base)

    # -- what the workspace holds now -------------------------------------------------------
    def _base_manifest(self, new: bool) -> Manifest:
        path = self.root / MANIFEST_FILE
        if new and not os.path.lexists(path) and self._tail.size == 0:
            return Manifest(files={}, ledger=LedgerAnchor(entries=0, head=GENESIS))
        return Manifest.read(path)

    def _note_repairs(self, base: Manifest) -> None:
        tail = self._tail
        if tail.torn_bytes:
            self._add("ledger.recovered", RECOVERY_ACTOR, {"torn_bytes_removed": tail.torn_bytes})
        anchor = base.ledger
        if not (anchor.entries == tail.seq and anchor.head == tail.prev):
            self._reanchor(anchor)
        if self._discard:
            names = sorted(
                f"{folder.rsplit('/', 1)[-1]}/{p.name}"
                for folder in self._discard
                for p in _children(self.root / JOURNAL_DIR / folder)
            )
            self._add(
                RECOVERED_EVENT,
                RECOVERY_ACTOR,
                {
                    "action": "rolled back",
                    "interrupted": [f.rsplit("/", 1)[-1] for f in self._discard],
                    "discarded": names,
                },
            )
        if self._remove:
            self._add(
                RECOVERED_EVENT,
                RECOVERY_ACTOR,
                {"action": "removed leftovers", "files": list(self._remove)},
            )

    def _reanchor(self, anchor: LedgerAnchor) -> None:
        """Entries after the manifest's anchor (a write killed between its ledger append and
        its manifest by an older finetrail, or an event appended outside finetrail): anchor
        them, adding the files they record that are in place. An anchor the ledger does not
        hold (a truncated or rewritten ledger) is refused."""
        entries = scan_ledger(self.root / LEDGER_NAME).entries
        at = anchor.entries - 1
        held = anchor.entries == 0 and anchor.head == GENESIS
        held = held or (0 <= at < len(entries) and entries[at].digest == anchor.head)
        if not held or anchor.entries > self._tail.seq:
            raise InputError(
                "the ledger does not hold the entry the manifest anchors; refusing to write",
                path=str(self.root / LEDGER_NAME),
                why=f"the manifest anchors entry {anchor.entries - 1} ({anchor.head[:12]}...): "
                "the ledger was truncated or rewritten, or the manifest replaced",
                fix="run `finetrail verify` to see what changed, and restore the workspace "
                "from a copy",
            )
        later = entries[anchor.entries :]
        files = []
        for e in later:
            rel, digest = e.payload.get("path"), e.payload.get("sha256")
            if not (isinstance(rel, str) and isinstance(digest, str)) or rel == WORKSPACE_FILE:
                continue
            file = self.root / rel
            if file.is_file() and sha256_file(file) == digest:
                self._files[rel] = ManifestFile(sha256=digest, size=file.stat().st_size)
                files.append(rel)
        self._add(
            RECOVERED_EVENT,
            RECOVERY_ACTOR,
            {"action": "re-anchored", "entries": [e.seq for e in later], "files": files},
        )

    # -- writing ----------------------------------------------------------------------------
    def _add(
        self,
        kind: str,
        actor: str,
        payload: Mapping[str, Any],
        *,
        signer: str | None = None,
        sign: Signer | None = None,
    ) -> LedgerEntry:
        if sign is None:
            active = active_signer(kind)
            if active is not None:
                signer, sign = active.keyid, active.sign
            elif not dev_unsigned():
                raise InputError(
                    f"refusing to write an unsigned ledger entry ({kind})",
                    why="every ledger entry is signed by its actor's key, and no signing key "
                    f"is configured (${LEDGER_KEY_ENV})",
                    fix=f"set {LEDGER_KEY_ENV} to your Ed25519 key (PEM, from `finetrail keys "
                    f"generate`), or {DEV_UNSIGNED_ENV}=1 for development (verify warns and "
                    "the shipped policy packs fail unsigned entries)",
                )
        entry = build_entry(self._seq, self._prev, kind, actor, payload, signer=signer, sign=sign)
        if signer is not None and sign is not None:
            self._signer = EntrySignerLike(signer, sign)
        self._entries.append(entry)
        self._seq, self._prev = entry.seq + 1, entry.digest
        return entry

    def _target(self, rel: str) -> Path:
        """The file ``rel`` will replace; refuses a directory or non-directory in its way."""
        parts = PurePosixPath(rel).parts
        cur = self.root
        for part in parts[:-1]:
            cur = cur / part
            if os.path.lexists(cur) and not cur.is_dir():
                raise InputError(
                    "a file is in the way of a folder the write needs",
                    path=str(cur),
                    fix="move the file away",
                )
        target = self.root / rel
        if os.path.lexists(target) and (target.is_dir() and not target.is_symlink()):
            raise InputError(
                "expected a file, found a directory", path=str(target), fix="move it away"
            )
        return target

    def _stage_name(self, rel: str) -> str:
        self._writes += 1
        return f"{self._writes:04d}-{PurePosixPath(rel).name}"

    def stage_bytes(
        self,
        rel: str,
        data: bytes,
        *,
        event: str,
        actor: str,
        extra: Mapping[str, Any] | None = None,
        track: bool = True,
        payload: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """Write ``data`` at ``rel`` with one ledger event (payload: path, sha256, ``extra``).

        ``track=False`` (``workspace.json``) keeps the file out of the manifest; ``payload``
        then replaces the default payload.
        """
        self._target(rel)
        name = self._stage_name(rel)
        write_durable(staging_dir(self.root, self.txid) / name, data)
        digest = sha256_bytes(data)
        return self._staged_file(rel, name, digest, len(data), event, actor, extra, track, payload)

    def stage_file(
        self,
        rel: str,
        src: Path,
        *,
        event: str,
        actor: str,
        extra: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """Copy the file ``src`` to ``rel`` with one ledger event."""
        self._target(rel)
        name = self._stage_name(rel)
        staged = staging_dir(self.root, self.txid) / name
        staged.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src, staged)
        except OSError as exc:
            raise os_error(exc, src) from exc
        with open(staged, "rb+") as fh:
            os.fsync(fh.fileno())
        digest = sha256_file(staged)
        size = staged.stat().st_size
        return self._staged_file(rel, name, digest, size, event, actor, extra, True, None)

    def _staged_file(
        self,
        rel: str,
        name: str,
        digest: str,
        size: int,
        event: str,
        actor: str,
        extra: Mapping[str, Any] | None,
        track: bool,
        payload: Mapping[str, Any] | None,
    ) -> LedgerEntry:
        staged = f"{STAGED_DIR}/{self.txid}/{name}"
        self._staged.append(StagedFile(rel=rel, staged=staged, sha256=digest, size=size))
        if track:
            self._files[rel] = ManifestFile(sha256=digest, size=size)
        body = dict(payload) if payload is not None else {"path": rel, "sha256": digest}
        return self._add(event, actor, {**body, **(extra or {})})

    def event(
        self,
        kind: str,
        *,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        signer: str | None = None,
        sign: Signer | None = None,
    ) -> LedgerEntry:
        """An event that writes no file (e.g. a review)."""
        return self._add(kind, actor, payload or {}, signer=signer, sign=sign)

    def manifest(self) -> Manifest:
        """The manifest as it will be after the commit (the one on disk when nothing is staged)."""
        head = self._entries[-1] if self._entries else None
        anchor = (
            LedgerAnchor(entries=head.seq + 1, head=head.digest)
            if head
            else LedgerAnchor(entries=self._tail.seq, head=self._tail.prev)
        )
        return Manifest(files=dict(sorted(self._files.items())), ledger=anchor)

    # -- ending ---------------------------------------------------------------------------------
    @property
    def has_writes(self) -> bool:
        return self._writes > 0 or any(
            e.kind not in ("ledger.recovered", RECOVERED_EVENT) for e in self._entries
        )

    def commit(self) -> None:
        """Write the intent (the commit point) and apply it; a no-op when nothing was written."""
        if not self.has_writes:
            self.abort()
            return
        tail = self._tail
        ledger = self.root / LEDGER_NAME
        size = ledger.stat().st_size if os.path.lexists(ledger) else 0
        if size != tail.size:
            raise InputError(
                "the ledger changed while this command held the workspace lock",
                path=str(self.root / LEDGER_NAME),
                fix="append to a workspace's ledger only through finetrail commands",
            )
        checkpoint, cp_offset = self._checkpoint()
        intent = WriteIntent(
            txid=self.txid,
            files=tuple(self._staged),
            ledger_offset=tail.complete_end,
            ledger_size=tail.size,
            torn_sha256=self._torn_digest(),
            lines=tuple(e.line().decode("utf-8").rstrip("\n") for e in self._entries),
            manifest=self.manifest(),
            discard=self._discard,
            remove=self._remove,
            checkpoint=checkpoint.canonical_bytes().decode("utf-8").rstrip("\n"),
            checkpoints_offset=cp_offset,
        )
        self._committed = True
        commit(self.root, intent)

    def log_digests(self) -> list[str]:
        """The digests of every entry the ledger will hold before the next one this transaction
        adds (the committed ledger, then this transaction's entries so far): the Merkle log's
        leaves. A signature that binds the checkpoint of these binds the whole history."""
        ledger = self.root / LEDGER_NAME
        if self._tail.complete_end:
            with open(ledger, "rb") as fh:
                before = digests_in(fh.read(self._tail.complete_end))
        else:
            before = []
        return [*before, *(e.digest for e in self._entries)]

    def _checkpoint(self) -> tuple[Checkpoint, int]:
        """The signed checkpoint of the ledger as this commit leaves it, and the size of
        ``checkpoints.jsonl`` now (where it is appended)."""
        workspace_id = self.workspace_id
        if workspace_id is None:  # init: the id is in the workspace.created event
            created = next((e for e in self._entries if e.kind == "workspace.created"), None)
            wsid = created.payload.get("workspace_id") if created else None
            workspace_id = wsid if isinstance(wsid, str) else None
        cp = make_checkpoint(
            digests=self.log_digests(),
            workspace_id=workspace_id,
            time=clock.now(),
            signer=self._signer,
        )
        path = self.root / CHECKPOINTS_FILE
        try:
            size = os.lstat(path).st_size
        except FileNotFoundError:
            size = 0
        except OSError as exc:
            raise os_error(exc, path) from exc
        return cp, size

    def _torn_digest(self) -> str | None:
        if not self._tail.torn_bytes:
            return None
        with open(self.root / LEDGER_NAME, "rb") as fh:
            fh.seek(self._tail.complete_end)
            return sha256_bytes(fh.read(self._tail.torn_bytes))

    def abort(self) -> None:
        """Drop what was staged (nothing was visible yet). After the commit point, keep it all:
        the next command completes the write."""
        if self._committed:
            return
        shutil.rmtree(staging_dir(self.root, self.txid), ignore_errors=True)
        tidy(self.root)


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _leftovers(root: Path, tracked: set[str]) -> list[str]:
    """Temp files of interrupted atomic writes: ``.NAME.*.tmp`` at the root and in the tracked
    folders (never a file the manifest lists)."""
    out = []
    for p in _children(root):
        if p.name.startswith(_TEMP_PREFIXES) and p.name.endswith(".tmp"):
            out.append(p.name)
    for p in _children(root / JOURNAL_DIR):
        if p.name.startswith(f".{INTENT_FILE}.") and p.name.endswith(".tmp"):
            out.append(f"{JOURNAL_DIR}/{p.name}")
    for top in TRACKED_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        with contextlib.suppress(OSError):
            for p in base.rglob(".*.tmp"):
                rel = p.relative_to(root).as_posix()
                if p.is_file() and rel not in tracked:
                    out.append(rel)
    return sorted(out)
