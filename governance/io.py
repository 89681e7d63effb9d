"""Canonical JSON, digests, atomic writes and strict reads shared by every layer.

Canonical JSON: keys sorted, UTF-8 (no ASCII escaping), compact separators, one trailing newline.
A record is addressed by the SHA-256 of exactly those bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finetrail.errors import InputError

CHUNK = 1 << 20


# json.dumps with these options builds a new encoder per call; one shared encoder gives the same
# bytes (it holds no state between calls) and saves that on every ledger line verify re-encodes.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
)


def canonical_json(data: Any) -> bytes:
    """The canonical bytes of a JSON-able value (sorted keys, UTF-8, trailing newline)."""
    return _CANONICAL.encode(data).encode("utf-8") + b"\n"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Stream a file's SHA-256 (memory flat in file size)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    except FileNotFoundError as exc:
        raise InputError("file not found", path=str(path), fix="check the path") from exc
    except IsADirectoryError as exc:
        raise InputError("expected a file, found a directory", path=str(path)) from exc
    return h.hexdigest()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync, then rename over ``path``.

    A crash leaves either the old file or the new one, never a half-written file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_text_strict(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file; missing files and non-UTF-8 bytes raise :class:`InputError`."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("file not found", path=str(p), fix="check the path") from exc
    except IsADirectoryError as exc:
        raise InputError("expected a file, found a directory", path=str(p)) from exc
    except PermissionError as exc:
        raise InputError("permission denied", path=str(p)) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}, line {line})",
            path=str(p),
            fix="re-encode the file as UTF-8",
        ) from exc


def read_json_strict(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; errors name the file, line and column."""
    text = read_text_strict(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            path=str(path),
        ) from exc


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive advisory lock (fcntl) held for the ``with`` block."""
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
