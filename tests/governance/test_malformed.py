"""Malformed inputs: every filesystem and parser edge ends in exit 2 naming the file, unchanged.

A table generated from corruptions (empty, truncated, NUL bytes, non-UTF-8, a 5,000-digit
integer, deep nesting, NaN and 1e999, a repeated key, a directory, a symlink loop, a dangling
link, a FIFO, ``/dev/zero``, a YAML alias bomb, ...) times the files a command reads
(``workspace.json``, ``manifest.json``, the ledger's last entry, a dataset record, a policy file)
times the commands that read them. Each case runs the CLI in-process on a fresh copy of a small
workspace and asserts exit 2, an ``error:`` line naming the file, no traceback, and every byte
and name of the workspace unchanged (hidden files included). ``verify`` on the same corruptions
reports them (exit 1) without a traceback.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.governance.io import canonical_json

SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "policies" / "development.yaml"
BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)

Corrupt = Callable[[Path], None]


# -- corruptions of a file's content (JSON files) --------------------------------------------------
def _content(change: Callable[[bytes], bytes]) -> Corrupt:
    def apply(path: Path) -> None:
        path.write_bytes(change(path.read_bytes()))

    return apply


def _replace_first_number(new: bytes) -> Callable[[bytes], bytes]:
    import re

    def change(raw: bytes) -> bytes:
        out, n = re.subn(rb"(?<=:)-?\d+(\.\d+)?(?=[,}])", new, raw, count=1)
        assert n, "no number to replace"
        return out

    return change


def _replace_first_string(new: bytes) -> Callable[[bytes], bytes]:
    import re

    def change(raw: bytes) -> bytes:
        out, n = re.subn(rb'(?<=:)"[^"]*"', new, raw, count=1)
        assert n
        return out

    return change


def _dup_key(raw: bytes) -> bytes:
    i = raw.index(b"{") + 1
    first = raw[i : raw.index(b",", i)]
    return raw[:i] + first + b"," + raw[i:]


JSON_CONTENT: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda raw: b"",
    "blank": lambda raw: b" \n\t\n",
    "truncated-half": lambda raw: raw[: len(raw) // 2],
    "truncated-one-byte": lambda raw: raw.rstrip()[:-1],
    "nul-inside": lambda raw: raw[:10] + b"\x00" + raw[10:],
    "nul-only": lambda raw: b"\x00" * 64,
    "non-utf8-byte": lambda raw: raw[:5] + b"\xff\xfe" + raw[5:],
    "latin1-string": _replace_first_string('"caf\xe9"'.encode("latin-1")),
    "utf16": lambda raw: raw.decode("utf-8").encode("utf-16"),
    "huge-int": _replace_first_number(b"9" * 5000),
    "huge-float": _replace_first_number(b"1e999"),
    "nan": _replace_first_number(b"NaN"),
    "infinity": _replace_first_number(b"-Infinity"),
    "deep-nesting": lambda raw: b"[" * 100_000 + b"]" * 100_000,
    "deep-object": lambda raw: b'{"a":' * 200 + b"1" + b"}" * 200,
    "medium-nesting": _replace_first_string(b"[" * 80 + b"]" * 80),
    "repeated-key": _dup_key,
    "array-not-object": lambda raw: b"[" + raw.rstrip() + b"]",
    "a-string": lambda raw: b'"hello"',
    "garbage": lambda raw: bytes(range(256)) * 4,
    "trailing-garbage": lambda raw: raw.rstrip() + b"}}}",
    "unknown-field": lambda raw: raw.replace(b"{", b'{"surprise":1,', 1),
    "wrong-type": _replace_first_string(b'{"nested":true}'),
}


# -- corruptions of what is at the path ------------------------------------------------------------
def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside.json").write_text("{}")


def _symlink_loop(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.name)  # points at itself


def _symlink_pair_loop(path: Path) -> None:
    other = path.with_name(path.name + ".other")
    path.unlink()
    path.symlink_to(other.name)
    other.symlink_to(path.name)


def _dangling(path: Path) -> None:
    path.unlink()
    path.symlink_to("no-such-file.json")


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _unreadable(path: Path) -> None:
    path.chmod(0)


FS_EDGES: dict[str, Corrupt] = {
    "directory": _directory,
    "symlink-loop": _symlink_loop,
    "symlink-pair-loop": _symlink_pair_loop,
    "dangling-symlink": _dangling,
    "fifo": _fifo,
    "dev-zero": _dev_zero,
    "no-permission": _unreadable,
}


def _last_line(change: Callable[[bytes], bytes]) -> Corrupt:
    """Corrupt the ledger's last complete entry (the one a writer chains to); keep its newline."""

    def apply(path: Path) -> None:
        lines = path.read_bytes().splitlines(keepends=True)
        new = change(lines[-1].rstrip(b"\n")).replace(b"\n", b" ")
        path.write_bytes(b"".join(lines[:-1]) + new + b"\n")

    return apply


# -- policy corruptions -------------------------------------------------------------------------------
def _policy_text(change: Callable[[str], str]) -> Corrupt:
    def apply(path: Path) -> None:
        path.write_text(change(path.read_text()))

    return apply


POLICY_CONTENT: dict[str, Corrupt] = {
    "empty": _content(lambda raw: b""),
    "comment-only": _content(lambda raw: b"# nothing\n"),
    "nul-byte": _content(lambda raw: raw[:40] + b"\x00" + raw[40:]),
    "non-utf8": _content(lambda raw: raw[:40] + b"\xff" + raw[40:]),
    "alias-bomb": _policy_text(lambda text: BILLION_LAUGHS),
    "alias-in-policy": _policy_text(
        lambda text: text.replace(
            "required_evidence:", "x: &t [training]\nrequired_evidence: *t\n#"
        )
    ),
    "deep-flow": _policy_text(lambda text: "rules: " + "[" * 5000 + "]" * 5000),
    "deep-block": _policy_text(lambda text: "".join("  " * i + "a:\n" for i in range(300))),
    "huge-int": _policy_text(
        lambda text: text.replace("threshold: 10.0", "threshold: " + "9" * 5000)
    ),
    "inf": _policy_text(lambda text: text.replace("threshold: 10.0", "threshold: .inf")),
    "nan": _policy_text(lambda text: text.replace("threshold: 10.0", "threshold: .nan")),
    "bad-date": _policy_text(lambda text: text.replace('version: "1.1.0"', "version: 2024-13-45")),
    "python-tag": _policy_text(lambda text: text + "\nx: !!python/object/apply:os.system [id]\n"),
    "tab-indent": _policy_text(
        lambda text: text.replace("  - id: training-completed", "\t- id: x")
    ),
    "unclosed-flow": _policy_text(lambda text: text.replace('["Annex IV 2(a)"]', '["Annex IV')),
    "a-list": _policy_text(lambda text: "- 1\n- 2\n"),
    "duplicate-key": _policy_text(lambda text: text + "\nid: again\n"),
    "binary": _content(lambda raw: bytes(range(256)) * 8),
}


# -- the table ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    target: str  # which file
    corruption: str
    command: str

    @property
    def id(self) -> str:
        return f"{self.target}:{self.corruption}:{self.command}"


# ``review`` refuses a workspace that ``verify`` rejects with exit 1 (its own rule), so it reads
# workspace.json here; a corrupt manifest or ledger is what ``data register``'s write reads
TARGETS: dict[str, tuple[str, ...]] = {
    "workspace.json": ("review-comment", "data-register", "data-list"),
    "manifest.json": ("data-register",),
    "ledger.jsonl": ("data-register",),
    "dataset-record": ("data-list", "data-show"),
}
# corruptions that leave a file a writer may legitimately read (checked elsewhere)
SKIP = {
    ("ledger.jsonl", "unknown-field"),  # any last entry that does not validate: covered by others
}


def _cases() -> list[Case]:
    out = []
    for target, commands in TARGETS.items():
        names = [*JSON_CONTENT, *FS_EDGES]
        for corruption in names:
            if (target, corruption) in SKIP:
                continue
            if target == "ledger.jsonl" and corruption in ("blank", "nul-only", "garbage"):
                continue  # whole-file variants below
            for command in commands:
                out.append(Case(target, corruption, command))
    for corruption in POLICY_CONTENT.keys() | FS_EDGES.keys():
        for command in ("policy-lint", "gate"):
            out.append(Case("policy", corruption, command))
    return sorted(out, key=lambda c: c.id)


CASES = _cases()


def _corruption(case: Case) -> Corrupt:
    if case.corruption in FS_EDGES:
        return FS_EDGES[case.corruption]
    if case.target == "policy":
        return POLICY_CONTENT[case.corruption]
    change = JSON_CONTENT[case.corruption]
    if case.target == "ledger.jsonl":
        return _last_line(change)
    return _content(change)


# -- the workspace -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.support.workspaces import add_reviewers

    top = tmp_path_factory.mktemp("malformed")
    ws = top / "base"
    mp = pytest.MonkeyPatch()
    mp.setenv("FINETRAIL_FIXED_TIME", "2026-01-15T12:00:00+00:00")
    try:
        assert main(["init", str(ws), "--model", "m", "--version", "1", "--owner", "alice"]) == 0
        data = top / "tickets.jsonl"
        data.write_bytes(
            b"".join(canonical_json({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(5))
        )
        assert main([*_register_args(ws, data, "tickets")]) == 0
        keys = add_reviewers(ws, top / "keys", {"bob": ("model-risk",)})
    finally:
        mp.undo()
    more = top / "more.jsonl"
    more.write_bytes(canonical_json({"prompt": "x", "completion": "y"}))
    return {"ws": ws, "key": keys["bob"], "data": more, "top": top}


def _register_args(ws: Path, data: Path, name: str) -> list[str]:
    return [
        *("data", "register", str(ws), str(data), "--name", name),
        *("--source", "https://data.example.test/t", "--license", "CC-BY-4.0"),
        *("--collection", "exported", "--legal-basis", "GDPR Art. 6(1)(f)"),
        *("--purpose", "fine-tune"),
    ]


def _command(case: Case, ws: Path, base: dict[str, Path], policy: Path) -> list[str]:
    if case.command == "review-comment":
        return [
            *("review", "comment", str(ws), "--reviewer", "bob", "--role", "model-risk"),
            *("--key", str(base["key"]), "--note", "checked"),
        ]
    if case.command == "data-register":
        return _register_args(ws, base["data"], "more")
    if case.command == "data-list":
        return ["data", "list", str(ws)]
    if case.command == "data-show":
        return ["data", "show", str(ws), "tickets"]
    if case.command == "policy-lint":
        return ["policy", "lint", str(policy)]
    if case.command == "gate":
        return ["gate", str(ws), "--policy", str(policy)]
    raise AssertionError(case.command)


def _target(case: Case, ws: Path, policy: Path) -> Path:
    if case.target == "policy":
        return policy
    if case.target == "dataset-record":
        return next((ws / "evidence" / "datasets").glob("*.json"))
    return ws / case.target


def snapshot(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every name under ``root`` with its kind and bytes (links by target, not followed)."""
    out: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p).encode())
            elif p.is_dir():
                out[rel] = ("dir", b"")
            elif p.is_file():
                out[rel] = ("file", p.read_bytes() if os.access(p, os.R_OK) else b"?")
            else:
                out[rel] = ("other", b"")
    return out


def _prepare(case: Case, base: dict[str, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    ws = tmp_path / "ws"
    shutil.copytree(base["ws"], ws, symlinks=True)
    policy = tmp_path / "policy.yaml"
    shutil.copyfile(SHIPPED_POLICY, policy)
    target = _target(case, ws, policy)
    if case.corruption == "no-permission" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    _corruption(case)(target)
    return ws, policy, target


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_exits_2_naming_the_file(
    case: Case,
    base: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws, policy, target = _prepare(case, base, tmp_path)
    before = snapshot(ws)
    t0 = time.monotonic()
    code = main(_command(case, ws, base, policy))
    elapsed = time.monotonic() - t0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 2, (code, out, err)
    assert err.startswith("error: "), err
    assert target.name in err, err
    assert snapshot(ws) == before, "the workspace changed"
    assert elapsed < 1.0 or case.corruption != "alias-bomb", f"alias bomb took {elapsed:.2f} s"


VERIFY_CASES = [c for c in CASES if c.command in ("data-register", "data-list")]
VERIFY_CASES = [c for c in VERIFY_CASES if c.target != "workspace.json" or c.command == "data-list"]


@pytest.mark.parametrize("case", VERIFY_CASES, ids=[c.id for c in VERIFY_CASES])
def test_verify_reports_each_malformed_file_without_a_traceback(
    case: Case,
    base: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws, _, target = _prepare(case, base, tmp_path)
    before = snapshot(ws)
    code = main(["verify", str(ws)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code in (1, 2), (code, out, err)
    assert target.name in out + err or (
        case.target == "dataset-record" and "evidence/datasets/" in out
    ), out + err
    assert snapshot(ws) == before


def test_the_table_is_large_enough() -> None:
    runnable = [c for c in CASES if c.corruption != "no-permission" or os.geteuid() != 0]
    assert len(runnable) >= 100, len(runnable)


# -- the release commands: `registry promote`, `report`, and `verify` over the dossier and the
# MLflow store (a release workspace: training evidence naming a registered model, a signed gate
# decision, a rendered dossier, the run's artifacts on disk) ----------------------------------------
RUN_ARTIFACTS = "mlflow-artifacts/0123456789abcdef/artifacts"
# content edits that still parse are tampering, not malformed input: verify's exit 1, covered by
# tests/governance/test_mutations.py
PARSES = {"unknown-field", "wrong-type"}
RELEASE_TARGETS: dict[str, tuple[str, ...]] = {
    "evidence/training.json": ("registry-promote",),
    "evidence/gate/0001.json": ("registry-promote",),
    "dossier/index.html": ("report",),
    "dossier/datasheets": ("report",),
}


def _release_cases() -> list[Case]:
    out = []
    for target, commands in RELEASE_TARGETS.items():
        json_target = target.endswith(".json")
        names = [*(c for c in JSON_CONTENT if c not in PARSES), *FS_EDGES] if json_target else []
        if not json_target:
            # a folder in place of the datasheets folder is no edge (an extra file, verify's)
            names = [c for c in FS_EDGES if c not in ("no-permission", "directory")]
            names += ["no-permission"] if target.endswith(".html") else []
        for corruption in names:
            for command in commands:
                out.append(Case(target, corruption, command))
    return sorted(out, key=lambda c: c.id)


RELEASE_CASES = _release_cases()


@pytest.fixture(scope="module")
def release_base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from finetrail.reports.api import render_report
    from tests.support.workspaces import build_workspace, contract_kinds, make_key

    contract_kinds()  # every kind of the evidence contract registered with its real class
    top = tmp_path_factory.mktemp("malformed-release")
    ws = top / "ws"
    build_workspace(
        ws,
        override={
            "training": {
                "mlflow.registered_model": "support-assistant",
                "mlflow.model_version": "1",
                "mlflow.run_id": "0123456789abcdef",
                "mlflow.experiment_id": "7",
                "mlflow.tracking_uri": f"sqlite:///{ws}/mlflow.db",
            }
        },
    )
    key = make_key(top / "keys", "ci-gate")[0]
    gate = ["gate", str(ws), "--policy", "development", "--signing-key", str(key)]
    assert main(gate) in (0, 1)  # passed or not: a signed decision is recorded
    assert render_report(workspace=ws, formats=("html", "md")).recorded
    run = ws / RUN_ARTIFACTS
    (run / "adapter").mkdir(parents=True)
    for f in sorted((ws / "artifacts/adapter").iterdir()):
        (run / "adapter" / f.name).write_bytes(f.read_bytes())
    (run / "evidence").mkdir()
    (run / "evidence/training.json").write_bytes((ws / "evidence/training.json").read_bytes())
    return {"ws": ws, "top": top}


def _release_corruption(case: Case, path: Path) -> None:
    if path.is_dir() and case.corruption in FS_EDGES:  # a folder the command writes into
        shutil.rmtree(path)
        path.write_bytes(b"")
        FS_EDGES[case.corruption](path)
        return
    if case.corruption in FS_EDGES:
        FS_EDGES[case.corruption](path)
    else:
        _content(JSON_CONTENT[case.corruption])(path)


@pytest.mark.parametrize("case", RELEASE_CASES, ids=[c.id for c in RELEASE_CASES])
def test_release_commands_refuse_malformed_input(
    case: Case,
    release_base: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if case.corruption == "no-permission" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    ws = tmp_path / "ws"
    shutil.copytree(release_base["ws"], ws, symlinks=True)
    target = ws / case.target
    _release_corruption(case, target)
    before = snapshot(ws)
    argv = (
        # the store named explicitly: the copy's recorded one is the original's (refused)
        ["registry", "promote", str(ws), "--dry-run", "--tracking-uri", f"sqlite:///{ws}/mlflow.db"]
        if case.command == "registry-promote"
        else ["report", str(ws), "--format", "html,md"]
    )
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 2, (code, out, err)
    assert err.startswith("error: "), err
    assert target.name in err, err
    assert snapshot(ws) == before, "the workspace changed"


VERIFY_RELEASE_TARGETS = (
    "dossier/index.html",
    "dossier/coverage.json",
    f"{RUN_ARTIFACTS}/evidence/training.json",
    f"{RUN_ARTIFACTS}/adapter/adapter_model.safetensors",
)
VERIFY_RELEASE = [(t, c) for t in VERIFY_RELEASE_TARGETS for c in FS_EDGES]


@pytest.mark.parametrize(
    ("target", "corruption"), VERIFY_RELEASE, ids=[f"{t}:{c}" for t, c in VERIFY_RELEASE]
)
def test_verify_names_strange_files_in_the_dossier_and_the_store(
    target: str,
    corruption: str,
    release_base: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if corruption == "no-permission" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    ws = tmp_path / "ws"
    shutil.copytree(release_base["ws"], ws, symlinks=True)
    assert main(["verify", str(ws)]) == 0, capsys.readouterr().out
    capsys.readouterr()
    FS_EDGES[corruption](ws / target)
    before = snapshot(ws)
    code = main(["verify", str(ws)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 1, (code, out, err)
    assert target in out, out
    assert snapshot(ws) == before


def test_the_release_table_is_large_enough() -> None:
    runnable = [
        c for c in (*CASES, *RELEASE_CASES) if c.corruption != "no-permission" or os.geteuid()
    ]
    verify = [c for c in VERIFY_RELEASE if c[1] != "no-permission" or os.geteuid()]
    assert len(RELEASE_CASES) + len(verify) >= 80, (len(RELEASE_CASES), len(verify))
    assert len(runnable) >= 160, len(runnable)
