"""Strict reads: each filesystem and parser edge is one InputError naming the file (exact text)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from finetrail.errors import InputError
from finetrail.governance.io import (
    json_depth,
    os_error,
    parse_json_bytes,
    read_json_strict,
    sha256_file,
)


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "f.json"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"", "empty file (no JSON document)"),
        (b"  \n", "blank file (no JSON document)"),
        (b'{"a": 1', "truncated JSON at line 1, column 8: Expecting ',' delimiter"),
        (b'{"a": 1}}', "malformed JSON at line 1, column 9: Extra data"),
        (b'{"a":\x00}', "contains a NUL byte (offset 5, line 1); not a JSON text file"),
        (b'{"a": "\xff"}', "not valid UTF-8 (byte 0xff at offset 7, line 1)"),
        (
            b'{"a": ' + b"9" * 5000 + b"}",
            "JSON value refused: Exceeds the limit (4300 digits) for integer string "
            "conversion: value has 5000 digits",
        ),
        (b'{"a": 1e999}', "JSON value refused: the number 1e999 is out of range"),
        (b'{"a": NaN}', "JSON value refused: NaN is not JSON"),
        (b'{"a": 1, "a": 2}', "JSON value refused: the key 'a' is given twice in one object"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply (more than 64 levels)"),
        (b"[" * 65 + b"]" * 65, "JSON nested too deeply (more than 64 levels)"),
    ],
)
def test_content_edges(tmp_path: Path, data: bytes, what: str) -> None:
    p = _write(tmp_path, data)
    with pytest.raises(InputError) as err:
        read_json_strict(p)
    assert err.value.what == what
    assert err.value.path == str(p)
    assert err.value.exit_code == 2


def test_sixty_four_levels_are_read() -> None:
    data = parse_json_bytes(b"[" * 64 + b"]" * 64, "f.json")
    assert json_depth(data) == 64


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda p: p.mkdir(), "expected a file, found a directory"),
        (lambda p: p.symlink_to(p.name), "symlink loop (too many levels of symbolic links)"),
        (lambda p: p.symlink_to("missing.json"), "file not found"),
        (lambda p: os.mkfifo(p), "not a regular file (a FIFO, device or socket is in its place)"),
        (
            lambda p: p.symlink_to("/dev/zero"),
            "not a regular file (a FIFO, device or socket is in its place)",
        ),
    ],
)
def test_filesystem_edges(tmp_path: Path, make: object, what: str) -> None:
    p = tmp_path / "f.json"
    make(p)  # type: ignore[operator]
    for read in (read_json_strict, sha256_file):
        with pytest.raises(InputError) as err:
            read(p)
        assert (err.value.what, err.value.path) == (what, str(p))


def test_a_component_that_is_a_file() -> None:
    err = os_error(OSError(errno.ENOTDIR, "Not a directory"), "a/b.json")
    assert err.what == "a component of the path is not a directory"


def test_permission_denied_names_the_fix(tmp_path: Path) -> None:
    err = os_error(PermissionError(errno.EACCES, "Permission denied"), tmp_path / "f.json")
    assert err.diagnostics() == (
        f"error: {tmp_path / 'f.json'}: permission denied\n"
        "  fix: make the file readable by this user (chmod/chown)"
    )
    if os.geteuid() != 0:
        p = _write(tmp_path, b"{}")
        p.chmod(0)
        with pytest.raises(InputError, match="permission denied"):
            read_json_strict(p)
