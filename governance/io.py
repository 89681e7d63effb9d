"""Canonical JSON, digests, atomic writes, strict reads and the workspace lock, shared by every layer.

Canonical JSON: keys sorted, UTF-8 (no ASCII escaping), compact separators, one trailing newline.
A record is addressed by the SHA-256 of exactly those bytes.

Strict reads turn every filesystem and parser edge into an :class:`~finetrail.errors.InputError`
naming the file: a missing file, a directory, a symlink loop, a permission problem, non-UTF-8
bytes, a NUL byte, an empty or truncated document, an integer too long to convert, nesting deeper
than :data:`MAX_JSON_DEPTH`, NaN or an out-of-range float, a key given twice.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from finetrail.errors import InputError

CHUNK = 1 << 20
MAX_JSON_DEPTH = 64  # deeper than any record finetrail writes; far below the recursion limit


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


# -- opening files -----------------------------------------------------------------------------
_OS_REASONS = {
    errno.ENOENT: ("file not found", "check the path"),
    errno.EISDIR: ("expected a file, found a directory", "give the path of a file"),
    errno.ENOTDIR: ("a component of the path is not a directory", "check the path"),
    errno.ELOOP: (
        "symlink loop (too many levels of symbolic links)",
        "replace the symbolic link with the file it should point to",
    ),
    errno.EACCES: ("permission denied", "make the file readable by this user (chmod/chown)"),
    errno.EPERM: ("permission denied", "make the file readable by this user (chmod/chown)"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter path"),
}


def os_error(exc: OSError, path: str | os.PathLike[str]) -> InputError:
    """An OSError met while reading ``path``, as an InputError naming the file and the cause."""
    what, fix = _OS_REASONS.get(exc.errno or -1, (None, None))
    if what is None:
        what = f"cannot read the file ({exc.strerror or type(exc).__name__})"
        fix = "check that the file exists, is a regular file and is readable"
    return InputError(what, path=str(path), fix=fix)


def open_regular(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of the regular file at ``path``.

    Opened without blocking (a FIFO in a file's place must not hang the command) and checked to
    be a regular file (a device such as ``/dev/zero`` would never end). Raises OSError or
    :class:`InputError`; the caller maps OSError with :func:`os_error`.
    """
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise InputError(
                "not a regular file (a FIFO, device or socket is in its place)",
                path=str(path),
                fix="replace it with the file it should be",
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes_strict(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file; every OSError becomes an :class:`InputError` naming it."""
    try:
        with open(open_regular(path), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise os_error(exc, path) from exc


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Stream a file's SHA-256 (memory flat in file size)."""
    h = hashlib.sha256()
    try:
        with open(open_regular(path), "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise os_error(exc, path) from exc
    return h.hexdigest()


# -- writing -------------------------------------------------------------------------------------
def fsync_dir(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_durable(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` and fsync it (no rename: for staging files)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


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


# -- strict reads --------------------------------------------------------------------------------
def decode_utf8(raw: bytes, path: str | os.PathLike[str]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}, line {line})",
            path=str(path),
            fix="re-encode the file as UTF-8",
        ) from exc


def read_text_strict(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file; unreadable files and non-UTF-8 bytes raise :class:`InputError`."""
    return decode_utf8(read_bytes_strict(path), path)


def read_json_strict(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; errors name the file, line and column."""
    return parse_json_bytes(read_bytes_strict(path), path)


class _Refused(ValueError):
    """A JSON value strict parsing refuses (NaN, an out-of-range float, a repeated key)."""


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Refused(f"the number {text[:40]} is out of range")
    return value


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"the key {key[:80]!r} is given twice in one object")
            seen.add(key)
    return out


_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_finite, object_pairs_hook=_pairs)


def parse_json_bytes(raw: bytes, path: str | os.PathLike[str]) -> Any:
    """Parse JSON bytes read from ``path`` strictly; every problem is an InputError naming it."""
    source = str(path)
    text = decode_utf8(raw, path)
    if not text.strip():
        raise InputError(
            "empty file (no JSON document)" if not text else "blank file (no JSON document)",
            path=source,
            fix="restore the file, or write it again with the finetrail command that makes it",
        )
    nul = text.find("\x00")
    if nul != -1:
        line = text.count("\n", 0, nul) + 1
        raise InputError(
            f"contains a NUL byte (offset {nul}, line {line}); not a JSON text file",
            path=source,
            fix="restore the file, or write it again with the finetrail command that makes it",
        )
    try:
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        why = "truncated" if exc.pos >= len(text.rstrip()) else "malformed"
        raise InputError(
            f"{why} JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=source
        ) from exc
    except RecursionError as exc:
        raise InputError(
            f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)", path=source
        ) from exc
    except ValueError as exc:  # _Refused, or an integer longer than int's digit limit
        msg = str(exc).split(";")[0]
        raise InputError(f"JSON value refused: {msg}", path=source) from exc
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InputError(f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)", path=source)
    return data


def json_depth(data: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``data`` nests lists and objects (a scalar 0, ``{}`` 1); stops past ``limit``."""
    depth = 0
    level = [data] if isinstance(data, dict | list) else []
    while level and depth <= limit:
        depth += 1
        nxt: list[Any] = []
        for item in level:
            values = item.values() if isinstance(item, dict) else item
            nxt.extend(v for v in values if isinstance(v, dict | list))
        level = nxt
    return depth


# -- strict YAML -----------------------------------------------------------------------------------
MAX_YAML_NODES = 200_000


def load_yaml_strict(text: str, *, source: str) -> Any:
    """``yaml.safe_load`` for configuration files, refusing what a config never needs.

    Anchors used as aliases (``*name``: an alias bomb expands exponentially), nesting deeper than
    :data:`MAX_JSON_DEPTH` and more than :data:`MAX_YAML_NODES` nodes raise
    :class:`~finetrail.errors.ConfigError` naming the file, as does malformed YAML. The nodes are
    checked before anything is constructed, so a refusal costs one pass over the file.
    """
    import yaml

    from finetrail.errors import ConfigError

    loader_cls: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "line 1"
            what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise ConfigError(f"malformed YAML at {where}: {what}", path=source) from exc
        except (yaml.YAMLError, RecursionError) as exc:
            raise ConfigError(f"malformed YAML: {str(exc)[:200]}", path=source) from exc
        if node is None:
            return None
        problem = _yaml_problem(node)
        if problem:
            raise ConfigError(
                problem, path=source, fix="write the values out; configs take plain YAML"
            )
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML value: {str(exc)[:200]}", path=source) from exc
    finally:
        loader.dispose()


def _yaml_problem(root: Any) -> str | None:
    import yaml

    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        mark = node.start_mark
        if id(node) in seen:
            return (
                f"YAML alias of the value at line {mark.line + 1}, column {mark.column + 1}: "
                "anchors and aliases (&name, *name) are not allowed"
            )
        seen.add(id(node))
        if len(seen) > MAX_YAML_NODES:
            return f"more than {MAX_YAML_NODES} YAML nodes"
        if depth > MAX_JSON_DEPTH:
            return (
                f"nested more than {MAX_JSON_DEPTH} levels (line {mark.line + 1}, "
                f"column {mark.column + 1})"
            )
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
    return None
