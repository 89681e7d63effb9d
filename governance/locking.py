"""The workspace lock: ``fcntl.flock`` with a timeout, re-entrant within a thread.

Writers take it exclusively (:meth:`Workspace.transaction`); readers that must see one
consistent state of several files (the manifest, the ledger and the files they name) take it
shared (:func:`file_lock` with ``shared=True``, e.g. through
:func:`~finetrail.governance.workspace.read_locked`). The kernel drops a lock when its holder
dies, so a killed command never leaves the workspace locked.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from finetrail.errors import WorkspaceBusy

DEFAULT_LOCK_TIMEOUT = 120.0  # seconds a command waits for another one to finish its write


@dataclass
class _Held:
    fd: int
    depth: int
    shared: bool


_held = threading.local()  # this thread's locks: absolute path -> _Held


def _locks() -> dict[str, _Held]:
    locks: dict[str, _Held] = _held.__dict__.setdefault("locks", {})
    return locks


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike[str],
    *,
    timeout: float = DEFAULT_LOCK_TIMEOUT,
    what: str = "the workspace",
    shared: bool = False,
    create: bool = True,
) -> Iterator[bool]:
    """An advisory lock on ``path`` held for the ``with`` block; yields whether it is held.

    Exclusive by default; ``shared=True`` lets other shared holders in and keeps exclusive ones
    out. Re-entrant within a thread (a command that holds it may call functions that take it
    again; a shared request inside an exclusive hold joins it, the reverse is a programming error).
    Other threads and processes wait; waiting longer than ``timeout`` seconds raises
    :class:`~finetrail.errors.WorkspaceBusy`. With ``create=False`` a missing lock file means no
    lock (a reader must not add files to what it reads): the block runs and gets ``False``.
    """
    import fcntl

    key = os.path.abspath(path)
    locks = _locks()
    if key in locks:
        held = locks[key]
        if held.shared and not shared:
            raise RuntimeError(f"cannot take {key} exclusively while holding it shared")
        held.depth += 1
        try:
            yield True
        finally:
            held.depth -= 1
        return
    try:
        if create:
            Path(key).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        else:
            fd = os.open(key, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, PermissionError):
        if create:
            raise
        yield False
        return
    try:
        _acquire(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, timeout, key, what)
        locks[key] = _Held(fd, 1, shared)
        try:
            yield True
        finally:
            del locks[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, mode: int, timeout: float, key: str, what: str) -> None:
    import fcntl

    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise WorkspaceBusy(
                    f"{what} is busy: another finetrail command has held its lock for "
                    f"more than {timeout:g} s",
                    path=key,
                    why="commands that write to one workspace take turns; the other one "
                    "has not finished",
                    fix="wait for the other command to finish and run this one again (a "
                    "killed command releases the lock at once; `fuser` on the lock file "
                    "names the process holding it)",
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
