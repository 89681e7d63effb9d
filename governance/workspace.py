"""The evidence workspace: one folder per model release.

::

    <workspace>/
      workspace.json   ledger.jsonl   manifest.json
      evidence/        artifacts/     dossier/

Every write of evidence or an artifact goes through :class:`Workspace`. Under one workspace lock
it stages the file, chooses the ledger entry's sequence number and builds the entry naming the
file's SHA-256, then commits through a write-ahead intent that moves the file into place, appends
the entry and re-anchors ``manifest.json`` (file digests and the ledger head). A command that
writes several files wraps them in :meth:`Workspace.transaction` so that they land together or
not at all. A kill at any point leaves either no visible change or an intent the next command
completes (:mod:`finetrail.governance.journal`); either way the repair is recorded in the ledger.
"""

from __future__ import annotations

import getpass
import os
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from finetrail.errors import InputError
from finetrail.governance import clock, journal
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.workspace import (
    GENESIS,
    LedgerAnchor,
    LedgerEntry,
    Manifest,
    WorkspaceMetadata,
)
from finetrail.governance.io import read_json_strict
from finetrail.governance.journal import JOURNAL_DIR, MANIFEST_FILE
from finetrail.governance.ledger import LEDGER_NAME, Ledger, Signer
from finetrail.governance.locking import DEFAULT_LOCK_TIMEOUT, file_lock
from finetrail.governance.transaction import TRACKED_DIRS, WORKSPACE_FILE, Transaction

R = TypeVar("R", bound=EvidenceRecord)

MLFLOW_DB = "mlflow.db"  # the default MLflow backend of a workspace
SUBDIRS = ("evidence", "artifacts", "dossier")
LOCK_NAME = ".finetrail.lock"
# finetrail's own bookkeeping at the workspace root: the locks and the write-ahead journal
INTERNAL_NAMES = (LOCK_NAME, f".{LEDGER_NAME}.lock", JOURNAL_DIR)
__all__ = [
    "INTERNAL_NAMES",
    "LOCK_NAME",
    "MANIFEST_FILE",
    "MLFLOW_DB",
    "SUBDIRS",
    "TRACKED_DIRS",
    "WORKSPACE_FILE",
    "TrackingUri",
    "Workspace",
    "belongs_to",
    "default_actor",
    "read_locked",
    "tracking_uri",
    "workspace_store_uri",
]

_active = threading.local()  # this thread's open transactions: resolved root -> Transaction


def _transactions() -> dict[str, Transaction]:
    txs: dict[str, Transaction] = _active.__dict__.setdefault("txs", {})
    return txs


def _check_relpath(rel: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise InputError(
            f"invalid workspace path {rel!r}", why="must be relative, inside the workspace"
        )
    if p.parts[0] not in TRACKED_DIRS:
        raise InputError(
            f"invalid workspace path {rel!r}",
            why=f"evidence and artifacts live under {', '.join(TRACKED_DIRS)}/",
        )
    return str(p)


# root files written untracked through :meth:`Workspace.write_root_file` (coverage allows them)
UNTRACKED_ROOT_FILES: tuple[str, ...] = ("keyring.json",)


@dataclass(frozen=True)
class TrackingUri:
    """The MLflow store a command talks to, and why that one."""

    uri: str
    source: str  # "explicit" (--tracking-uri / $MLFLOW_TRACKING_URI), "recorded", "workspace"
    refused: str | None = None  # a recorded URI that points outside this workspace

    @property
    def is_default(self) -> bool:
        return self.source == "workspace"


def workspace_store_uri(root: str | os.PathLike[str]) -> str:
    """The workspace's own MLflow store: ``sqlite:///<workspace>/mlflow.db``."""
    return f"sqlite:///{Path(root).resolve() / MLFLOW_DB}"


def _local_path(uri: str) -> Path | None:
    for prefix in ("sqlite:///", "file://"):
        if uri.startswith(prefix):
            return Path(uri.removeprefix(prefix).split("?", 1)[0])
    if "://" not in uri:
        return Path(uri)
    return None


def belongs_to(uri: str, root: str | os.PathLike[str]) -> bool:
    """Whether a recorded tracking URI may be honoured for the workspace at ``root``.

    A server (``http(s)://``, a database URL) is the team's store and belongs; a local file
    store belongs only when it lies inside the workspace (a copied or moved workspace must not
    write to the store of the original).
    """
    path = _local_path(uri)
    if path is None:
        return True
    try:
        path.resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True


def tracking_uri(
    root: str | os.PathLike[str], *, explicit: str | None = None, recorded: str | None = None
) -> TrackingUri:
    """The one precedence rule for the MLflow tracking URI.

    1. ``explicit``: the command's ``--tracking-uri`` (the CLI fills it from
       ``$MLFLOW_TRACKING_URI``); library code never reads the environment;
    2. ``recorded``: the URI the training run recorded, only when it belongs to this workspace
       (:func:`belongs_to`);
    3. the workspace's own ``mlflow.db``.
    """
    if explicit and explicit.strip():
        return TrackingUri(explicit, "explicit")
    if recorded and recorded.strip() and "***" not in recorded:
        if belongs_to(recorded, root):
            return TrackingUri(recorded, "recorded")
        return TrackingUri(workspace_store_uri(root), "workspace", refused=recorded)
    return TrackingUri(workspace_store_uri(root), "workspace")


def default_actor(explicit: str | None, *, owner: str | None = None) -> str:
    """Who the ledger names for a command: the one rule every command uses.

    The caller's ``--actor`` (or ``$FINETRAIL_ACTOR``, read by the CLI option) when given; else
    the login name of the user running the command; else the workspace owner; else
    ``"finetrail"``.
    """
    if explicit and explicit.strip():
        return explicit
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, no LOGNAME/USER
        login = ""
    return login or owner or "finetrail"


class Workspace:
    """A model release's evidence folder."""

    lock_timeout: float = DEFAULT_LOCK_TIMEOUT  # seconds to wait for another command's write

    def __init__(self, root: str | os.PathLike[str], metadata: WorkspaceMetadata) -> None:
        self.root = Path(root)
        self.metadata = metadata
        self.ledger = Ledger(self.root / LEDGER_NAME)

    # -- creating and opening -------------------------------------------------------------
    @classmethod
    def init(
        cls,
        root: str | os.PathLike[str],
        *,
        model: str,
        version: str,
        owner: str,
        actor: str | None = None,
        description: str = "",
        intended_purpose: str = "",
        provider: str = "",
        workspace_id: str | None = None,
    ) -> Workspace:
        """Create a new workspace; refuses to overwrite an existing one.

        ``workspace_id`` is made at random (128 bits) unless given (tests that need stable
        bytes).

        The folder may hold hidden files (and the empty subfolders an interrupted ``init``
        made); an ``init`` killed after its commit point is completed, then refused here.
        """
        path = Path(root)
        _check_init_target(path)
        metadata = WorkspaceMetadata.parse(
            {
                "model": model,
                "version": version,
                "owner": owner,
                "created": clock.now().isoformat(),
                "description": description,
                "intended_purpose": intended_purpose,
                "provider": provider,
                "workspace_id": workspace_id or secrets.token_hex(16),
            },
            source="finetrail init",
        )
        path.mkdir(parents=True, exist_ok=True)
        ws = cls(path, metadata)
        with ws.locked():
            if journal.has_intent(path):
                with ws.transaction():
                    pass  # completes the interrupted init
            _check_init_target(path)  # again, under the lock: another init may have won
            journal.discard_uncommitted(path)  # an init killed before its commit point
            with ws.transaction(new=True) as tx:
                tx.stage_bytes(
                    WORKSPACE_FILE,
                    metadata.canonical_bytes(),
                    event="workspace.created",
                    actor=actor or owner,
                    track=False,
                    payload={
                        "path": WORKSPACE_FILE,
                        "sha256": metadata.content_digest(),
                        "model": model,
                        "version": version,
                        "workspace_id": metadata.workspace_id,
                    },
                )
        for sub in SUBDIRS:
            (path / sub).mkdir(parents=True, exist_ok=True)
        return ws

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> Workspace:
        path = Path(root)
        if not path.exists():
            raise InputError(
                "workspace not found",
                path=str(path),
                fix="create it with `finetrail init WORKSPACE --model ... --version ... --owner ...`",
            )
        meta = path / WORKSPACE_FILE
        ledger = path / LEDGER_NAME
        unborn = not os.path.lexists(meta) or not (ledger.is_file() and ledger.stat().st_size)
        if unborn and journal.has_intent(path):
            with file_lock(path / LOCK_NAME, timeout=cls.lock_timeout):
                if journal.has_intent(path):
                    journal.recover(path)  # an init killed after its commit point
        if not os.path.lexists(meta):
            raise InputError(
                f"not a finetrail workspace (no {WORKSPACE_FILE})",
                path=str(path),
                fix="create it with `finetrail init`",
            )
        metadata = WorkspaceMetadata.read(meta)
        return cls(path, metadata)

    # -- locking ---------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """The workspace lock (re-entrant within a thread; see :func:`~finetrail.governance.io.file_lock`)."""
        with file_lock(self.root / LOCK_NAME, timeout=self.lock_timeout):
            yield

    @contextmanager
    def transaction(self, *, new: bool = False) -> Iterator[Transaction]:
        """Hold the workspace lock and gather every write of the block into one commit.

        Everything a command decides from the workspace's state and then writes belongs in
        one block (e.g. the gate: choose the decision's number, evaluate, write the decision
        and its attestation): other commands wait, and a kill leaves all of the block's writes
        or none. Writes become visible at the end of the outermost block; an exception that
        leaves it drops them. Nested blocks (any :class:`Workspace` object on the same folder,
        in the same thread) join the outer one.
        """
        key = str(self.root.resolve())
        txs = _transactions()
        if key in txs:
            yield txs[key]
            return
        with self.locked(), file_lock(self.ledger.lock_path, timeout=self.lock_timeout):
            tx = Transaction(self.root, new=new, workspace_id=self.metadata.workspace_id)
            txs[key] = tx
            try:
                yield tx
                tx.commit()
            except BaseException:
                tx.abort()
                raise
            finally:
                txs.pop(key, None)

    # -- manifest --------------------------------------------------------------------------
    def read_manifest(self) -> Manifest:
        """The manifest; inside a transaction, as it will be once the transaction commits."""
        tx = _transactions().get(str(self.root.resolve()))
        if tx is not None:
            return tx.manifest()
        return Manifest.read(self.root / MANIFEST_FILE)

    def manifest_digest(self) -> str:
        """The digest that reviews and attestations bind to: the manifest's file map."""
        return self.read_manifest().files_digest()

    # -- writing evidence ------------------------------------------------------------------
    def write_record(
        self,
        rel: str,
        record: EvidenceRecord,
        *,
        event: str,
        actor: str,
        extra: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """Write an evidence record at ``rel`` (e.g. ``evidence/training.json``)."""
        return self.write_bytes(
            rel,
            record.canonical_bytes(),
            event=event,
            actor=actor,
            extra={"record_type": record.record_type, **(extra or {})},
        )

    def write_bytes(
        self,
        rel: str,
        data: bytes,
        *,
        event: str,
        actor: str,
        extra: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        rel = _check_relpath(rel)
        with self.transaction() as tx:
            return tx.stage_bytes(rel, data, event=event, actor=actor, extra=extra)

    def write_root_file(
        self,
        name: str,
        data: bytes,
        *,
        event: str,
        actor: str,
        payload: Mapping[str, Any],
    ) -> LedgerEntry:
        """Write a file at the workspace root that the manifest does not track (e.g.
        ``keyring.json``) with one ledger event, through the same journal as every write."""
        if name not in UNTRACKED_ROOT_FILES:
            raise InputError(
                f"invalid workspace root file {name!r}",
                why="finetrail writes only "
                + ", ".join(UNTRACKED_ROOT_FILES)
                + " untracked at the root (verify names any other file as extra)",
            )
        with self.transaction() as tx:
            return tx.stage_bytes(
                name, data, event=event, actor=actor, track=False, payload=payload
            )

    def add_artifact(
        self,
        src: str | os.PathLike[str],
        rel: str,
        *,
        event: str = "artifact.added",
        actor: str,
        extra: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """Copy a file (or every file of a folder) under ``artifacts/`` and record it."""
        rel = _check_relpath(rel)
        src_path = Path(src)
        if not os.path.lexists(src_path):
            raise InputError("artifact not found", path=str(src_path))
        files = _artifact_files(src_path)
        with self.transaction() as tx:
            if not src_path.is_dir():
                return tx.stage_file(rel, src_path, event=event, actor=actor, extra=extra)
            last: LedgerEntry | None = None
            for f in files:
                sub = f"{rel}/{f.relative_to(src_path).as_posix()}"
                last = tx.stage_file(sub, f, event=event, actor=actor, extra=extra)
            if last is None:
                raise InputError("artifact folder is empty", path=str(src_path))
            return last

    def append_event(
        self,
        kind: str,
        *,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        signer: str | None = None,
        sign: Signer | None = None,
    ) -> LedgerEntry:
        """Append an event that writes no file (e.g. a review) and re-anchor the manifest."""
        with self.transaction() as tx:
            return tx.event(kind, actor=actor, payload=payload, signer=signer, sign=sign)

    # -- reading ---------------------------------------------------------------------------
    def read_record(self, rel: str, cls: type[R]) -> R:
        return cls.read(self.root / rel)

    def read_json(self, rel: str) -> Any:
        return read_json_strict(self.root / rel)

    def path(self, rel: str) -> Path:
        return self.root / rel


@contextmanager
def read_locked(
    root: str | os.PathLike[str], *, timeout: float = DEFAULT_LOCK_TIMEOUT
) -> Iterator[None]:
    """Hold the workspace lock shared for a block that reads several of its files.

    No write lands while the block runs, so the manifest, the ledger and the files they name are
    read as one state (``verify`` and the checks a command runs before it writes). Creates no
    file: a workspace without a lock file is read without one. Inside a transaction of the same
    thread it joins the exclusive hold.
    """
    with file_lock(Path(root) / LOCK_NAME, timeout=timeout, shared=True, create=False):
        yield


def _check_init_target(path: Path) -> None:
    if os.path.lexists(path / WORKSPACE_FILE):
        raise InputError(
            "a workspace already exists here",
            path=str(path),
            fix="choose another folder, or open the existing workspace",
        )
    if os.path.lexists(path) and not path.is_dir():
        raise InputError("not a directory", path=str(path))
    if path.is_dir() and any(_in_the_way(p) for p in path.iterdir()):
        raise InputError(
            "the folder is not empty",
            path=str(path),
            fix="initialise a workspace in a new or empty folder",
        )


def _in_the_way(p: Path) -> bool:
    """Whether ``p`` keeps ``init`` from using its folder (hidden files and empty standard
    subfolders do not)."""
    if p.name.startswith("."):
        return False
    if p.name in SUBDIRS and p.is_dir() and not p.is_symlink():
        return any(True for _ in p.iterdir())
    return True


def _artifact_files(src: Path) -> list[Path]:
    """The files an artifact copies: ``src`` itself, or every file under the folder ``src``.

    A symlink loop or a dangling link is refused (naming it); links to folders are not followed.
    """
    if not src.is_dir():
        if not src.is_file():
            raise InputError(
                "artifact is not a regular file (a symlink loop, dangling link or device?)",
                path=str(src),
            )
        return [src]
    out = []
    for p in sorted(src.rglob("*")):
        if p.is_symlink() and not p.exists():
            raise InputError("a symlink loop or dangling link in the artifact", path=str(p))
        if p.is_file():
            out.append(p)
    return out


def empty_anchor() -> LedgerAnchor:
    return LedgerAnchor(entries=0, head=GENESIS)
