"""SIGKILL at every point of a workspace write: the next command repairs and records, none lost.

A driver process (``DRIVER``) opens a workspace and performs one writing operation. With
``--kill-at N`` it SIGKILLs itself just before its N-th filesystem step (``os.replace``,
``os.write``, ``os.fsync``, ``os.ftruncate``, ``os.unlink``, ``os.rmdir``, ``os.open`` of a
file for writing, ``shutil.copyfile``), so every boundary of the write is hit; ``--loop`` writes
until the test kills it after a random delay. After each kill:

- without a pending write intent, ``verify`` is OK as it is (an uncommitted write is invisible);
  with one, the state is the documented "interrupted after the commit point";
- the next write succeeds, the ledger before the kill is a byte prefix of the ledger after it,
  the killed operation's events are all there (then ``workspace.recovered`` ``completed``) or
  none, and ``verify`` is OK.

The fast tests run about 20 kills; ``-m slow`` runs the rest (more than 100 in all, the CLI's
``review comment`` and ``gate`` among them). ``python -m pytest tests/governance/test_kill.py -m
slow -s`` prints the tallies.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from finetrail.governance import journal
from finetrail.governance.io import canonical_json
from finetrail.governance.ledger import scan_ledger
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]

DRIVER = r"""
import os, shutil, signal, sys

ARGS = sys.argv[1:]
ROOT, OP = ARGS[0], ARGS[1]
KILL_AT = int(ARGS[ARGS.index("--kill-at") + 1]) if "--kill-at" in ARGS else 0
REPEAT = int(ARGS[ARGS.index("--repeat") + 1]) if "--repeat" in ARGS else 1
LOOP = "--loop" in ARGS

from finetrail.governance.io import canonical_json
from finetrail.governance.workspace import Workspace

STEPS = [0]

def _counted(fn):
    def wrapper(*a, **kw):
        STEPS[0] += 1
        if STEPS[0] == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*a, **kw)
    return wrapper

def _open(path, flags, *a, **kw):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        return _counted_open(path, flags, *a, **kw)
    return _real_open(path, flags, *a, **kw)

def instrument():
    global _real_open, _counted_open
    for name in ("replace", "write", "fsync", "ftruncate", "unlink", "rmdir", "rename"):
        setattr(os, name, _counted(getattr(os, name)))
    _real_open = os.open
    _counted_open = _counted(os.open)
    os.open = _open
    shutil.copyfile = _counted(shutil.copyfile)

def next_note(ws):
    names = [r for r in ws.read_manifest().files if r.startswith("evidence/notes/")]
    return len([r for r in names if not r.endswith(".pair.json")]) + 1

def op_write(ws):
    with ws.transaction():
        n = next_note(ws)  # chosen under the lock
        data = canonical_json({"n": n, "pad": "x" * (n % 50)})
        ws.write_bytes(f"evidence/notes/{n:04d}.json", data, event="note.written", actor="driver")

def op_pair(ws):
    # like the gate: a numbered record and its companion, and an event, all or nothing
    with ws.transaction():
        n = next_note(ws)
        ws.write_bytes(f"evidence/notes/{n:04d}.json", canonical_json({"n": n}),
                       event="note.written", actor="driver")
        ws.write_bytes(f"evidence/notes/{n:04d}.pair.json", canonical_json({"of": n}),
                       event="note.paired", actor="driver")
        ws.append_event("note.done", actor="driver", payload={"n": n})

def op_event(ws):
    ws.append_event("note.event", actor="driver", payload={"pid": os.getpid()})

def op_artifact(ws):
    src = os.path.join(ROOT + ".src", str(os.getpid()))
    os.makedirs(src, exist_ok=True)
    for i in range(3):
        with open(os.path.join(src, f"part{i}.bin"), "wb") as fh:
            fh.write(os.urandom(64))
    with ws.transaction():
        n = len([r for r in ws.read_manifest().files if r.startswith("artifacts/run")]) // 3 + 1
        ws.add_artifact(src, f"artifacts/run{n:04d}", actor="driver")

def op_gate(ws):
    # the gate as one transaction: its decision number, evaluation and both files under the lock
    from finetrail.governance.gate.api import run_gate
    with ws.transaction():
        run_gate(workspace=ws.root, policy="development", registry_update=False, actor="driver")

def op_comment(ws):
    # a review as one transaction: its checks (verify, four-eyes) and its event under the lock
    from finetrail.governance.review.assess import record_review
    with ws.transaction():
        record_review(ws.root, decision="comment", reviewer="bob", role="model-risk",
                      key_file=os.environ["FINETRAIL_TEST_KEY"], note=f"by {os.getpid()}")

OPS = {"write": op_write, "pair": op_pair, "event": op_event, "artifact": op_artifact,
       "gate": op_gate, "comment": op_comment}

ws = Workspace.open(ROOT)
if OP == "gate":
    import finetrail.governance.gate.api  # imported before the steps are counted
if OP == "comment":
    import finetrail.governance.review.assess
instrument()
print("ready", flush=True)
i = 0
while LOOP or i < REPEAT:
    OPS[OP](ws)
    i += 1
print(f"steps {STEPS[0]}", flush=True)
"""

# the ledger events one operation appends (in order), without recovery events
OP_EVENTS = {
    "write": ["note.written"],
    "pair": ["note.written", "note.paired", "note.done"],
    "event": ["note.event"],
    "artifact": ["artifact.added"] * 3,
    "gate": ["gate.decided", "gate.attested"],
    "comment": ["review.comment"],
}
REPAIRS = {"workspace.recovered", "ledger.recovered"}


def driver_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["FINETRAIL_FIXED_TIME"] = "2026-01-15T12:00:00+00:00"
    return env


def driver_cmd(tmp: Path, root: Path, op: str, *extra: str) -> list[str]:
    script = tmp / "driver.py"
    if not script.exists():
        script.write_text(DRIVER)
    return [sys.executable, str(script), str(root), op, *extra]


def run_driver(tmp: Path, root: Path, op: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        driver_cmd(tmp, root, op, *extra),
        capture_output=True,
        text=True,
        env=driver_env(),
        timeout=120,
    )


def count_steps(tmp: Path, root: Path, op: str) -> int:
    done = run_driver(tmp, root, op)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split("steps ")[1])


def new_workspace(root: Path) -> Workspace:
    ws = Workspace.init(root, model="m", version="1", owner="alice")
    ws.write_bytes("evidence/notes/0001.json", canonical_json({"n": 1}), event="note.written",
                   actor="alice")  # fmt: skip
    return ws


@dataclass
class Tally:
    kills: int = 0
    states: Counter[str] = field(default_factory=Counter)  # what each kill left
    outcomes: Counter[str] = field(default_factory=Counter)  # completed / rolled back / none

    def line(self) -> str:
        return f"{self.kills} kills; left: {dict(self.states)}; killed write: {dict(self.outcomes)}"


def state_after_kill(root: Path) -> str:
    """What a kill left, checked against the documented recoverable states."""
    report = verify_workspace(root)  # must not raise, whatever the kill left
    if journal.has_intent(root):
        return "intent pending"  # documented: the next write completes it
    errors = [f.render() for f in report.findings if f.severity == "error"]
    assert errors == [], f"a kill without a pending intent left errors: {errors}"
    return "staged, uncommitted" if journal.uncommitted(root) else "clean"


def check_next_write(root: Path, before: bytes, op: str, next_op: str, tally: Tally) -> None:
    """Run the next command, then check prefix, all-or-nothing and verify."""
    ws = Workspace.open(root)
    n_before = len(scan_ledger(root / "ledger.jsonl").entries) if before else 0
    entry = ws.append_event("next.command", actor="next", payload={"after": op, "next": next_op})
    after = (root / "ledger.jsonl").read_bytes()
    assert after.startswith(before), "an entry written before the kill was lost or changed"
    entries = scan_ledger(root / "ledger.jsonl").entries
    new = entries[n_before:]
    assert new[-1].digest == entry.digest
    kinds = [e.kind for e in new[:-1] if e.kind not in REPAIRS]
    per_op = OP_EVENTS[op]
    # whole operations only (a loop may have finished several before the kill)
    assert len(kinds) % len(per_op) == 0 and kinds == per_op * (len(kinds) // len(per_op)), kinds
    repairs = [e for e in new if e.kind in REPAIRS]
    actions = [str(e.payload.get("action", "torn line cut")) for e in repairs]
    tally.outcomes[actions[-1] if actions else "nothing to repair"] += 1
    report = verify_workspace(root)
    assert report.ok, report.render()
    assert not (root / journal.JOURNAL_DIR).exists(), "the journal was not cleared"


def kill_at_every_step(tmp: Path, op: str, *, rounds: int, seed: int) -> Tally:
    """Kill ``op`` just before step N, N drawn over all its steps; ``rounds`` kills."""
    rnd = random.Random(seed)
    root = tmp / f"ws-{op}"
    new_workspace(root)
    steps = count_steps(tmp, root, op)
    points = list(range(1, steps + 1))
    rnd.shuffle(points)
    # every step once while there are rounds for it, then random ones
    plan = (points * (rounds // len(points) + 1))[:rounds]
    tally = Tally()
    for at in plan:
        before = (root / "ledger.jsonl").read_bytes()
        done = run_driver(tmp, root, op, "--kill-at", str(at))
        assert done.returncode == -signal.SIGKILL, (at, done.returncode, done.stderr[-2000:])
        tally.kills += 1
        tally.states[state_after_kill(root)] += 1
        check_next_write(root, before, op, "append_event", tally)
    return tally


def kill_after_delay(tmp: Path, op: str, *, rounds: int, seed: int, span: float) -> Tally:
    """Kill a driver writing ``op`` in a loop after a random delay in [0, span) s."""
    rnd = random.Random(seed)
    root = tmp / f"ws-loop-{op}"
    new_workspace(root)
    tally = Tally()
    for _ in range(rounds):
        before = (root / "ledger.jsonl").read_bytes()
        proc = subprocess.Popen(
            driver_cmd(tmp, root, op, "--loop"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=driver_env(),
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        time.sleep(rnd.random() * span)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        tally.kills += 1
        tally.states[state_after_kill(root)] += 1
        check_next_write(root, before, op, "append_event", tally)
    return tally


# -- the fast subset (about 20 kills) --------------------------------------------------------------
@pytest.mark.parametrize(("op", "rounds"), [("write", 8), ("pair", 8), ("event", 4)])
def test_kill_at_random_steps_of_a_write(tmp_path: Path, op: str, rounds: int) -> None:
    tally = kill_at_every_step(tmp_path, op, rounds=rounds, seed=sum(map(ord, op)))
    print(op, tally.line())
    assert tally.kills == rounds


# -- the full run (marked slow) --------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("op", "rounds"), [("write", 30), ("pair", 40), ("event", 15), ("artifact", 25), ("gate", 25)]
)
def test_kill_at_every_step_of_each_operation(tmp_path: Path, op: str, rounds: int) -> None:
    """Every step of each operation is hit at least once (rounds >= its steps)."""
    steps = count_steps(tmp_path, new_workspace(tmp_path / "probe").root, op)
    tally = kill_at_every_step(tmp_path, op, rounds=max(rounds, steps), seed=7)
    print(f"{op} ({steps} steps):", tally.line())
    assert tally.kills >= steps


@pytest.mark.slow
@pytest.mark.parametrize("op", ["write", "pair", "artifact"])
def test_kill_a_writing_loop_after_a_random_delay(tmp_path: Path, op: str) -> None:
    tally = kill_after_delay(tmp_path, op, rounds=15, seed=11, span=0.3)
    print(f"{op} loop:", tally.line())


# -- the CLI ---------------------------------------------------------------------------------------
def _reviewer(tmp: Path, root: Path) -> Path:
    from tests.support.workspaces import add_reviewers

    keys = add_reviewers(root, tmp / "keys", {"bob": ("model-risk",)})
    return keys["bob"]


@pytest.mark.slow
def test_kill_the_review_command_after_a_random_delay(tmp_path: Path) -> None:
    """``finetrail review comment`` killed 25 times during start-up, signing or writing."""
    rnd = random.Random(5)
    root = tmp_path / "ws"
    new_workspace(root)
    key = _reviewer(tmp_path, root)
    cmd = [
        sys.executable,
        "-m",
        "finetrail",
        "review",
        "comment",
        str(root),
        "--reviewer",
        "bob",
        "--role",
        "model-risk",
        "--key",
        str(key),
        "--note",
        "looked at it",
    ]
    t0 = time.monotonic()
    assert subprocess.run(cmd, env=driver_env(), capture_output=True).returncode == 0
    span = time.monotonic() - t0
    tally = Tally()
    for _ in range(25):
        before = (root / "ledger.jsonl").read_bytes()
        n_before = len(scan_ledger(root / "ledger.jsonl").entries)
        proc = subprocess.Popen(
            cmd, env=driver_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(span * (0.6 + 0.5 * rnd.random()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        tally.kills += 1
        tally.states[state_after_kill(root)] += 1
        done = subprocess.run(cmd, env=driver_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        after = (root / "ledger.jsonl").read_bytes()
        assert after.startswith(before)
        kinds = [e.kind for e in scan_ledger(root / "ledger.jsonl").entries[n_before:]]
        reviews = [k for k in kinds if k not in REPAIRS]
        assert reviews in (["review.comment"], ["review.comment"] * 2), kinds
        tally.outcomes["killed one landed" if len(reviews) == 2 else "killed one absent"] += 1
        report = verify_workspace(root)
        assert report.ok, report.render()
    print("review comment:", tally.line())


def test_a_kill_leaves_no_stray_files_in_tracked_folders(tmp_path: Path) -> None:
    """Staging lives in the hidden journal folder, never beside evidence."""
    root = tmp_path / "ws"
    new_workspace(root)
    steps = count_steps(tmp_path, root, "write")
    done = run_driver(tmp_path, root, "write", "--kill-at", str(steps // 3 or 1))
    assert done.returncode == -signal.SIGKILL
    hidden = [p for p in (root / "evidence").rglob(".*")]
    assert hidden == []
    assert json.loads((root / "manifest.json").read_text())["record_type"] == "manifest"


def _cli_kills(
    tmp: Path, root: Path, make_cmd: Callable[[int], list[str]], rounds: int, seed: int
) -> tuple[Tally, list[str]]:
    """Kill ``make_cmd(i)`` after a random share of its run time; run ``make_cmd`` again; tally
    what each kill left and the problems ``verify`` still reports after the next command."""
    rnd = random.Random(seed)
    t0 = time.monotonic()
    first = subprocess.run(make_cmd(0), env=driver_env(), capture_output=True, text=True)
    assert first.returncode in (0, 1), first.stderr
    span = time.monotonic() - t0
    tally, problems = Tally(), []
    for i in range(1, rounds + 1):
        before = (root / "ledger.jsonl").read_bytes()
        proc = subprocess.Popen(
            make_cmd(2 * i - 1),
            env=driver_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(span * (0.5 + 0.6 * rnd.random()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        tally.kills += 1
        report = verify_workspace(root)
        pending = journal.has_intent(root)
        tally.states["intent pending" if pending else ("ok" if report.ok else "errors")] += 1
        done = subprocess.run(make_cmd(2 * i), env=driver_env(), capture_output=True, text=True)
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
        assert (root / "ledger.jsonl").read_bytes().startswith(before)
        report = verify_workspace(root)
        problems += [f.render() for f in report.errors]
        tally.outcomes["verify OK after the next command" if report.ok else "verify FAILED"] += 1
    return tally, problems


@pytest.mark.slow
def test_kill_data_register_after_a_random_delay(tmp_path: Path) -> None:
    """``finetrail data register`` killed 25 times; a kill between its two writes leaves leaf
    hashes without a record (verify warns ``orphan``), never an error."""
    root = tmp_path / "ws"
    new_workspace(root)

    def cmd(i: int) -> list[str]:
        data = tmp_path / f"d{i}.jsonl"
        data.write_bytes(canonical_json({"prompt": f"q{i}", "completion": "a"}) * 3)
        return [
            *(sys.executable, "-m", "finetrail", "data", "register", str(data)),
            *("-w", str(root), "--name", f"set{i}", "--source", "s", "--license", "MIT"),
            *("--collection", "c", "--legal-basis", "b", "--purpose", "p"),
        ]

    tally, problems = _cli_kills(tmp_path, root, cmd, rounds=25, seed=3)
    print("data register:", tally.line())
    assert problems == []


@pytest.mark.slow
def test_kill_the_gate_command_after_a_random_delay(tmp_path: Path) -> None:
    from tests.support.workspaces import build_workspace

    root = build_workspace(tmp_path / "ws").root

    def cmd(i: int) -> list[str]:
        return [
            *(sys.executable, "-m", "finetrail", "gate", str(root)),
            *("--policy", "development", "--no-registry"),
        ]

    tally, problems = _cli_kills(tmp_path, root, cmd, rounds=20, seed=9)
    print("gate:", tally.line(), f"problems: {sorted(set(problems))}")
    assert problems == []
