"""Incremental verify (``VerifyCache``): after a write only the new ledger lines and checkpoints
are checked, and any change to what was checked before is still caught.

Every case warms a cache on the release, changes the workspace, and compares the cached run with
a run without the cache: the same findings, in the same order. The console's release page, read
after a tamper, shows verify failing.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from finetrail.console.releases import COMMENT_KIND
from finetrail.governance.checkpoint import CHECKPOINTS_FILE
from finetrail.governance.ledger import LEDGER_NAME
from finetrail.governance.verify import verify_workspace
from finetrail.governance.verify_incremental import VerifyCache
from finetrail.governance.workspace import Workspace
from tests.console.conftest import Env

SEED = 19


def comment(ws: Path, text: str) -> None:
    Workspace.open(ws).append_event(
        COMMENT_KIND, actor="bob", payload={"thread": "release", "text": text, "state": "open"}
    )


def same(root: Path, trust: Path, cache: VerifyCache) -> tuple[list[str], list[str]]:
    cached = verify_workspace(root, trust=trust, cache=cache)
    plain = verify_workspace(root, trust=trust)
    got = [f.render() for f in cached.findings]
    want = [f.render() for f in plain.findings]
    assert got == want
    assert [e.digest for e in cached.ledger] == [e.digest for e in plain.ledger]
    return got, [f.render() for f in plain.errors]


def test_a_write_checks_only_the_new_lines_and_reports_what_a_full_run_reports(
    console_env: Env,
) -> None:
    ws, trust = console_env.a, console_env.trust
    cache = VerifyCache()
    same(ws, trust, cache)
    assert cache.stats["full_scans"] == 1
    lines = cache.stats["lines_scanned"]
    for i in range(3):
        comment(ws, f"note {i}")
        _, errors = same(ws, trust, cache)
        assert errors == []
    assert cache.stats["full_scans"] == 1  # every later run resumed
    assert cache.stats["lines_scanned"] == lines + 3  # one new line per write


def _edit_line(path: Path, index: int, edit: Callable[[bytes], bytes]) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[index] = edit(lines[index])
    path.write_bytes(b"\n".join(lines))


def _same_size_letter(line: bytes) -> bytes:
    """One character of the entry changed, the line's length kept (a quiet rewrite)."""
    i = line.find(b'"actor":"') + len(b'"actor":"')
    return line[:i] + (b"X" if line[i : i + 1] != b"X" else b"Y") + line[i + 1 :]


def _mutations(ws: Path, rng: random.Random) -> list[tuple[str, Callable[[], None]]]:
    ledger, cps = ws / LEDGER_NAME, ws / CHECKPOINTS_FILE
    n = len(ledger.read_bytes().split(b"\n")) - 1
    m = len(cps.read_bytes().split(b"\n")) - 1
    old = rng.sample(range(n - 1), 4)
    out: list[tuple[str, Callable[[], None]]] = []
    for i in old:
        out.append((f"entry {i} rewritten", lambda i=i: _edit_line(ledger, i, _same_size_letter)))
        out.append((f"entry {i} cut short", lambda i=i: _edit_line(ledger, i, lambda b: b[:-2])))
    a, b = sorted(rng.sample(range(n - 1), 2))

    def swap() -> None:
        lines = ledger.read_bytes().split(b"\n")
        lines[a], lines[b] = lines[b], lines[a]
        ledger.write_bytes(b"\n".join(lines))

    def drop_first() -> None:
        ledger.write_bytes(b"\n".join(ledger.read_bytes().split(b"\n")[1:]))

    def truncate() -> None:
        raw = ledger.read_bytes()
        ledger.write_bytes(raw[: raw.rfind(b"\n", 0, len(raw) - 1) + 1])

    out += [(f"entries {a} and {b} swapped", swap), ("first entry removed", drop_first)]
    out.append(("last entry cut", truncate))

    def checkpoint_root(line: bytes) -> bytes:
        i = line.find(b'"root":"') + len(b'"root":"')
        return line[:i] + (b"0" if line[i : i + 1] != b"0" else b"1") + line[i + 1 :]

    k = rng.randrange(m)
    out.append((f"checkpoint {k} rewritten", lambda: _edit_line(cps, k, checkpoint_root)))

    def file_same_stat() -> None:
        """A tracked file changed with its size and modification time put back."""
        target = ws / "evidence" / "training.json"
        st = target.stat()
        raw = bytearray(target.read_bytes())
        raw[10] = ord("A") if raw[10] != ord("A") else ord("B")
        target.write_bytes(bytes(raw))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    out.append(("evidence/training.json edited, size and mtime kept", file_same_stat))
    return out


@pytest.mark.parametrize("case", range(12))
def test_any_change_to_what_was_checked_is_caught_after_a_cached_run(
    console_env: Env, case: int
) -> None:
    ws, trust = console_env.a, console_env.trust
    comment(ws, "first")  # a ledger with entries after the gate's checkpoint too
    cache = VerifyCache()
    _, errors = same(ws, trust, cache)
    assert errors == []
    comment(ws, "second")
    same(ws, trust, cache)  # warm, resumed
    name, mutate = _mutations(ws, random.Random(SEED))[case]
    mutate()
    findings, errors = same(ws, trust, cache)
    assert errors, f"{name}: verify with the cache passed ({findings})"


def test_the_release_page_shows_verify_failing_after_an_old_entry_is_rewritten(
    console_env: Env,
) -> None:
    c = console_env.client("audrey")
    rid = console_env.rid(console_env.a)
    page = c.http.get(f"/r/{rid}").text
    assert '<span class="pill ok">OK</span>' in page.split('id="verify-status"')[1][:400]
    comment(console_env.a, "after the first reading")
    assert "OK</span>" in c.http.get(f"/r/{rid}").text.split('id="verify-status"')[1][:400]
    _edit_line(console_env.a / LEDGER_NAME, 1, _same_size_letter)
    status = c.http.get(f"/r/{rid}").text.split('id="verify-status"')[1][:400]
    assert "FAILED" in status, status
