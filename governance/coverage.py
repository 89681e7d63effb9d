"""``verify`` covers what an analyst or a deployer reads, not only what the manifest tracks.

Three checks, registered in :func:`finetrail.governance.verify.extra_checks`; each reports every
problem it finds (collect, then report), never raises on a strange file:

- :func:`check_dossier`: the rendered outputs. ``finetrail report`` records the SHA-256 of every
  file it writes under ``dossier/`` as a ``report.rendered`` ledger event (``files``: path ->
  digest, ``removed``: paths it deleted). Every file under ``dossier/`` must be one the latest
  events name, with that digest (``modified``, ``extra``, ``missing``).
- :func:`check_mlflow_store`: the artifacts training logged to the workspace's own MLflow file
  store (``mlflow-artifacts/<run>/artifacts/``: the adapter copy and the training
  record), compared by digest with what the ledger recorded for ``artifacts/adapter/`` and
  ``evidence/training.json``. mlflow is not imported: the store is read on disk. A remote store,
  or a local one outside the workspace, is ``not checked`` (a warning).
- :func:`check_tree`: every other file of the workspace. At the root only finetrail's own files
  (``workspace.json``, ``ledger.jsonl``, ``manifest.json``, the locks and the journal,
  ``keyring.json``, the MLflow store ``mlflow.db`` and ``mlflow-artifacts/``) and the folders
  ``evidence/``, ``artifacts/``, ``dossier/`` may exist (``extra``); nothing anywhere may be a
  symlink, FIFO, socket or device (``extra``, "not a regular file").

Not covered: ``mlflow.db`` itself (the registry writes to it after the gate: tags and aliases) and
store content outside the recorded run (named as a warning). A kill between ``report`` writing a
file and recording its digest leaves a file verify reports; running ``report`` again repairs it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetrail.errors import FinetrailError
from finetrail.governance.findings import Finding
from finetrail.governance.io import sha256_file

if TYPE_CHECKING:
    from finetrail.governance.verify import VerifyContext

__all__ = [
    "DOSSIER_DIR",
    "MLFLOW_ARTIFACTS",
    "REPORT_EVENT",
    "check_dossier",
    "check_mlflow_store",
    "check_tree",
    "coverage_checks",
]

DOSSIER_DIR = "dossier"
MLFLOW_ARTIFACTS = "mlflow-artifacts"  # the default artifact root of a workspace's MLflow store
REPORT_EVENT = "report.rendered"
ADAPTER_DIR = "artifacts/adapter"
TRAINING_RECORD = "evidence/training.json"
# root entries besides the tracked folders: finetrail's files, the reviewers' keyring, the store
_ROOT_FILES = (
    "workspace.json",
    "ledger.jsonl",
    "manifest.json",
    "keyring.json",
    "checkpoints.jsonl",  # the signed log checkpoints (governance.checkpoint)
)
_STORE_FILES = ("mlflow.db", "mlflow.db-journal", "mlflow.db-wal", "mlflow.db-shm")
_ROOT_DIRS = ("evidence", "artifacts", DOSSIER_DIR, MLFLOW_ARTIFACTS)


def coverage_checks() -> tuple[Any, ...]:
    return (check_dossier, check_mlflow_store, check_tree)


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _walk(base: Path) -> Iterator[tuple[Path, os.stat_result | None]]:
    """Every entry under ``base`` that is not a directory, without following links; an entry
    whose ``lstat`` fails comes with ``None``. Directories that cannot be listed are yielded
    too (with their ``lstat``), so that the caller names them."""
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        yield base, None
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            st = path.lstat()
        except OSError:
            yield path, None
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(path)
        else:
            yield path, st


def _kind_problem(st: os.stat_result | None) -> str | None:
    """Why an entry is not a regular file that can be read, or ``None``."""
    if st is None:
        return "cannot be read (permission, or removed while verify ran)"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link, not a regular file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (FIFO, socket or device)"
    return None


def _digest(path: Path, st: os.stat_result | None) -> tuple[str | None, str | None]:
    """(sha256, problem): a regular file's digest, or why it has none."""
    problem = _kind_problem(st)
    if problem:
        return None, problem
    try:
        return sha256_file(path), None
    except (OSError, FinetrailError) as err:
        return None, f"cannot be read ({getattr(err, 'what', None) or err})"


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# -- rendered outputs --------------------------------------------------------------------------
def rendered_files(entries: list[Any]) -> tuple[dict[str, str], list[Finding]]:
    """What the ``report.rendered`` events say ``dossier/`` holds (path -> sha256)."""
    files: dict[str, str] = {}
    problems: list[Finding] = []
    for e in entries:
        if e.kind != REPORT_EVENT:
            continue
        payload = e.payload if isinstance(e.payload, dict) else {}
        written, removed = payload.get("files"), payload.get("removed", [])
        ok = (
            isinstance(written, dict)
            and isinstance(removed, list)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in written.items())
            and all(isinstance(r, str) for r in removed)
        )
        if not ok or not isinstance(written, dict) or not isinstance(removed, list):
            problems.append(
                Finding(
                    "error",
                    "modified",
                    f"ledger.jsonl:{e.seq}",
                    f"{REPORT_EVENT} event without a files map (path -> sha256) and a removed list",
                )
            )
            continue
        for rel in removed:
            files.pop(rel, None)
        files.update(written)
    return files, problems


def check_dossier(root: Path, ctx: VerifyContext) -> list[Finding]:
    """Every file under ``dossier/`` is one ``finetrail report`` wrote, unchanged since."""
    expected, out = rendered_files(ctx.entries)
    base = root / DOSSIER_DIR
    seen: set[str] = set()
    if base.is_dir() and not base.is_symlink():
        for path, st in _walk(base):
            rel = _rel(root, path)
            if _is_temp(path.name):
                out.append(
                    Finding("warning", "temporary", rel, "left over from an interrupted write")
                )
                continue
            seen.add(rel)
            digest, problem = _digest(path, st)
            if rel not in expected:
                why = problem or "not written by `finetrail report` (no report.rendered event)"
                out.append(Finding("error", "extra", rel, why))
            elif problem:
                out.append(Finding("error", "modified", rel, problem))
            elif digest != expected[rel]:
                out.append(
                    Finding(
                        "error",
                        "modified",
                        rel,
                        f"sha256 {digest[:16] if digest else ''}... differs from the "
                        f"{expected[rel][:16]}... that `finetrail report` recorded "
                        "(edited after rendering?)",
                    )
                )
    for rel in sorted(set(expected) - seen):
        out.append(
            Finding("error", "missing", rel, "written by `finetrail report` but absent; re-render")
        )
    return out


# -- the MLflow store --------------------------------------------------------------------------
def _recorded_digests(entries: list[Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in entries:
        p, d = e.payload.get("path"), e.payload.get("sha256")
        if isinstance(p, str) and isinstance(d, str):
            out.setdefault(p, set()).add(d)
    return out


def _training_mlflow(root: Path) -> dict[str, Any] | None:
    from finetrail.governance.io import read_json_strict

    try:
        data = read_json_strict(root / TRAINING_RECORD)
    except (FinetrailError, OSError):
        return None  # missing or unreadable: the core checks name it
    section = data.get("mlflow") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else None


def _is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:///", "file://")) or "://" not in uri


def check_mlflow_store(root: Path, ctx: VerifyContext) -> list[Finding]:
    """The adapter copy and training record in the workspace's MLflow file store are the ones
    the ledger recorded; nothing else sits in the run's artifact folder."""
    from finetrail.governance.workspace import belongs_to

    section = _training_mlflow(root)
    store = root / MLFLOW_ARTIFACTS
    run_id = (section or {}).get("run_id")
    if not (isinstance(run_id, str) and run_id):
        if store.exists() or store.is_symlink():
            return [
                Finding(
                    "error",
                    "extra",
                    MLFLOW_ARTIFACTS,
                    "an MLflow artifact store, but the training evidence names no MLflow run",
                )
            ]
        return []
    if any(sep in run_id for sep in ("/", "\\", "..")):
        return [
            Finding(
                "error",
                "modified",
                TRAINING_RECORD,
                "training.mlflow.run_id is not a plain identifier",
            )
        ]
    uri = section.get("tracking_uri") if section else None
    # the workspace's experiment keeps its artifacts at mlflow-artifacts/ (training/tracking.py)
    run_rel = f"{MLFLOW_ARTIFACTS}/{run_id}/artifacts"
    run_dir = root / run_rel
    if not isinstance(uri, str) or not uri.strip():
        if not store.exists() and not store.is_symlink():
            return []  # no store recorded and none here: training ran without MLflow tracking
        uri = f"sqlite:///{root.resolve()}/mlflow.db"  # a store here: judged as the workspace's
    if not _is_local(uri):
        return [
            Finding(
                "warning",
                "not-checked",
                run_rel,
                f"not checked: remote store (the artifacts training logged live in {uri})",
            )
        ]
    if not run_dir.is_dir() and not belongs_to(uri, root) and "***" not in uri:
        return [
            Finding(
                "warning",
                "not-checked",
                run_rel,
                "not checked: the recorded store lies outside this workspace and its run "
                "folder was not copied with it",
            )
        ]
    recorded = _recorded_digests(ctx.entries)
    manifest_files = ctx.manifest.files if ctx.manifest is not None else {}
    expected: dict[str, set[str]] = {}
    for rel in manifest_files:
        if rel.startswith(f"{ADAPTER_DIR}/"):
            expected[f"{run_rel}/adapter/{rel.removeprefix(ADAPTER_DIR + '/')}"] = recorded.get(
                rel, set()
            ) | {manifest_files[rel].sha256}
    # training logs its record to the run when it finishes (after the adapter)
    expected[f"{run_rel}/{TRAINING_RECORD}"] = recorded.get(TRAINING_RECORD, set())
    out: list[Finding] = []
    seen: set[str] = set()
    if store.is_symlink() or (store.exists() and not store.is_dir()):
        return [Finding("error", "modified", MLFLOW_ARTIFACTS, "not a folder")]
    for path, st in _walk(store) if store.is_dir() else iter(()):
        rel = _rel(root, path)
        if path == store:  # could not be listed
            out.append(Finding("error", "modified", rel, "cannot be listed"))
            continue
        digest, problem = _digest(path, st)
        if not rel.startswith(run_rel + "/"):
            if problem:
                out.append(Finding("error", "extra", rel, problem))
            else:
                out.append(
                    Finding(
                        "warning",
                        "not-checked",
                        rel,
                        "not checked: MLflow store content outside the run training recorded",
                    )
                )
            continue
        seen.add(rel)
        want = expected.get(rel)
        if want is None:
            out.append(
                Finding(
                    "error",
                    "extra",
                    rel,
                    problem or "in the MLflow run, but not logged by training",
                )
            )
        elif problem:
            out.append(Finding("error", "modified", rel, problem))
        elif digest not in want:
            out.append(
                Finding(
                    "error",
                    "modified",
                    rel,
                    f"sha256 {digest[:16] if digest else ''}... is not the digest the ledger "
                    "recorded for the workspace's copy",
                )
            )
    for rel in sorted(set(expected) - seen):
        out.append(
            Finding("error", "missing", rel, "training logged this file to its MLflow run; absent")
        )
    return out


# -- everything else ---------------------------------------------------------------------------
def check_tree(root: Path, ctx: VerifyContext) -> list[Finding]:
    """No file outside what finetrail writes; no link, FIFO or device anywhere."""
    from finetrail.governance.workspace import INTERNAL_NAMES

    out: list[Finding] = []
    allowed = {*_ROOT_FILES, *_STORE_FILES, *INTERNAL_NAMES}
    try:
        top = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as err:
        return [Finding("error", "modified", ".", f"cannot be listed ({err.strerror})")]
    for entry in top:
        name, path = entry.name, Path(entry.path)
        try:
            st = path.lstat()
        except OSError:
            out.append(Finding("error", "modified", name, "cannot be read"))
            continue
        if name in INTERNAL_NAMES:
            continue  # the locks and the journal (the core checks judge an interrupted write)
        if name.startswith(".") and name.endswith(".lock") and stat.S_ISREG(st.st_mode):
            if st.st_size:
                out.append(Finding("error", "extra", name, "a lock file with content"))
            continue
        if stat.S_ISLNK(st.st_mode):
            out.append(Finding("error", "extra", name, "a symbolic link, not a regular file"))
        elif name in _ROOT_DIRS and stat.S_ISDIR(st.st_mode):
            if name in ("evidence", "artifacts"):  # the core checks list their regular files
                for sub, sub_st in _walk(path):
                    problem = _kind_problem(sub_st)
                    if problem:
                        out.append(Finding("error", "extra", _rel(root, sub), problem))
        elif name in _ROOT_DIRS:
            out.append(Finding("error", "modified", name, "not a folder"))
        elif _is_temp(name):
            out.append(Finding("warning", "temporary", name, "left over from an interrupted write"))
        elif name not in allowed:
            what = "folder" if stat.S_ISDIR(st.st_mode) else "file"
            out.append(Finding("error", "extra", name, f"a {what} finetrail does not write here"))
        elif not stat.S_ISREG(st.st_mode):
            out.append(Finding("error", "modified", name, "not a regular file"))
    return out
