"""``finetrail anchor``: publish a workspace's latest signed checkpoint outside the workspace.

Whoever can write a workspace can restore it from an older copy or cut its last entries and
their checkpoints; nothing inside it can tell. A copy of a checkpoint kept elsewhere can:
``verify --anchor`` refuses a workspace whose log is smaller than the anchored checkpoint
(rollback, truncation) or not an append-only extension of it (rewrite), and checks the
anchored checkpoint's signature against the trust file.

Two places:

- a team **anchor file** (``--to FILE``): append-only JSON lines, one
  :class:`~finetrail.governance.checkpoint.Checkpoint` each (many workspaces may share a file;
  lines are told apart by workspace id), appended under a lock beside it;
- a **git ref** (``--git-ref REPO:refs/finetrail/<workspace id>``): a commit whose tree holds
  ``checkpoint.json``, its parent the ref's previous commit; the ref is moved with
  compare-and-swap (``git update-ref REF NEW OLD``), so a concurrent publish is not lost.
  Push the ref to a remote the workspace's writers cannot rewrite (protected refs).

Before publishing, the latest anchored checkpoint of the workspace must be consistent with the
one published (a rolled-back workspace is refused, exit 1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetrail.errors import CheckFailed, InputError
from finetrail.governance.checkpoint import (
    CHECKPOINTS_FILE,
    Checkpoint,
    check_against,
    entry_digests,
    read_checkpoints,
    signature_findings,
)
from finetrail.governance.findings import Finding
from finetrail.governance.io import read_bytes_strict
from finetrail.governance.ledger import LEDGER_NAME, scan_ledger, write_lines
from finetrail.governance.locking import file_lock

__all__ = [
    "AnchorResult",
    "anchor_workspace",
    "check_anchor",
    "read_anchor",
    "read_anchor_file",
    "read_git_anchor",
]

GIT_FILE = "checkpoint.json"
GIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class AnchorResult:
    checkpoint: Checkpoint
    published: tuple[str, ...]  # "FILE" or "REPO:REF", each place it went


# -- reading ----------------------------------------------------------------------------------------
def read_anchor_file(path: Path) -> list[Checkpoint]:
    """Every checkpoint of an anchor file; bad input raises, naming the file and line."""
    if not path.is_file():
        raise InputError(
            "anchor file not found (or not a regular file)",
            path=str(path),
            fix="publish one with `finetrail anchor WORKSPACE --to FILE`",
        )
    cps, findings = read_checkpoints(path)
    if findings:
        raise InputError(
            f"unreadable anchor file: {findings[0].location}: {findings[0].message}",
            path=str(path),
            fix="an anchor file is append-only; restore it from the team's copy",
        )
    return cps


def _git(repo: str, *args: str, data: bytes | None = None) -> str:
    git = shutil.which("git")
    if git is None:
        raise InputError("git is not installed", fix="install git or anchor to a file (--to)")
    try:
        done = subprocess.run(
            [git, "-C", repo, *args],
            input=data,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"git {args[0]} failed: {exc}", path=repo) from exc
    if done.returncode != 0:
        msg = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(
            f"git {args[0]} failed: {msg[-1] if msg else 'exit ' + str(done.returncode)}",
            path=repo,
        )
    return done.stdout.decode("utf-8", "replace").strip()


def _split_ref(spec: str) -> tuple[str, str]:
    repo, sep, ref = spec.rpartition(":")
    if not sep or not repo or not ref.startswith("refs/finetrail/"):
        raise InputError(
            f"not a git anchor: {spec!r}",
            field="--git-ref",
            fix="give REPO:refs/finetrail/<workspace id>",
        )
    return repo, ref


def _git_head(repo: str, ref: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        raise InputError("git is not installed", fix="install git or anchor to a file (--to)")
    done = subprocess.run(
        [git, "-C", repo, "rev-parse", "--verify", "--quiet", ref + "^{commit}"],
        capture_output=True,
        timeout=GIT_TIMEOUT,
        check=False,
    )
    return done.stdout.decode().strip() or None if done.returncode == 0 else None


def read_git_anchor(spec: str) -> list[Checkpoint]:
    """The checkpoints along a git anchor ref's history (oldest first)."""
    repo, ref = _split_ref(spec)
    if _git_head(repo, ref) is None:
        return []
    commits = _git(repo, "rev-list", "--reverse", ref).split()
    out = []
    for c in commits:
        text = _git(repo, "show", f"{c}:{GIT_FILE}")
        try:
            out.append(Checkpoint.model_validate_json(text))
        except ValueError as exc:
            raise InputError(
                f"commit {c[:12]} of {ref} holds no readable {GIT_FILE}", path=repo
            ) from exc
    return out


def read_anchor(spec: str) -> list[Checkpoint]:
    """The checkpoints of an anchor: a git ref (``REPO:refs/finetrail/...``) or a file."""
    if ":refs/" in spec:
        return read_git_anchor(spec)
    return read_anchor_file(Path(spec))


# -- publishing -------------------------------------------------------------------------------------
def _latest(root: Path) -> Checkpoint:
    cps, findings = read_checkpoints(root / CHECKPOINTS_FILE)
    if findings or not cps:
        raise InputError(
            "the workspace has no readable checkpoint to anchor",
            path=str(root / CHECKPOINTS_FILE),
            why=findings[0].message if findings else "no checkpoints.jsonl",
            fix="run `finetrail verify WORKSPACE`; checkpoints are written by every command",
        )
    return cps[-1]


def _refuse_if_behind(
    cp: Checkpoint, anchored: list[Checkpoint], digests: list[str], where: str
) -> None:
    mine = [a for a in anchored if a.workspace_id == cp.workspace_id]
    problems: list[Finding] = []
    for a in mine:
        problems += check_against(
            a, digests, loc=where, workspace_id=cp.workspace_id, label="the anchored checkpoint"
        )
    if problems:
        raise CheckFailed(
            "refusing to anchor: the workspace does not extend what was anchored before",
            path=where,
            why="; ".join(p.message for p in problems[:3]),
            fix="run `finetrail verify WORKSPACE --anchor ...` and restore the workspace",
        )


def anchor_workspace(
    root: str | os.PathLike[str],
    *,
    to: str | os.PathLike[str] | None = None,
    git_ref: str | None = None,
    allow_unsigned: bool = False,
) -> AnchorResult:
    """Publish the workspace's latest checkpoint to ``to`` and/or ``git_ref``."""
    from finetrail.governance.workspace import Workspace, read_locked

    if to is None and git_ref is None:
        raise InputError("nowhere to anchor", fix="pass --to FILE and/or --git-ref REPO:REF")
    ws = Workspace.open(root)
    with read_locked(ws.root):
        cp = _latest(ws.root)
        scan = scan_ledger(ws.root / LEDGER_NAME)
    digests = entry_digests(scan.entries)
    bad = check_against(
        cp,
        digests,
        loc=CHECKPOINTS_FILE,
        workspace_id=ws.metadata.workspace_id,
        label="the latest checkpoint",
    )
    if scan.findings or bad:
        raise CheckFailed(
            "refusing to anchor a workspace whose log does not verify",
            path=str(ws.root),
            why="; ".join(f.message for f in [*scan.findings, *bad][:3]),
            fix="run `finetrail verify WORKSPACE`",
        )
    if not (cp.signer and cp.signature) and not allow_unsigned:
        raise InputError(
            "refusing to anchor an unsigned checkpoint",
            path=str(ws.root / CHECKPOINTS_FILE),
            fix="run the workspace's commands with FINETRAIL_LEDGER_KEY set (development: "
            "FINETRAIL_DEV_UNSIGNED=1 allows it)",
        )
    published: list[str] = []
    line = cp.canonical_bytes()
    if to is not None:
        path = Path(to)
        if path.resolve().is_relative_to(ws.root.resolve()):
            raise InputError(
                "the anchor file lies inside the workspace it anchors",
                path=str(path),
                why="whoever can write the workspace could roll the anchor back with it",
            )
        with file_lock(path.with_name("." + path.name + ".lock"), what="the anchor file"):
            anchored = read_anchor_file(path) if path.exists() else []
            _refuse_if_behind(cp, anchored, digests, str(path))
            size = len(read_bytes_strict(path)) if path.exists() else 0
            write_lines(path, size, line)
        published.append(str(path))
    if git_ref is not None:
        repo, ref = _split_ref(git_ref)
        _refuse_if_behind(cp, read_git_anchor(git_ref), digests, git_ref)
        old = _git_head(repo, ref)
        blob = _git(repo, "hash-object", "-w", "--stdin", data=line)
        tree = _git(repo, "mktree", data=f"100644 blob {blob}\t{GIT_FILE}\n".encode())
        parents = ["-p", old] if old else []
        msg = f"finetrail checkpoint {cp.size} {cp.root}\n\n{cp.origin}\n"
        env_args = ["-c", "user.name=finetrail", "-c", "user.email=finetrail@localhost"]
        commit = _git(repo, *env_args, "commit-tree", tree, *parents, "-m", msg)
        _git(repo, "update-ref", ref, commit, old or "0" * 40)
        published.append(git_ref)
    return AnchorResult(cp, tuple(published))


# -- verify's check ---------------------------------------------------------------------------------
def check_anchor(root: Path, ctx: Any) -> list[Finding]:
    """With ``verify --anchor FILE``: every checkpoint the anchor holds for this workspace must
    be signed by a trusted key and extended by the ledger."""
    anchor: str | None = getattr(ctx, "anchor", None)
    if anchor is None:
        return []
    loc = f"anchor {anchor}"
    meta = getattr(ctx, "metadata", None)
    wsid = getattr(meta, "workspace_id", None)
    trust = getattr(ctx, "trust", None)
    digests = entry_digests(getattr(ctx, "entries", []))
    cps = read_anchor(anchor)
    mine = [c for c in cps if c.workspace_id == wsid and wsid is not None]
    if not mine:
        return [
            Finding(
                "error",
                "unanchored",
                loc,
                f"the anchor holds no checkpoint for workspace {wsid or '(no workspace id)'} "
                "(never anchored, or its id was rewritten)",
            )
        ]
    out: list[Finding] = []
    for i, cp in enumerate(mine, start=1):
        where = f"{loc} #{i}"
        out += signature_findings(cp, where, trust, required=trust is not None)
        out += check_against(
            cp, digests, loc=where, workspace_id=wsid, label="the anchored " + cp.describe()
        )
    return out
