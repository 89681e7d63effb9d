"""The evidence workspace: one folder per model release.

::

    <workspace>/
      workspace.json   ledger.jsonl   manifest.json
      evidence/        artifacts/     dossier/

Every write of evidence or an artifact goes through :class:`Workspace`, which writes the file
atomically (temp file, then rename), appends a ledger event naming the file's SHA-256, and then
re-anchors ``manifest.json`` (file digests and the ledger head), all under one workspace lock.
"""

from __future__ import annotations

import getpass
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from finetrail.errors import InputError
from finetrail.governance import clock
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.workspace import (
    GENESIS,
    LedgerAnchor,
    LedgerEntry,
    Manifest,
    ManifestFile,
    WorkspaceMetadata,
)
from finetrail.governance.io import (
    atomic_write_bytes,
    file_lock,
    read_json_strict,
    sha256_bytes,
    sha256_file,
)
from finetrail.governance.ledger import LEDGER_NAME, Ledger, Signer

R = TypeVar("R", bound=EvidenceRecord)

WORKSPACE_FILE = "workspace.json"
MLFLOW_DB = "mlflow.db"  # the default MLflow backend of a workspace
MANIFEST_FILE = "manifest.json"
TRACKED_DIRS = ("evidence", "artifacts")
SUBDIRS = ("evidence", "artifacts", "dossier")
LOCK_NAME = ".finetrail.lock"


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
    ) -> Workspace:
        """Create a new workspace; refuses to overwrite an existing one."""
        path = Path(root)
        if (path / WORKSPACE_FILE).exists():
            raise InputError(
                "a workspace already exists here",
                path=str(path),
                fix="choose another folder, or open the existing workspace",
            )
        if path.exists() and not path.is_dir():
            raise InputError("not a directory", path=str(path))
        if path.exists() and any(p for p in path.iterdir() if not p.name.startswith(".")):
            raise InputError(
                "the folder is not empty",
                path=str(path),
                fix="initialise a workspace in a new or empty folder",
            )
        metadata = WorkspaceMetadata.parse(
            {
                "model": model,
                "version": version,
                "owner": owner,
                "created": clock.now().isoformat(),
                "description": description,
                "intended_purpose": intended_purpose,
                "provider": provider,
            },
            source="finetrail init",
        )
        for sub in SUBDIRS:
            (path / sub).mkdir(parents=True, exist_ok=True)
        ws = cls(path, metadata)
        with ws.locked():
            atomic_write_bytes(path / WORKSPACE_FILE, metadata.canonical_bytes())
            entry = ws.ledger.append(
                "workspace.created",
                actor=actor or owner,
                payload={
                    "path": WORKSPACE_FILE,
                    "sha256": metadata.content_digest(),
                    "model": model,
                    "version": version,
                },
            )
            ws._write_manifest({}, entry)
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
        if not (path / WORKSPACE_FILE).exists():
            raise InputError(
                f"not a finetrail workspace (no {WORKSPACE_FILE})",
                path=str(path),
                fix="create it with `finetrail init`",
            )
        metadata = WorkspaceMetadata.read(path / WORKSPACE_FILE)
        return cls(path, metadata)

    # -- locking ---------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        with file_lock(self.root / LOCK_NAME):
            yield

    # -- manifest --------------------------------------------------------------------------
    def read_manifest(self) -> Manifest:
        return Manifest.read(self.root / MANIFEST_FILE)

    def _write_manifest(self, files: Mapping[str, ManifestFile], head: LedgerEntry) -> Manifest:
        manifest = Manifest(
            files=dict(sorted(files.items())),
            ledger=LedgerAnchor(entries=head.seq + 1, head=head.digest),
        )
        atomic_write_bytes(self.root / MANIFEST_FILE, manifest.canonical_bytes())
        return manifest

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
        with self.locked():
            atomic_write_bytes(self.root / rel, data)
            digest = sha256_bytes(data)
            return self._record(rel, digest, len(data), event, actor, extra)

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
        if not src_path.exists():
            raise InputError("artifact not found", path=str(src_path))
        with self.locked():
            target = self.root / rel
            if src_path.is_dir():
                last: LedgerEntry | None = None
                files = sorted(p for p in src_path.rglob("*") if p.is_file())
                for f in files:
                    sub = f"{rel}/{f.relative_to(src_path).as_posix()}"
                    self._copy_atomic(f, self.root / sub)
                    last = self._record(
                        sub, sha256_file(self.root / sub), f.stat().st_size, event, actor, extra
                    )
                if last is None:
                    raise InputError("artifact folder is empty", path=str(src_path))
                return last
            self._copy_atomic(src_path, target)
            return self._record(
                rel, sha256_file(target), target.stat().st_size, event, actor, extra
            )

    @staticmethod
    def _copy_atomic(src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)

    def _record(
        self,
        rel: str,
        digest: str,
        size: int,
        event: str,
        actor: str,
        extra: Mapping[str, Any] | None,
    ) -> LedgerEntry:
        manifest = self.read_manifest()
        files = dict(manifest.files)
        files[rel] = ManifestFile(sha256=digest, size=size)
        entry = self.ledger.append(
            event, actor=actor, payload={"path": rel, "sha256": digest, **(extra or {})}
        )
        self._write_manifest(files, entry)
        return entry

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
        with self.locked():
            manifest = self.read_manifest()
            entry = self.ledger.append(kind, actor=actor, payload=payload, signer=signer, sign=sign)
            self._write_manifest(manifest.files, entry)
            return entry

    # -- reading ---------------------------------------------------------------------------
    def read_record(self, rel: str, cls: type[R]) -> R:
        return cls.read(self.root / rel)

    def read_json(self, rel: str) -> Any:
        return read_json_strict(self.root / rel)

    def path(self, rel: str) -> Path:
        return self.root / rel


def empty_anchor() -> LedgerAnchor:
    return LedgerAnchor(entries=0, head=GENESIS)
