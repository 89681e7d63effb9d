"""The ledger: chain integrity, tamper detection and crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetrail.governance.evidence.workspace import GENESIS, LedgerEntry
from finetrail.governance.io import canonical_json, sha256_bytes
from finetrail.governance.ledger import Ledger, payload_bytes_in, scan_ledger


def _ledger(tmp_path: Path, n: int = 6) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for i in range(n):
        ledger.append("test.event", actor="alice", payload={"i": i, "text": "héllo"})
    return ledger


def _codes(path: Path) -> set[str]:
    return {f.code for f in scan_ledger(path).findings if f.severity == "error"}


def test_append_builds_a_valid_chain(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    scan = ledger.scan()
    assert scan.findings == []
    assert [e.seq for e in scan.entries] == list(range(6))
    assert scan.entries[0].prev == GENESIS
    for before, after in zip(scan.entries, scan.entries[1:], strict=False):
        assert after.prev == before.digest
        assert after.digest == after.compute_digest()


def test_each_line_is_canonical_json(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 2)
    for line in ledger.path.read_bytes().splitlines():
        data = json.loads(line)
        assert (
            line
            == json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        ("truncate", {"chain", "deleted"}),
        ("reorder", {"reordered", "chain"}),
        ("delete", {"deleted", "chain"}),
        ("duplicate", {"duplicated", "reordered", "chain"}),
        ("edit", {"modified"}),
    ],
)
def test_structural_tampering_is_detected(tmp_path: Path, mutate: str, expected: set[str]) -> None:
    ledger = _ledger(tmp_path)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    if mutate == "truncate":
        lines = lines[2:]  # drop the head of the chain
    elif mutate == "reorder":
        lines[2], lines[3] = lines[3], lines[2]
    elif mutate == "delete":
        del lines[3]
    elif mutate == "duplicate":
        lines.insert(3, lines[2])
    elif mutate == "edit":
        lines[1] = lines[1].replace(b'"i":1', b'"i":7')
    ledger.path.write_bytes(b"".join(lines))
    codes = _codes(ledger.path)
    assert codes, f"{mutate} went undetected"
    assert codes <= {"chain", "deleted", "reordered", "duplicated", "modified"}
    assert codes & expected


# Keys and strings that try to fool the slicing: the member names themselves, quotes, backslashes.
_TRICKY = st.sampled_from(
    ["payload", "payload_digest", '"payload":', ',"payload_digest":"', "\\", '"', "é", "x"]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | _TRICKY,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | _TRICKY, inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.dictionaries(st.text(max_size=4) | _TRICKY, _JSON, max_size=4))
def test_payload_slice_of_the_canonical_line_is_the_payloads_canonical_json(
    tmp_path: Path, payload: dict
) -> None:
    path = tmp_path / "ledger.jsonl"
    path.unlink(missing_ok=True)
    entry = Ledger(path).append("test.event", actor='a"payload":', payload=payload)
    line = canonical_json(entry.model_dump(mode="json"))
    assert payload_bytes_in(line, entry.payload_digest) == canonical_json(payload)
    assert scan_ledger(path).findings == []


def test_an_edited_payload_with_a_recomputed_entry_digest_is_still_caught(tmp_path: Path) -> None:
    """The entry digest is re-made after the edit; only the payload digest can tell."""
    ledger = _ledger(tmp_path, 3)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    data = json.loads(lines[1])
    data["payload"]["i"] = 99
    del data["digest"]
    data["digest"] = sha256_bytes(canonical_json(data))
    lines[1] = canonical_json(data)
    ledger.path.write_bytes(b"".join(lines))
    messages = [f.message for f in scan_ledger(ledger.path).findings]
    assert "entry 1: payload does not match payload_digest" in messages


def test_a_nan_in_a_ledger_line_is_reported_not_raised(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 2)
    lines = ledger.path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"i":1', b'"i":NaN')
    ledger.path.write_bytes(b"".join(lines))
    findings = scan_ledger(ledger.path).findings
    assert any(
        f.code == "modified" and f.location.endswith(":2") and "not JSON" in f.message
        for f in findings
    ), findings


def test_torn_tail_is_reported_and_repaired_on_next_append(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 3)
    with open(ledger.path, "ab") as fh:
        fh.write(b'{"actor":"alice","digest":"ab')  # an interrupted append
    scan = ledger.scan()
    assert len(scan.entries) == 3
    assert [f.code for f in scan.findings] == ["incomplete"]
    assert scan.findings[0].severity == "warning"
    entry = ledger.append("after.crash", actor="alice")
    scan = ledger.scan()
    assert scan.findings == []
    assert [e.kind for e in scan.entries][-2:] == ["ledger.recovered", "after.crash"]
    assert scan.entries[-2].payload == {"torn_bytes_removed": 29}
    assert entry.seq == 4


def test_unknown_field_in_entry_is_named(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, 1)
    data = json.loads(ledger.path.read_bytes())
    data["surprise"] = 1
    ledger.path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    findings = scan_ledger(ledger.path).findings
    assert any("surprise" in f.message for f in findings)


_WRITER = textwrap.dedent(
    """
    import sys
    from finetrail.governance.ledger import Ledger
    ledger = Ledger(sys.argv[1])
    print("ready", flush=True)
    for i in range(100000):
        ledger.append("load.event", actor="writer", payload={"i": i, "pad": "x" * (i % 300)})
    """
)


@pytest.mark.slow
def test_sigkill_mid_append_never_corrupts_the_ledger(tmp_path: Path) -> None:
    """Kill a writer at random moments, 20 times: the ledger stays valid up to its last entry."""
    path = tmp_path / "ledger.jsonl"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    total_before = 0
    for round_ in range(20):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        start = path.stat().st_size if path.exists() else 0
        while time.monotonic() < deadline and (not path.exists() or path.stat().st_size <= start):
            time.sleep(0.005)  # kill only once this writer has appended (slow machines)
        time.sleep((round_ % 5) * 0.03)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        scan = scan_ledger(path)
        errors = [f for f in scan.findings if f.severity == "error"]
        assert errors == [], errors
        assert {f.code for f in scan.findings} <= {"incomplete"}
        assert len(scan.entries) >= total_before
        total_before = len(scan.entries)
        for e in scan.entries:
            assert isinstance(e, LedgerEntry)
    assert total_before > 20  # the writers really appended
