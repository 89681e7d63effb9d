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
from finetrail.cli_options import argument_metavar
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


def _all_params() -> list[tuple[str, click.Command, click.Parameter]]:
    found = []
    for path in _all_commands(cli):
        cmd: click.Command = cli
        for part in path:
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[part]
        for param in cmd.params:
            if not getattr(param, "hidden", False):
                found.append((" ".join(path), cmd, param))
    return found


@pytest.mark.parametrize(
    ("path", "cmd", "param"), _all_params(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_option_has_help_and_every_argument_is_described(
    path: str, cmd: click.Command, param: click.Parameter
) -> None:
    if isinstance(param, click.Option):
        assert (param.help or "").strip(), f"`finetrail {path}` {param.opts[0]} has no help text"
    else:  # click arguments take no help: the "Arguments:" section (or the text) says each
        name = argument_metavar(cmd, param)
        text = cmd.help or ""
        section = text.partition("Arguments:")[2]
        described = any(line.split()[:1] == [name] for line in section.splitlines())
        assert described or name in text.partition("Arguments:")[0], (
            f"`finetrail {path} --help` does not say what {name} is (add it to "
            "finetrail.cli_options.ARGUMENTS)"
        )


def test_probe_help_says_what_each_probe_needs(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("probe", "--help")
    assert code == 0
    for probe, need in (
        ("exposure", "canaries planted before training"),
        ("extraction", "the training data"),
        ("mia", "--heldout-data"),
        ("dp-audit", "at least two planted canaries"),
    ):
        line = next(line for line in out.splitlines() if line.strip().startswith(probe))
        assert need in line, line


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (("train", "CFG", "--workspace", "WS"), ("train", "WS", "CFG")),
        (("train", "CFG", "-w", "WS"), ("train", "WS", "CFG")),
        (("data", "register", "FILE", "-w", "WS"), ("data", "register", "WS", "FILE")),
    ],
)
def test_workspace_comes_first_and_the_old_option_is_a_deprecated_alias(
    tmp_path: Path, run_cli, old: tuple[str, ...], new: tuple[str, ...]
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "CFG").write_text("nonsense: 1\n")
    (tmp_path / "FILE").write_text("")
    sub = {"CFG": str(tmp_path / "CFG"), "FILE": str(tmp_path / "FILE"), "WS": str(tmp_path / "ws")}
    extra = ("--name", "n", "--source", "s", "--license", "MIT", "--collection", "c",
             "--legal-basis", "b", "--purpose", "p") if "register" in old else ()  # fmt: skip
    results = []
    for form in (old, new):
        code, _, err = run_cli(*(sub.get(a, a) for a in form), *extra)
        results.append((code, err))
    (old_code, old_err), (new_code, new_err) = results
    cmd = " ".join(new[:-2])
    second = "CONFIG" if new[0] == "train" else "FILE"
    note = f"note: --workspace is deprecated; write `finetrail {cmd} WORKSPACE {second}`\n"
    # both forms reach the same refusal (a config without base_model, a workspace not made)
    assert old_code == new_code == 2
    assert old_err == note + new_err
    assert "error: " in new_err and "Traceback" not in new_err


def test_workspace_given_twice_is_a_usage_error(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("train", str(tmp_path), "c.yaml", "--workspace", str(tmp_path))
    assert code == 2
    assert "give the workspace once: `finetrail train WORKSPACE CONFIG`" in err
    code, _, err = run_cli("train", str(tmp_path))
    assert code == 2 and "Missing argument 'CONFIG'" in err


def test_probe_exits_2_when_every_probe_was_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli
) -> None:  # type: ignore[no-untyped-def]
    from finetrail.governance.probes import runner

    def skipped_all(*_: object, **__: object) -> runner.ProbeRun:
        return runner.ProbeRun(
            skipped={
                "exposure": "no canary set committed in the workspace",
                "membership": "no held-out data given (non-members)",
            }
        )

    monkeypatch.setattr(runner, "probe_workspace", skipped_all)
    code, out, err = run_cli("probe", str(tmp_path), "--no-progress")
    assert code == 2
    assert "exposure: skipped (no canary set committed in the workspace)" in out
    assert "error: no probe ran: all 2 were skipped, so no evidence was written" in err
    assert "`finetrail probe --help` lists what each probe needs" in err


@pytest.mark.parametrize("name", ["eu-ai-act-high-risk", "eu-ai-act-high-risk.yaml"])
def test_a_shipped_policy_is_named_with_or_without_its_suffix(run_cli, name: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("policy", "lint", name)
    assert code == 0, err
    assert "eu-ai-act-high-risk.yaml: ok: policy eu-ai-act-high-risk" in out


def test_an_unknown_policy_name_lists_the_shipped_ones(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli("policy", "lint", "eu-ai-act")
    assert code == 2
    assert "error: eu-ai-act: policy file not found" in err
    assert (
        "fix: give a policy file, or one of the shipped policies: development, "
        "eu-ai-act-high-risk, nist-ai-rmf" in err
    )
