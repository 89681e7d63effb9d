"""Progress bars: on stderr only when it is a terminal (or --progress), never on stdout, off with
--no-progress; every command with a bar takes the same option."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from finetrail import progress
from finetrail.cli import cli
from finetrail.progress import Bar, FileProgress, wanted

BAR_COMMANDS = [
    ("train",),
    ("probe",),
    ("data", "register"),
    ("data", "scan"),
    ("data", "digest"),
    ("data", "sanitize"),
    ("audit", "bias"),
]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _jsonl(path: Path, n: int) -> Path:
    path.write_text(
        "".join(json.dumps({"text": f"record {i} " + "word " * (i % 7)}) + "\n" for i in range(n)),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the captured stderr count as a terminal (pytest swaps sys.stderr between a
    fixture and the test, so the check itself is patched; `wanted` is tested on isatty below)."""
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)


def test_wanted_follows_the_flag_then_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert wanted(None) is False  # a pipe or file: no bar frames in logs
    assert wanted(True) is True and wanted(False) is False
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert wanted(None) is True
    assert wanted(False) is False


def test_disabled_bar_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Tty()
    monkeypatch.setattr(sys, "stderr", err)
    with Bar(False) as bar:
        bar.start("x", 10)
        bar.advance(10)
    assert err.getvalue() == ""


def test_file_progress_counts_bytes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Tty()
    monkeypatch.setattr(sys, "stderr", err)
    bar = Bar(True)
    read = FileProgress(bar, "hash", size=2048)
    for pos in (0, 1024, 1024, 2048):  # the reader's position moves in buffer-sized steps
        read.record(pos)
    assert bar._bar.n == 2048
    read.close()
    assert "hash" in err.getvalue() and "100%" in err.getvalue()


@pytest.mark.parametrize("path", BAR_COMMANDS, ids=" ".join)
def test_every_command_with_a_bar_has_the_same_option(path: tuple[str, ...]) -> None:
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    opt = next(p for p in cmd.params if p.name == "progress")
    assert opt.opts == ["--progress"] and opt.secondary_opts == ["--no-progress"]
    assert opt.default is None  # unset: decided by whether stderr is a terminal
    assert "default: shown when stderr is a terminal" in (opt.help or "")


def test_digest_prints_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    data = _jsonl(tmp_path / "d.jsonl", 50)
    code, out, err = run_cli("data", "digest", str(data))
    assert code == 0, err
    assert err == ""
    assert json.loads(out)["records"] == 50


def test_digest_bar_goes_to_stderr_and_stdout_stays_json(
    tmp_path: Path,
    run_cli,  # type: ignore[no-untyped-def]
    terminal: None,
) -> None:
    data = _jsonl(tmp_path / "d.jsonl", 50)
    code, out, err = run_cli("data", "digest", str(data))
    assert code == 0, err
    assert "hash" in err and "100%" in err
    assert "\r" not in out and json.loads(out)["records"] == 50
    size = data.stat().st_size
    assert f"{size}/{size}" in err or f"{size / 1024:.2f}k" in err  # bytes of the file


def test_no_progress_wins_over_a_terminal(tmp_path: Path, run_cli, terminal: None) -> None:  # type: ignore[no-untyped-def]
    data = _jsonl(tmp_path / "d.csv", 3)
    data.write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
    code, out, err = run_cli("data", "digest", str(data), "--no-progress")
    assert code == 0, err
    assert err == "" and json.loads(out)["records"] == 2


def test_progress_forces_the_bar_without_a_terminal(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
    code, out, err = run_cli("data", "digest", str(data), "--progress")
    assert code == 0, err
    assert "hash" in err and "100%" in err and json.loads(out)["records"] == 2


def test_digest_of_a_missing_file_with_a_bar_is_a_clear_error(
    tmp_path: Path,
    run_cli,  # type: ignore[no-untyped-def]
    terminal: None,
) -> None:
    code, _out, err = run_cli("data", "digest", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "nope.jsonl" in err and "Traceback" not in err


def test_register_shows_the_hashing_bar(tmp_path: Path, run_cli, terminal: None) -> None:  # type: ignore[no-untyped-def]
    data = _jsonl(tmp_path / "d.jsonl", 30)
    from finetrail.governance.workspace import Workspace

    Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    code, out, err = run_cli(
        "data",
        "register",
        str(tmp_path / "ws"),
        str(data),
        "--name",
        "d",
        "--source",
        "s://x",
        "--license",
        "CC0-1.0",
        "--collection",
        "generated",
        "--legal-basis",
        "synthetic",
        "--purpose",
        "test",
        "--json",
    )
    assert code == 0, err
    assert "hash" in err and "100%" in err
    assert json.loads(out)["records"] == 30 and "\r" not in out
