"""Signed log checkpoints: written by every commit, checked by ``verify`` (stored, ``--checkpoint``).

Each test can fail both ways: the honest workspace passes, the attacked one is refused naming the
problem. The Merkle roots are recomputed here with the brute-force reference of
``test_merkle_log``, not with the module under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.errors import InputError
from finetrail.governance import keys as ed25519
from finetrail.governance.checkpoint import CHECKPOINTS_FILE, Checkpoint
from finetrail.governance.evidence.workspace import GENESIS, LedgerEntry, Manifest
from finetrail.governance.io import canonical_json, sha256_bytes
from finetrail.governance.ledger import scan_ledger
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace
from tests.governance.test_merkle_log import ref_leaf, ref_mth
from tests.support.trust import key_entry, write_trust
from tests.support.workspaces import make_key


def _ws(root: Path, *, writes: int = 3, wsid: str | None = None) -> Workspace:
    ws = Workspace.init(root, model="m", version="1", owner="ops", workspace_id=wsid)
    for i in range(writes):
        ws.write_bytes(
            f"evidence/f{i}.json", b'{"i":%d}\n' % i, event="data.registered", actor="ops"
        )
    return ws


def _checkpoints(root: Path) -> list[Checkpoint]:
    return [
        Checkpoint.model_validate_json(x)
        for x in (root / CHECKPOINTS_FILE).read_bytes().splitlines()
    ]


def _ref_root(root: Path, size: int | None = None) -> str:
    digests = [e.digest for e in scan_ledger(root / "ledger.jsonl").entries]
    leaves = [ref_leaf(bytes.fromhex(d)) for d in digests[:size]]
    return ref_mth(leaves).hex()


def _codes(root: Path, **kw: object) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in verify_workspace(root, **kw).findings:  # type: ignore[arg-type]
        if f.severity == "error":
            out.setdefault(f.code, []).append(f.message)
    return out


def rechain(root: Path, mutate: object) -> None:
    """A full rewrite with finetrail's own functions: mutate entries, recompute payload digests,
    digests and the chain, re-anchor the manifest (what an attacker with write access can do)."""
    entries = scan_ledger(root / "ledger.jsonl").entries
    entries = mutate(entries)  # type: ignore[operator]
    prev, lines, out = GENESIS, [], []
    for i, e in enumerate(entries):
        payload_digest = sha256_bytes(canonical_json(e.payload))
        draft = e.model_copy(update={"seq": i, "prev": prev, "payload_digest": payload_digest})
        draft = draft.model_copy(update={"digest": draft.compute_digest()})
        lines.append(draft.line())
        out.append(draft)
        prev = draft.digest
    (root / "ledger.jsonl").write_bytes(b"".join(lines))
    manifest = Manifest.read(root / "manifest.json")
    anchor = manifest.ledger.model_copy(update={"entries": len(out), "head": prev})
    (root / "manifest.json").write_bytes(
        manifest.model_copy(update={"ledger": anchor}).canonical_bytes()
    )


def test_every_commit_appends_one_checkpoint_of_the_whole_log(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    _ws(root, writes=3)
    cps = _checkpoints(root)
    assert [c.size for c in cps] == [1, 2, 3, 4]
    ws = Workspace.open(root)
    assert ws.metadata.workspace_id and len(ws.metadata.workspace_id) == 32
    for c in cps:
        assert c.root == _ref_root(root, c.size)
        assert c.workspace_id == ws.metadata.workspace_id
        assert c.origin == f"finetrail.checkpoint/v1 {ws.metadata.workspace_id}"
        assert c.note().startswith(f"{c.origin}\n{c.size}\n".encode())
    report = verify_workspace(root)
    assert report.ok, report.render()
    assert "4 of 4 checkpoint(s) unsigned" in report.render()


def test_two_workspaces_get_different_ids(tmp_path: Path) -> None:
    a, b = _ws(tmp_path / "a", writes=0), _ws(tmp_path / "b", writes=0)
    assert a.metadata.workspace_id != b.metadata.workspace_id


def test_unsigned_writes_are_refused_outside_development_mode(tmp_path: Path) -> None:
    ws = _ws(tmp_path / "ws", writes=0)
    with (
        ed25519.development_mode(False),
        pytest.raises(InputError, match=r"refusing to write an unsigned ledger entry \(x.y\)"),
    ):
        ws.write_bytes("evidence/x.json", b"{}\n", event="x.y", actor="ops")
    assert len(scan_ledger(ws.root / "ledger.jsonl").entries) == 1


def test_signed_entries_and_checkpoints_verify_against_the_trust_file(tmp_path: Path) -> None:
    key_path, pub = make_key(tmp_path / "keys", "trainer")
    _, stranger_pub = make_key(tmp_path / "keys", "stranger")
    key = ed25519.load_private_key(key_path)
    root = tmp_path / "ws"
    with ed25519.signing_with(key), ed25519.development_mode(False):
        _ws(root, writes=2)
    entries = scan_ledger(root / "ledger.jsonl").entries
    assert all(e.signer == ed25519.keyid_of(key.public_key()) and e.signature for e in entries)
    cps = _checkpoints(root)
    assert all(c.signer and c.signature for c in cps)
    good = write_trust(tmp_path / "repo" / "trust.yaml", training=[key_entry(pub, "trainer")])
    report = verify_workspace(root, trust=good)
    assert report.ok, report.render()
    assert "unsigned" not in report.render()
    bad = write_trust(tmp_path / "repo" / "other.yaml", training=[key_entry(stranger_pub, "x")])
    codes = _codes(root, trust=bad)
    assert "untrusted" in codes
    assert any("checkpoint of 3 entries" in m and "does not name" in m for m in codes["untrusted"])


def test_a_forged_checkpoint_signature_is_named(tmp_path: Path) -> None:
    key_path, pub = make_key(tmp_path / "keys", "trainer")
    root = tmp_path / "ws"
    with ed25519.signing_with(ed25519.load_private_key(key_path)):
        _ws(root, writes=1)
    lines = (root / CHECKPOINTS_FILE).read_bytes().splitlines()
    last = json.loads(lines[-1])
    last["time"] = "2026-01-15T13:00:00+00:00"  # re-dated, signature kept
    lines[-1] = canonical_json(last).rstrip(b"\n")
    (root / CHECKPOINTS_FILE).write_bytes(b"\n".join(lines) + b"\n")
    trust = write_trust(tmp_path / "repo" / "trust.yaml", training=[key_entry(pub, "trainer")])
    assert "the signature does not verify" in " ".join(_codes(root, trust=trust)["forged"])


def test_a_rewritten_and_rechained_ledger_breaks_every_later_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    _ws(root, writes=3)
    assert verify_workspace(root).ok

    def edit(entries: list[LedgerEntry]) -> list[LedgerEntry]:
        entries[1] = entries[1].model_copy(update={"actor": "mallory"})
        return entries

    rechain(root, edit)
    codes = _codes(root)
    # checkpoint 1 covers only entry 0 (unchanged); 2..4 cover the rewritten entry
    assert len(codes["rewritten"]) == 3, codes
    assert "checkpoint 2 (2 entries" in codes["rewritten"][0]


def test_an_erased_entry_is_caught_even_with_the_checkpoints_cut_to_match(tmp_path: Path) -> None:
    """Erase entry 2 and drop the checkpoints after it: the stored log is consistent again, so
    only a checkpoint kept outside (``--checkpoint``) shows the rollback."""
    root = tmp_path / "ws"
    _ws(root, writes=3)
    kept = tmp_path / "kept.json"
    kept.write_bytes((root / CHECKPOINTS_FILE).read_bytes().splitlines()[-1] + b"\n")
    rechain(root, lambda es: es[:-1])
    (root / CHECKPOINTS_FILE).write_bytes(
        b"".join(x + b"\n" for x in (root / CHECKPOINTS_FILE).read_bytes().splitlines()[:-1])
    )
    (root / "evidence/f2.json").unlink()
    manifest = Manifest.read(root / "manifest.json")
    files = {k: v for k, v in manifest.files.items() if k != "evidence/f2.json"}
    (root / "manifest.json").write_bytes(
        manifest.model_copy(update={"files": files}).canonical_bytes()
    )
    assert verify_workspace(root).ok, verify_workspace(root).render()  # undetectable inside
    codes = _codes(root, checkpoint=kept)
    assert codes["rollback"] == [
        "the checkpoint given covers 4 ledger entries; the ledger holds 3 (entries were removed: "
        "the workspace was rolled back or truncated)"
    ]


def test_a_checkpoint_from_another_workspace_is_replay(tmp_path: Path) -> None:
    a = _ws(tmp_path / "a", writes=1)
    b = _ws(tmp_path / "b", writes=1)
    theirs = tmp_path / "theirs.jsonl"
    theirs.write_bytes((b.root / CHECKPOINTS_FILE).read_bytes())
    codes = _codes(a.root, checkpoint=theirs)
    assert any(f"is for workspace {b.metadata.workspace_id}" in m for m in codes["replayed"])
    assert "rewritten" in codes  # and its root is not a prefix of this log


def test_an_older_checkpoint_kept_by_the_user_proves_consistency(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ws = _ws(root, writes=1)
    kept = tmp_path / "kept.json"
    kept.write_bytes((root / CHECKPOINTS_FILE).read_bytes().splitlines()[-1])
    ws.write_bytes("evidence/later.json", b"{}\n", event="data.registered", actor="ops")
    assert verify_workspace(root, checkpoint=kept).ok


def test_a_stored_checkpoint_dropped_or_reordered_is_named(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    _ws(root, writes=2)
    lines = (root / CHECKPOINTS_FILE).read_bytes().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    (root / CHECKPOINTS_FILE).write_bytes(b"\n".join(lines) + b"\n")
    codes = _codes(root)
    assert codes["rollback"] == ["checkpoint 3 covers 2 entries, fewer than the one before it (3)"]


def test_entries_after_the_latest_checkpoint_are_named(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    _ws(root, writes=2)
    lines = (root / CHECKPOINTS_FILE).read_bytes().splitlines()
    (root / CHECKPOINTS_FILE).write_bytes(b"\n".join(lines[:-1]) + b"\n")
    codes = _codes(root)
    assert codes["unchecked"] == [
        "1 ledger entry after the latest checkpoint (data.registered): appended outside finetrail?"
    ]


def test_a_workspace_without_id_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    _ws(root, writes=0)
    meta = json.loads((root / "workspace.json").read_bytes())
    del meta["workspace_id"]
    rechain_meta = canonical_json(meta)
    (root / "workspace.json").write_bytes(rechain_meta)
    codes = _codes(root)
    assert any(m.startswith("no workspace id (made before") for m in codes["no-workspace-id"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the checkpoint file is empty"),
        (b"{not json", "not a finetrail checkpoint: kept.json: not JSON"),
        (b'{"record_type": "checkpoint"}\n', "not a finetrail checkpoint: kept.json: origin"),
        (b'{"size": 99999999999999999999999999}', "not a finetrail checkpoint"),
    ],
)
def test_a_malformed_checkpoint_file_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    root = tmp_path / "ws"
    _ws(root, writes=0)
    kept = tmp_path / "kept.json"
    kept.write_bytes(content)
    code = main(["verify", str(root), "--checkpoint", str(kept)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert str(kept) in err and message in err, err


def test_cli_signs_every_entry_with_the_ledger_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key_path, pub = make_key(tmp_path / "keys", "trainer")
    monkeypatch.setenv("FINETRAIL_DEV_UNSIGNED", "0")
    root = tmp_path / "ws"
    args = ["init", str(root), "--model", "m", "--version", "1", "--owner", "ops"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "refusing to write an unsigned ledger entry (workspace.created)" in err, err
    assert "FINETRAIL_LEDGER_KEY" in err and "Traceback" not in err
    assert not (root / "ledger.jsonl").exists()
    monkeypatch.setenv("FINETRAIL_LEDGER_KEY", str(key_path))
    assert main(args) == 0
    capsys.readouterr()
    keyid = ed25519.keyid_of(ed25519.load_public_key(pub))
    assert [e.signer for e in scan_ledger(root / "ledger.jsonl").entries] == [keyid]
    assert [c.signer for c in _checkpoints(root)] == [keyid]
    trust = write_trust(tmp_path / "repo" / "trust.yaml", training=[key_entry(pub, "trainer")])
    assert main(["verify", str(root), "--trust", str(trust)]) == 0
    out = capsys.readouterr().out
    assert "WARNING unsigned" not in out and "verify: OK" in out, out


def test_a_broken_ledger_key_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    monkeypatch.setenv("FINETRAIL_LEDGER_KEY", str(bad))
    code = main(["init", str(tmp_path / "ws"), "--model", "m", "--version", "1", "--owner", "o"])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "not an unencrypted PEM private key" in err, err
