"""Concurrent writers on one workspace take turns: no entry lost, no file overwritten, chain intact.

Pairs of driver processes (the ``DRIVER`` of ``test_kill``) write to one workspace at the same
time; each numbered record is chosen under the workspace lock. After each pair: every operation's
events are in the ledger, each numbered file exists once with the digest the ledger recorded,
the chain has no finding and ``verify`` is OK. The fast run has 5 pairs and two threads; ``-m
slow`` runs 50 more pairs over every operation (the gate and a review each as one transaction
among them), 12 pairs of a review beside each writer, 10 pairs of ``finetrail gate`` and
``finetrail review comment`` pairs as shipped (expected to fail until ``review`` holds the
workspace lock across its checks and its write).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from finetrail.errors import WorkspaceBusy
from finetrail.governance.io import canonical_json
from finetrail.governance.ledger import scan_ledger
from finetrail.governance.locking import file_lock
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import LOCK_NAME, Workspace
from tests.governance.test_kill import OP_EVENTS, REPAIRS, driver_cmd, driver_env, new_workspace

OPS = ("write", "pair", "event", "artifact", "gate")


def run_pair(tmp: Path, root: Path, a: str, b: str, repeat: int) -> None:
    procs = [
        subprocess.Popen(
            driver_cmd(tmp, root, op, "--repeat", str(repeat)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=driver_env(),
        )
        for op in (a, b)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]


def check_none_lost(root: Path, expected: Counter[str]) -> None:
    scan = scan_ledger(root / "ledger.jsonl")
    assert scan.findings == [], scan.findings
    kinds = Counter(e.kind for e in scan.entries if e.kind not in REPAIRS)
    for kind, n in expected.items():
        assert kinds[kind] == n, (kind, kinds[kind], n)
    # each numbered note written once: one file per note.written event
    notes = sorted(p.name for p in (root / "evidence" / "notes").glob("[0-9][0-9][0-9][0-9].json"))
    assert len(notes) == kinds["note.written"], notes
    assert notes == [f"{i:04d}.json" for i in range(1, len(notes) + 1)]
    gates = sorted((root / "evidence" / "gate").glob("[0-9][0-9][0-9][0-9].json"))
    assert len(gates) == kinds["gate.decided"]
    report = verify_workspace(root)
    assert report.ok, report.render()


def test_pairs_of_writers_serialise(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    new_workspace(root)
    expected: Counter[str] = Counter({"note.written": 1})
    combos = [("write", "write"), ("pair", "pair"), ("write", "pair"), ("event", "write")]
    for a, b in [*combos, ("pair", "event")]:
        run_pair(tmp_path, root, a, b, repeat=2)
        for op in (a, b):
            expected.update({k: 2 * v for k, v in Counter(OP_EVENTS[op]).items()})
        check_none_lost(root, expected)


def test_threads_of_one_process_serialise(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws")
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        try:
            for _ in range(10):
                with ws.transaction():
                    n = len(ws.read_manifest().files) + 1
                    ws.write_bytes(
                        f"evidence/notes/{n:04d}.json",
                        canonical_json({"n": n, "by": tag}),
                        event="note.written",
                        actor=tag,
                    )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check_none_lost(ws.root, Counter({"note.written": 21}))


def test_a_held_lock_times_out_with_a_clear_message(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws")
    ws.lock_timeout = 0.2
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)",
            str(ws.root / LOCK_NAME),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = (ws.root / "ledger.jsonl").read_bytes()
        with pytest.raises(WorkspaceBusy) as err:
            ws.append_event("blocked.event", actor="alice")
        assert err.value.exit_code == 2
        text = err.value.diagnostics()
        assert text.startswith(f"error: {ws.root / LOCK_NAME}: the workspace is busy: another ")
        assert "more than 0.2 s" in text and "fix: wait for the other command" in text
        assert (ws.root / "ledger.jsonl").read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    ws.append_event("unblocked.event", actor="alice")  # a dead holder releases the lock


def test_the_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    got: list[str] = []
    with file_lock(lock), file_lock(lock):
        t = threading.Thread(target=lambda: _try(lock, got))
        t.start()
        t.join()
    assert got == ["busy"]
    _try(lock, got)
    assert got == ["busy", "taken"]


def _try(lock: Path, got: list[str]) -> None:
    try:
        with file_lock(lock, timeout=0.1):
            got.append("taken")
    except WorkspaceBusy:
        got.append("busy")


# -- the full run (marked slow) --------------------------------------------------------------------
@pytest.mark.slow
def test_fifty_pairs_of_every_operation(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    new_workspace(root)
    pairs = [(a, b) for a in OPS for b in OPS]  # 25 combinations, twice
    expected: Counter[str] = Counter({"note.written": 1})
    for a, b in pairs * 2:
        run_pair(tmp_path, root, a, b, repeat=1)
        for op in (a, b):
            expected.update(OP_EVENTS[op])
        check_none_lost(root, expected)
    print(f"{len(pairs) * 2} pairs: none lost, {sum(expected.values())} events")


def _review_cmd(root: Path, key: Path, note: str) -> list[str]:
    return [
        *(sys.executable, "-m", "finetrail", "review", "comment", str(root)),
        *("--reviewer", "bob", "--role", "model-risk", "--key", str(key), "--note", note),
    ]


@pytest.mark.slow
def test_pairs_of_reviews_in_a_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A review wrapped in one transaction (the driver's ``comment``) beside every writer."""
    from tests.support.workspaces import add_reviewers

    root = tmp_path / "ws"
    new_workspace(root)
    key = add_reviewers(root, tmp_path / "keys", {"bob": ("model-risk",)})["bob"]
    monkeypatch.setenv("FINETRAIL_TEST_KEY", str(key))
    expected: Counter[str] = Counter({"note.written": 1})
    for other in (*OPS, "comment") * 2:
        run_pair(tmp_path, root, "comment", other, repeat=1)
        for op in ("comment", other):
            expected.update(OP_EVENTS[op])
        check_none_lost(root, expected)


@pytest.mark.slow
def test_pairs_of_review_commands_as_shipped(tmp_path: Path) -> None:
    from tests.support.workspaces import add_reviewers

    root = tmp_path / "ws"
    new_workspace(root)
    key = add_reviewers(root, tmp_path / "keys", {"bob": ("model-risk",)})["bob"]
    failed = 0
    for i in range(10):
        procs = [
            subprocess.Popen(
                _review_cmd(root, key, f"{i}-{j}"),
                env=driver_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for j in (0, 1)
        ]
        failed += sum(p.wait(timeout=120) != 0 for p in procs)
    print(f"review comment pairs as shipped: {failed} of 20 commands refused")
    report = verify_workspace(root)
    assert report.ok, report.render()
    assert failed == 0


@pytest.mark.slow
def test_pairs_of_gate_commands(tmp_path: Path) -> None:
    from tests.support.workspaces import build_workspace

    lost = 0
    trials = 10
    for t in range(trials):
        root = build_workspace(tmp_path / f"ws{t}").root
        cmd = [
            *(sys.executable, "-m", "finetrail", "gate", str(root)),
            *("--policy", "development", "--no-registry"),
        ]
        procs = [
            subprocess.Popen(cmd, env=driver_env(), stdout=subprocess.DEVNULL) for _ in range(2)
        ]
        for p in procs:
            p.wait(timeout=120)
        decided = [e for e in Workspace.open(root).ledger.entries() if e.kind == "gate.decided"]
        files = list((root / "evidence" / "gate").glob("[0-9][0-9][0-9][0-9].json"))
        lost += len(decided) != 2 or len(files) != 2
    print(f"gate pairs: a decision lost in {lost} of {trials}")
    assert lost == 0
