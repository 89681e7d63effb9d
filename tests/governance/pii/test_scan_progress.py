"""`data scan` and `data sanitize` show their bar on stderr only; stdout stays the JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetrail import progress


def _notes(path: Path, n: int) -> Path:
    path.write_text(
        "".join(
            json.dumps({"text": f"note {i}: write to user{i}@example.com about ticket {i}"}) + "\n"
            for i in range(n)
        ),
        encoding="utf-8",
    )
    return path


def test_scan_bar_on_stderr_json_on_stdout(
    tmp_path: Path,
    run_cli,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _notes(tmp_path / "notes.jsonl", 40)
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
    code, out, err = run_cli("data", "scan", str(data), "--workers", "1")
    assert code == 0, err
    assert "pii scan" in err and "100%" in err
    summary = json.loads(out)  # no bar frame in it
    assert summary["records_scanned"] == 40 and summary["counts"]["EMAIL_ADDRESS"] == 40


def test_scan_without_a_terminal_prints_no_bar(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    data = _notes(tmp_path / "notes.jsonl", 5)
    code, out, err = run_cli("data", "scan", str(data), "--workers", "1")
    assert code == 0, err
    assert "pii scan" not in err and "\r" not in err
    assert json.loads(out)["records_scanned"] == 5
