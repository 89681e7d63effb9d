"""``finetrail anchor`` and ``verify --anchor``: rollback, truncation and rewrite need a copy of a
checkpoint kept outside the workspace. Each case fails both ways (the honest workspace passes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.governance import keys as ed25519
from finetrail.governance.anchor import anchor_workspace, read_anchor_file
from finetrail.governance.checkpoint import CHECKPOINTS_FILE
from finetrail.governance.evidence.workspace import LedgerEntry
from finetrail.governance.workspace import Workspace
from tests.governance.test_checkpoints import rechain
from tests.support.trust import key_entry, write_trust
from tests.support.workspaces import make_key


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(workspace, trust file, ledger key): three signed writes, the trust file outside."""
    key_path, pub = make_key(tmp_path / "keys", "trainer")
    trust = write_trust(tmp_path / "repo" / "trust.yaml", training=[key_entry(pub, "trainer")])
    root = tmp_path / "ws"
    with ed25519.signing_with(ed25519.load_private_key(key_path)):
        ws = Workspace.init(root, model="m", version="1", owner="ops")
        for i in range(3):
            ws.write_bytes(f"evidence/f{i}.json", b"{}\n", event="data.registered", actor="ops")
    return root, trust, key_path


def _verify(
    capsys: pytest.CaptureFixture[str], root: Path, *args: str
) -> tuple[int, list[str], str]:
    code = main(["verify", str(root), *args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    errors = [x for x in out.out.splitlines() if x.startswith("ERROR")]
    return code, errors, out.out + out.err


def _write(root: Path, key: Path, name: str) -> None:
    with ed25519.signing_with(ed25519.load_private_key(key)):
        Workspace.open(root).write_bytes(
            f"evidence/{name}.json", b"{}\n", event="data.registered", actor="ops"
        )


def test_honest_workspace_passes_with_the_anchor(
    signed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, trust, key = signed
    anchor = tmp_path / "team" / "anchors.jsonl"
    anchor.parent.mkdir()
    assert main(["anchor", str(root), "--to", str(anchor)]) == 0
    assert "anchored checkpoint of 4 entries" in capsys.readouterr().out
    _write(root, key, "later")  # the log grows past the anchor: still consistent
    code, errors, out = _verify(capsys, root, "--trust", str(trust), "--anchor", str(anchor))
    assert code == 0 and not errors, out
    assert main(["anchor", str(root), "--to", str(anchor)]) == 0  # appends the next one
    assert [c.size for c in read_anchor_file(anchor)] == [4, 5]


def test_rollback_to_an_earlier_copy_is_refused(
    signed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, trust, key = signed
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)
    _write(root, key, "rejection")  # e.g. a reviewer's rejection, then anchored
    anchor = tmp_path / "anchors.jsonl"
    anchor_workspace(root, to=anchor)
    shutil.rmtree(root)
    shutil.copytree(backup, root)  # restore the copy from before it
    assert _verify(capsys, root, "--trust", str(trust))[0] == 0  # nothing inside tells
    code, errors, out = _verify(capsys, root, "--trust", str(trust), "--anchor", str(anchor))
    assert code == 1
    assert any(
        " rollback " in x and "covers 5 ledger entries; the ledger holds 4" in x for x in errors
    ), out
    # and publishing the rolled-back workspace is refused (exit 1), leaving the anchor as it was
    before = anchor.read_bytes()
    assert main(["anchor", str(root), "--to", str(anchor)]) == 1
    assert "refusing to anchor: the workspace does not extend" in capsys.readouterr().err
    assert anchor.read_bytes() == before


def test_a_rewrite_is_refused(
    signed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, trust, _ = signed
    anchor = tmp_path / "anchors.jsonl"
    anchor_workspace(root, to=anchor)

    def edit(entries: list[LedgerEntry]) -> list[LedgerEntry]:
        entries[2] = entries[2].model_copy(update={"actor": "mallory"})
        return entries

    rechain(root, edit)
    code, errors, out = _verify(capsys, root, "--trust", str(trust), "--anchor", str(anchor))
    assert code == 1
    assert any(" rewritten " in x and "anchor" in x for x in errors), out


def test_the_anchor_must_hold_this_workspace(
    signed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, trust, key = signed
    other = tmp_path / "other"
    with ed25519.signing_with(ed25519.load_private_key(key)):
        Workspace.init(other, model="m", version="1", owner="ops")
    anchor = tmp_path / "anchors.jsonl"
    anchor_workspace(other, to=anchor)
    code, errors, out = _verify(capsys, root, "--trust", str(trust), "--anchor", str(anchor))
    assert code == 1
    wsid = Workspace.open(root).metadata.workspace_id
    assert any(f"the anchor holds no checkpoint for workspace {wsid}" in x for x in errors), out


def test_an_anchor_signed_by_an_untrusted_key_is_refused(
    signed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, _ = signed
    anchor = tmp_path / "anchors.jsonl"
    anchor_workspace(root, to=anchor)
    _, pub = make_key(tmp_path / "keys", "someone")
    other = write_trust(tmp_path / "repo" / "other.yaml", training=[key_entry(pub, "someone")])
    code, errors, out = _verify(capsys, root, "--trust", str(other), "--anchor", str(anchor))
    assert code == 1
    assert any(" untrusted " in x and x.split()[2].startswith("anchor") for x in errors), out


def test_unsigned_checkpoints_are_not_anchored_without_consent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ws"
    Workspace.init(root, model="m", version="1", owner="ops")  # development mode: unsigned
    anchor = tmp_path / "anchors.jsonl"
    assert main(["anchor", str(root), "--to", str(anchor)]) == 2
    assert "refusing to anchor an unsigned checkpoint" in capsys.readouterr().err
    assert main(["anchor", str(root), "--to", str(anchor), "--allow-unsigned"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nowhere to anchor"),
        (("--to", "{ws}/anchors.jsonl"), "the anchor file lies inside the workspace"),
        (("--git-ref", "repo:refs/heads/main"), "not a git anchor: 'repo:refs/heads/main'"),
    ],
)
def test_bad_anchor_targets_are_bad_input(
    signed: tuple[Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    root = signed[0]
    code = main(["anchor", str(root), *(a.format(ws=root) for a in args)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_broken_anchor_file_is_bad_input(
    signed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = signed[0]
    anchor = tmp_path / "anchors.jsonl"
    anchor.write_bytes(b'{"size": 1}\n')
    code = main(["verify", str(root), "--anchor", str(anchor)])
    err = capsys.readouterr().err
    assert code == 2 and str(anchor) in err and "anchors.jsonl:1" in err, err
    code = main(["verify", str(root), "--anchor", str(tmp_path / "missing.jsonl")])
    assert code == 2 and "anchor file not found" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_ref_anchor(
    signed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, trust, key = signed
    repo = tmp_path / "team-repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    wsid = Workspace.open(root).metadata.workspace_id
    spec = f"{repo}:refs/finetrail/{wsid}"
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)
    _write(root, key, "later")
    assert main(["anchor", str(root), "--git-ref", spec]) == 0
    assert main(["anchor", str(root), "--git-ref", spec]) == 0  # a second commit on the ref
    capsys.readouterr()
    log = subprocess.run(
        ["git", "-C", str(repo), "rev-list", f"refs/finetrail/{wsid}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(log.stdout.split()) == 2
    code, errors, out = _verify(capsys, root, "--trust", str(trust), "--anchor", spec)
    assert code == 0 and not errors, out
    code, errors, out = _verify(capsys, backup, "--trust", str(trust), "--anchor", spec)
    assert code == 1 and any(" rollback " in x for x in errors), out


def test_checkpoints_file_is_not_writable_as_a_root_file(signed: tuple[Path, Path, Path]) -> None:
    from finetrail.errors import InputError

    root = signed[0]
    with pytest.raises(InputError, match="invalid workspace root file"):
        Workspace.open(root).write_root_file(
            CHECKPOINTS_FILE, b"", event="x", actor="ops", payload={}
        )
