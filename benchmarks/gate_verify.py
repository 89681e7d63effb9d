"""Cold wall time of `finetrail gate` and `finetrail verify` on a workspace with 10,000 ledger entries.

Each round runs, in one interleaved sequence, a bare `python -c pass`, `finetrail verify WS` and
`finetrail gate WS --policy P` (recording and signing its decision), each as a fresh process, and
records the wall time of each. Printed: the median wall time of each command, and the median of the
per-round ratios to the bare interpreter start, measured side by side. Target: gate and verify under
half a second each.

The workspace: `finetrail init`, two trusted reviewers and their signed approvals, a signed gate
decision, and notes up to 10,000 ledger entries. The policy reads the kinds every finetrail has
(`workspace`, `reviews`, `gate`), so the benchmark runs before and after the other layers' record
classes are registered; reading more kinds adds a few small JSON files.

    python benchmarks/gate_verify.py            # 15 rounds
    python benchmarks/gate_verify.py --quick    # 3 rounds
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from unittest import mock

POLICY = textwrap.dedent("""\
    id: bench
    version: "1"
    title: benchmark policy
    written_against: {eu_ai_act: "Regulation (EU) 2024/1689"}
    approvals:
      count: 2
      roles: [model-risk, privacy]
      controls: {eu_ai_act: ["Art. 14(4)(a)"]}
      rationale: two people sign the exact files
    rules:
      - id: purpose
        title: intended purpose stated
        path: workspace.intended_purpose
        op: nonempty
        severity: error
        controls: {eu_ai_act: ["Annex IV 1(a)"]}
        rationale: everything is judged against the purpose
      - id: approvals-count
        title: two approvals
        path: reviews.approvals
        op: ">="
        threshold: 2
        severity: error
        controls: {nist_ai_rmf: ["GOVERN 2.1"]}
        rationale: four eyes see more than two
      - id: previous-gates
        title: earlier gate decisions passed
        path: gate[*].passed
        op: "=="
        threshold: true
        severity: warning
        controls: {iso_iec_42001: ["A.6.2.5"]}
        rationale: a release follows passing gates
""")


def build(root: Path, entries: int) -> tuple[Path, Path]:
    from finetrail.governance import keys as ed25519
    from finetrail.governance.gate.api import run_gate
    from finetrail.governance.review import record_review, trust_in_workspace
    from finetrail.governance.workspace import Workspace

    keys = root.parent / "keys"
    keys.mkdir()
    with mock.patch("os.fsync"):  # setup speed only; the measured commands fsync as usual
        ws = Workspace.init(
            root,
            model="support-assistant",
            version="1.0.0",
            owner="alice",
            intended_purpose="answer support questions",
            provider="Example Org",
        )
        for name, role in (("bob", "model-risk"), ("carol", "privacy"), ("ci-gate", "gate")):
            key = ed25519.generate_key()
            (keys / f"{name}.key").write_bytes(ed25519.private_pem(key))
            (keys / f"{name}.pub").write_bytes(ed25519.public_pem(key.public_key()))
            trust_in_workspace(
                root,
                name=name,
                public_key_file=str(keys / f"{name}.pub"),
                roles=(role,),
                actor="alice",
            )
        ws.write_bytes(
            "artifacts/adapter.safetensors", os.urandom(4096), event="artifact.added", actor="alice"
        )
        policy = root.parent / "bench-policy.yaml"
        policy.write_text(POLICY)
        for name, role in (("bob", "model-risk"), ("carol", "privacy")):
            record_review(
                root,
                decision="approve",
                reviewer=name,
                role=role,
                key_file=keys / f"{name}.key",
                note="ok",
            )
        run_gate(workspace=root, policy=policy, signing_key=str(keys / "ci-gate.key"))
        n = len(ws.ledger.entries())
        for i in range(entries - n):
            ws.append_event(
                "note.added", actor="alice", payload={"i": i, "text": "observation " * 4}
            )
    assert len(ws.ledger.entries()) == entries
    return policy, keys / "ci-gate.key"


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+system) of one run of ``cmd`` as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def compile_bytecode() -> str:
    """Compile finetrail's modules to bytecode, as ``pip install`` does for a wheel.

    An editable install writes ``__pycache__`` on first import, unless ``PYTHONDONTWRITEBYTECODE``
    is set (it is on some CI machines); then every run would compile the sources again and the
    timing would measure the compiler. Returns what was done, for the printout.
    """
    import compileall
    import importlib

    dirs = []
    for name in ("finetrail", "finetrail.governance", "finetrail.reports", "finetrail.training"):
        mod = importlib.import_module(name)
        dirs.append(Path(mod.__file__ or "").parent)
    ok = all(compileall.compile_dir(str(d), quiet=1) for d in dirs)
    env = "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "unset"
    return f"compiled finetrail's {len(dirs)} package folders ({'ok' if ok else 'FAILED'}); PYTHONDONTWRITEBYTECODE {env}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds instead of 15")
    ap.add_argument("--entries", type=int, default=10_000)
    args = ap.parse_args()
    rounds = 3 if args.quick else 15
    exe = shutil.which("finetrail", path=str(Path(sys.executable).parent))
    base = [exe] if exe else [sys.executable, "-m", "finetrail"]
    tmp = Path(tempfile.mkdtemp(prefix="finetrail-bench-"))
    try:
        t0 = time.perf_counter()
        root = tmp / "ws"
        policy, key = build(root, args.entries)
        print(
            f"built a workspace with {args.entries} ledger entries in {time.perf_counter() - t0:.1f} s"
        )
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "finetrail verify": [*base, "verify", str(root)],
            "finetrail gate": [
                *base,
                "gate",
                str(root),
                "--policy",
                str(policy),
                "--signing-key",
                str(key),
                "--require-approvals",
            ],
        }
        print(f"bytecode: {compile_bytecode()}")
        for cmd in commands.values():  # warm the page cache once; every timed run is a new process
            timed(cmd)
        wall: dict[str, list[float]] = {k: [] for k in commands}
        cpu: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(rounds):
            for name, cmd in commands.items():
                w, c = timed(cmd)
                wall[name].append(w)
                cpu[name].append(c)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, load average {load:.2f}"
        )
        print(f"{rounds} interleaved rounds; each command a fresh process (cold interpreter start)")
        print(
            f"{'command':18} {'wall median s':>14} {'wall min s':>11} {'CPU median s':>13} "
            f"{'wall ratio to python -c pass':>30}"
        )
        bare = wall["python -c pass"]
        for name, ts in wall.items():
            ratio = statistics.median(t / b for t, b in zip(ts, bare, strict=True))
            print(
                f"{name:18} {statistics.median(ts):14.3f} {min(ts):11.3f} "
                f"{statistics.median(cpu[name]):13.3f} {ratio:30.2f}"
            )
        print(
            "(ratio: median over rounds of each run's wall time divided by the same round's bare start)"
        )
        for name in ("finetrail verify", "finetrail gate"):
            med = statistics.median(wall[name])
            print(f"target < 0.5 s: {name}: {'met' if med < 0.5 else 'NOT met'} ({med:.3f} s wall)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
