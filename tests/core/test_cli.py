"""The CLI: help everywhere, version, exit codes, and bad input without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from finetrail import __version__
from finetrail.cli import cli
from finetrail.governance.workspace import Workspace


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, cmd in group.commands.items():
        found.append((*prefix, name))
        if isinstance(cmd, click.Group):
            found += _all_commands(cmd, (*prefix, name))
    return found


def test_version(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("--version")
    assert code == 0
    assert __version__ in out


@pytest.mark.parametrize("path", _all_commands(cli), ids=lambda p: " ".join(p))
def test_every_command_has_help(run_cli, path: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli(*path, "--help")
    assert code == 0
    assert "Usage:" in out


def test_init_creates_a_verifiable_workspace(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "dossiers" / "m" / "1.0"
    code, out, err = run_cli(
        "init", str(root), "--model", "m", "--version", "1.0", "--owner", "bob"
    )
    assert code == 0, err
    for name in (
        "workspace.json",
        "ledger.jsonl",
        "manifest.json",
        "evidence",
        "artifacts",
        "dossier",
    ):
        assert (root / name).exists()
    meta = json.loads((root / "workspace.json").read_text())
    assert (
        meta["owner"] == "bob"
        and meta["schema_version"] == 1
        and meta["finetrail_version"] == __version__
    )
    code, out, _ = run_cli("verify", str(root))
    assert code == 0, out


def test_init_refuses_to_overwrite(make_workspace, run_cli) -> None:  # type: ignore[no-untyped-def]
    ws: Workspace = make_workspace()
    before = (ws.root / "ledger.jsonl").read_bytes()
    code, _, err = run_cli("init", str(ws.root), "--model", "x", "--version", "2", "--owner", "eve")
    assert code == 2
    assert "already exists" in err and str(ws.root) in err
    assert (ws.root / "ledger.jsonl").read_bytes() == before


def test_unknown_option_is_usage_error(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("verify", "--frobnicate", "x")
    assert code == 2
    assert "No such option" in err


def test_corrupt_workspace_json_is_bad_input_naming_the_file(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws: Workspace = make_workspace()
    (ws.root / "workspace.json").write_text("{not json")
    with pytest.raises(Exception) as info:
        Workspace.open(ws.root)
    msg = str(info.value)
    assert "workspace.json" in msg and "malformed JSON at line 1, column 2" in msg


def test_non_utf8_file_is_named_with_offset(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws: Workspace = make_workspace()
    (ws.root / "workspace.json").write_bytes(b'{"model": "caf\xe9"}')
    with pytest.raises(Exception) as info:
        Workspace.open(ws.root)
    assert "not valid UTF-8 (byte 0xe9 at offset 14, line 1)" in str(info.value)


def test_unknown_field_in_workspace_json_is_named(make_workspace) -> None:  # type: ignore[no-untyped-def]
    ws: Workspace = make_workspace()
    data = json.loads((ws.root / "workspace.json").read_text())
    data["colour"] = "blue"
    (ws.root / "workspace.json").write_text(json.dumps(data))
    with pytest.raises(Exception) as info:
        Workspace.open(ws.root)
    assert "colour: unknown field (not allowed)" in str(info.value)


def test_errors_exit_2_without_traceback_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "finetrail", "verify", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "workspace not found" in proc.stderr and "missing" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "finetrail", "--debug", "verify", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" in proc.stderr
