"""The write-ahead journal and the transaction: every interrupted state is repaired and recorded.

Kills are simulated in-process by raising :class:`Killed` (a ``BaseException``, as a kill is not
an error a command handles) from inside a step; ``test_kill`` does the same with real SIGKILLs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from finetrail.errors import InputError
from finetrail.governance import journal, transaction
from finetrail.governance.io import canonical_json
from finetrail.governance.ledger import scan_ledger
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import JOURNAL_DIR, Workspace
from tests.governance.test_malformed import snapshot


class Killed(BaseException):
    pass


def _ws(tmp_path: Path) -> Workspace:
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    ws.write_bytes("evidence/a.json", canonical_json({"a": 1}), event="a.written", actor="alice")
    return ws


def _kinds(ws: Workspace) -> list[str]:
    return [e.kind for e in ws.ledger.entries()]


def _ok(ws: Workspace) -> None:
    report = verify_workspace(ws.root)
    assert report.ok, report.render()
    assert not (ws.root / JOURNAL_DIR).exists()


def _kill_in(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> None:
    def boom(*a: object, **kw: object) -> None:
        raise Killed

    monkeypatch.setattr(module, name, boom)


def test_a_write_leaves_only_its_file_ledger_line_and_manifest(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    before = snapshot(ws.root)
    ws.write_bytes("evidence/b.json", b"{}\n", event="b.written", actor="alice")
    after = snapshot(ws.root)
    assert sorted(set(after) - set(before)) == ["evidence/b.json"]
    assert {k for k in after if after[k] != before.get(k)} == {
        "checkpoints.jsonl",
        "evidence/b.json",
        "ledger.jsonl",
        "manifest.json",
    }
    _ok(ws)


def test_a_transaction_lands_all_or_nothing(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    before = snapshot(ws.root)
    with pytest.raises(RuntimeError), ws.transaction():
        ws.write_bytes("evidence/b.json", b"{}\n", event="b.written", actor="alice")
        ws.append_event("b.checked", actor="alice")
        raise RuntimeError("the command failed half way")
    assert snapshot(ws.root) == before
    with ws.transaction():
        ws.write_bytes("evidence/b.json", b"{}\n", event="b.written", actor="alice")
        ws.append_event("b.checked", actor="alice")
    assert _kinds(ws)[-2:] == ["b.written", "b.checked"]
    _ok(ws)


def test_nested_blocks_join_and_see_the_pending_manifest(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    other = Workspace.open(ws.root)  # another object on the same folder joins too
    with ws.transaction() as outer:
        first = ws.write_bytes("evidence/b.json", b"{}\n", event="b.written", actor="alice")
        with other.transaction() as inner:
            assert inner is outer
            second = other.append_event("b.checked", actor="alice")
        assert second.seq == first.seq + 1 and second.prev == first.digest
        assert "evidence/b.json" in other.read_manifest().files
        assert not (ws.root / "evidence/b.json").exists()  # visible at the end of the block
    assert ws.read_manifest().ledger.head == second.digest
    _ok(ws)


def test_a_write_killed_after_its_commit_point_is_completed_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(tmp_path)
    with monkeypatch.context() as m:
        _kill_in(m, journal, "write_lines")  # files moved, ledger not appended
        with pytest.raises(Killed):
            ws.write_bytes("evidence/b.json", b'{"b":2}\n', event="b.written", actor="alice")
    assert journal.has_intent(ws.root)
    assert [f.code for f in journal.pending_findings(ws.root)] == ["interrupted"]
    assert not verify_workspace(ws.root).ok  # the file is there, the ledger not yet
    ws.append_event("next.command", actor="bob")
    entries = ws.ledger.entries()
    assert [e.kind for e in entries[-3:]] == ["b.written", "workspace.recovered", "next.command"]
    recovered = entries[-2].payload
    assert recovered["action"] == "completed"
    assert recovered["events"] == ["b.written"] and recovered["files"] == ["evidence/b.json"]
    assert (ws.root / "evidence/b.json").read_bytes() == b'{"b":2}\n'
    _ok(ws)


@pytest.mark.parametrize(
    ("name", "nth"),
    [("atomic_write_bytes", 2), ("fsync_dir", 1), ("fsync_dir", 2), ("tidy", 1)],
)
def test_a_kill_in_any_step_of_apply_is_completed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, nth: int
) -> None:
    module = journal
    ws = _ws(tmp_path)
    calls = {"n": 0}
    real = getattr(module, name)

    def second_call_dies(*a: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == nth:
            raise Killed
        return real(*a, **kw)

    with monkeypatch.context() as m:
        m.setattr(module, name, second_call_dies)
        with pytest.raises(Killed):
            ws.write_bytes("evidence/b.json", b"{}\n", event="b.written", actor="alice")
    ws.append_event("next.command", actor="bob")
    kinds = _kinds(ws)
    assert kinds.count("b.written") == 1
    assert kinds[-1] == "next.command"
    _ok(ws)


def test_a_write_killed_before_its_commit_point_is_rolled_back_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(tmp_path)
    before = snapshot(ws.root)
    with monkeypatch.context() as m:
        _kill_in(m, transaction.Transaction, "abort")  # a kill runs no clean-up
        _kill_in(m, transaction, "commit")
        with pytest.raises(Killed):
            ws.write_bytes("evidence/b.json", b"{}\n", event="b.written", actor="alice")
    staged = [p for p in (ws.root / JOURNAL_DIR).rglob("*") if p.is_file()]
    assert [p.name for p in staged] == ["0001-b.json"]
    assert verify_workspace(ws.root).ok  # nothing visible changed
    assert {k for k in snapshot(ws.root) if not k.startswith(JOURNAL_DIR)} == set(before)
    ws.append_event("next.command", actor="bob")
    last = ws.ledger.entries()[-2:]
    assert [e.kind for e in last] == ["workspace.recovered", "next.command"]
    assert last[0].payload["action"] == "rolled back"
    assert [n.split("/")[1] for n in last[0].payload["discarded"]] == ["0001-b.json"]
    assert not (ws.root / "evidence/b.json").exists()
    _ok(ws)


def test_a_torn_ledger_line_is_cut_and_recorded(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    with open(ws.root / "ledger.jsonl", "ab") as fh:
        fh.write(b'{"actor":"alice","dig')
    ws.append_event("next.command", actor="bob")
    last = ws.ledger.entries()[-2:]
    assert [e.kind for e in last] == ["ledger.recovered", "next.command"]
    assert last[0].payload == {"torn_bytes_removed": 21}
    _ok(ws)


def test_an_unanchored_entry_is_re_anchored_with_the_file_it_records(tmp_path: Path) -> None:
    """What an older finetrail left when killed between its ledger append and its manifest."""
    ws = _ws(tmp_path)
    data = b'{"b":1}\n'
    (ws.root / "evidence/b.json").write_bytes(data)
    from finetrail.governance.io import sha256_bytes

    ws.ledger.append(
        "b.written",
        actor="alice",
        payload={"path": "evidence/b.json", "sha256": sha256_bytes(data)},
    )
    codes = {f.code for f in verify_workspace(ws.root).errors}
    assert "unanchored" in codes
    ws.append_event("next.command", actor="bob")
    recovered = ws.ledger.entries()[-2]
    assert recovered.kind == "workspace.recovered"
    assert recovered.payload == {
        "action": "re-anchored",
        "entries": [recovered.seq - 1],
        "files": ["evidence/b.json"],
    }
    _ok(ws)


def test_a_truncated_ledger_is_refused_and_nothing_written(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    lines = (ws.root / "ledger.jsonl").read_bytes().splitlines(keepends=True)
    (ws.root / "ledger.jsonl").write_bytes(b"".join(lines[:-1]))
    before = snapshot(ws.root)
    with pytest.raises(InputError) as err:
        ws.append_event("next.command", actor="bob")
    assert err.value.what == (
        "the ledger does not hold the entry the manifest anchors; refusing to write"
    )
    assert err.value.path == str(ws.root / "ledger.jsonl")
    assert err.value.exit_code == 2
    assert snapshot(ws.root) == before


def test_recovery_refuses_a_ledger_changed_after_the_intent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(tmp_path)
    with monkeypatch.context() as m:
        _kill_in(m, journal, "write_lines")
        with pytest.raises(Killed):
            ws.append_event("b.event", actor="alice")
    with open(ws.root / "ledger.jsonl", "ab") as fh:
        fh.write(b'{"forged":true}\n')
    with pytest.raises(InputError) as err:
        ws.append_event("next.command", actor="bob")
    assert err.value.what == "cannot complete an interrupted write"
    assert err.value.why == "the ledger was changed after the interrupted write began"
    assert journal.has_intent(ws.root)  # kept for whoever investigates


def test_leftover_temp_files_are_removed_and_recorded(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    (ws.root / ".manifest.json.k2j4.tmp").write_bytes(b"{")
    (ws.root / "evidence" / ".c.json.x1.tmp").write_bytes(b"{")
    ws.append_event("next.command", actor="bob")
    recovered = ws.ledger.entries()[-2]
    assert recovered.payload == {
        "action": "removed leftovers",
        "files": [".manifest.json.k2j4.tmp", "evidence/.c.json.x1.tmp"],
    }
    assert not (ws.root / ".manifest.json.k2j4.tmp").exists()
    _ok(ws)


def test_an_init_killed_after_its_commit_point_is_completed_by_the_next_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    with monkeypatch.context() as m:
        _kill_in(m, journal, "write_lines")
        with pytest.raises(Killed):
            Workspace.init(root, model="m", version="1", owner="alice")
    assert journal.has_intent(root)
    ws = Workspace.open(root)  # completes it
    assert _kinds(ws) == ["workspace.created", "workspace.recovered"]
    with pytest.raises(InputError, match="a workspace already exists here"):
        Workspace.init(root, model="m", version="1", owner="alice")
    ws.append_event("next.command", actor="bob")
    report = verify_workspace(root)
    assert report.ok, report.render()


def test_an_init_killed_before_its_commit_point_can_be_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    with monkeypatch.context() as m:
        _kill_in(m, transaction.Transaction, "abort")
        _kill_in(m, transaction, "commit")
        with pytest.raises(Killed):
            Workspace.init(root, model="m", version="1", owner="alice")
    ws = Workspace.init(root, model="m", version="1", owner="alice")
    assert _kinds(ws) == ["workspace.created"]
    _ok(ws)


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda r: (r / "evidence" / "b.json").mkdir(), "expected a file, found a directory"),
        (
            lambda r: (r / "evidence" / "sub").write_text("x"),
            "a file is in the way of a folder the write needs",
        ),
    ],
)
def test_something_in_the_way_is_refused_before_any_change(
    tmp_path: Path, make: Callable[[Path], object], what: str
) -> None:
    ws = _ws(tmp_path)
    make(ws.root)
    before = snapshot(ws.root)
    rel = "evidence/b.json" if "directory" in what else "evidence/sub/b.json"
    with pytest.raises(InputError) as err:
        ws.write_bytes(rel, b"{}\n", event="b.written", actor="alice")
    assert err.value.what == what
    assert snapshot(ws.root) == before


def test_an_artifact_folder_with_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    src = tmp_path / "adapter"
    src.mkdir()
    (src / "weights.bin").write_bytes(os.urandom(16))
    (src / "loop").symlink_to("loop")
    before = snapshot(ws.root)
    with pytest.raises(InputError) as err:
        ws.add_artifact(src, "artifacts/adapter", actor="alice")
    assert err.value.what == "a symlink loop or dangling link in the artifact"
    assert err.value.path == str(src / "loop")
    assert snapshot(ws.root) == before


def test_the_ledger_chain_stays_intact_across_repairs(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    with open(ws.root / "ledger.jsonl", "ab") as fh:
        fh.write(b"{")
    (ws.root / ".manifest.json.zz.tmp").write_bytes(b"")
    ws.append_event("next.command", actor="bob")
    scan = scan_ledger(ws.root / "ledger.jsonl")
    assert scan.findings == []
    assert [e.kind for e in scan.entries][-3:] == [
        "ledger.recovered",
        "workspace.recovered",
        "next.command",
    ]


def test_a_root_file_lands_with_its_event_and_stays_out_of_the_manifest(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    from finetrail.governance.io import sha256_bytes
    from finetrail.governance.review.keyring import KEYRING_EVENT, add_trusted_key
    from tests.support.workspaces import make_key

    _, public = make_key(tmp_path / "keys", "bob")
    add_trusted_key(tmp_path / "kr.json", name="bob", public_key_file=str(public), roles=["x"])
    data = (tmp_path / "kr.json").read_bytes()
    payload = {"keyring_sha256": sha256_bytes(data), "added": "bob"}
    entry = ws.write_root_file(
        "keyring.json", data, event=KEYRING_EVENT, actor="alice", payload=payload
    )
    assert entry.payload == payload
    assert (ws.root / "keyring.json").read_bytes() == data
    assert "keyring.json" not in ws.read_manifest().files
    for bad in ("manifest.json", "ledger.jsonl", ".finetrail.lock", "evidence/x.json", "",
                "contacts.json"):  # fmt: skip
        with pytest.raises(InputError, match="invalid workspace root file"):
            ws.write_root_file(bad, b"", event="x.y", actor="alice", payload={})
    _ok(ws)
