"""Cold wall time and peak RSS of `finetrail gate` and `finetrail verify` on the demo's own workspaces.

The workspaces are those `finetrail demo` writes (the control and the DP release, each with the
MLflow store training created, so the registry is configured: the training evidence names a
registered model version); `--demo DIR` names an earlier demo output, else the benchmark runs
`finetrail demo --quick` first (needs the train extras; a few minutes). Each is copied to a
scratch folder; the gate is told the copy's own store (`--tracking-uri`) so it plans the registry
step as it would on the original.

Each round runs, in one interleaved sequence, a bare `python -c pass`, then for each workspace
`finetrail verify WS --trust T` and `finetrail gate WS --policy eu-ai-act-high-risk --trust T
--signing-key K` (recording and signing its decision), each as a fresh process. Printed per
command: the median and minimum wall time, the median CPU time, the peak RSS (``wait4``'s
``ru_maxrss`` of that child) and the median of the per-round ratios to the bare interpreter start,
and which heavy modules (torch, transformers, mlflow, presidio, ...) the gate imports. Target: gate
and verify under half a second each, no heavy import. `--entries N` adds a synthetic workspace
with N ledger entries (two trusted reviewers, their approvals, a signed gate decision, notes).

    python benchmarks/gate_verify.py --demo demo-out     # 15 rounds on an existing demo
    python benchmarks/gate_verify.py --quick             # runs `finetrail demo --quick`; 3 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds user+system, peak RSS MiB) of one run of ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # a gate may fail its policy; bad input may not happen
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err.decode()[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


HEAVY = ("torch", "transformers", "mlflow", "presidio_analyzer", "presidio_anonymizer", "peft")


def heavy_imports(argv: list[str]) -> list[str]:
    """The heavy modules a finetrail command imports (run in-process in a fresh interpreter)."""
    script = (
        "import json, sys\nfrom finetrail.cli import main\n"
        f"main({argv!r})\n"
        f"print('HEAVY' + json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("HEAVY")), None)
    if line is None:
        raise SystemExit(f"could not run {argv}: {proc.stderr[-2000:]}")
    return list(json.loads(line.removeprefix("HEAVY")))


def demo_workspaces(demo: Path, scratch: Path) -> list[tuple[str, Path, Path, Path]]:
    """(label, copied workspace, trust file, gate key) for each release of a demo output."""
    trust, key = demo / "trust.yaml", demo / "keys" / "ci.key"
    found = sorted(p.parent for p in (demo / "dossiers").glob("*/*/workspace.json"))
    if not found or not trust.is_file() or not key.is_file():
        raise SystemExit(
            f"{demo}: no demo output (dossiers/*/*/workspace.json, trust.yaml, keys/ci.key)"
        )
    out = []
    for ws in found:
        copy = scratch / ws.name
        shutil.copytree(ws, copy, symlinks=True)
        training = json.loads((copy / "evidence/training.json").read_text())
        model = (training.get("mlflow") or {}).get("registered_model")
        if not model:
            raise SystemExit(f"{ws}: the training evidence names no registered model")
        out.append((ws.name, copy, trust, key))
    return out


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
    ap.add_argument("--demo", type=Path, default=None, help="an earlier `finetrail demo` output")
    ap.add_argument("--entries", type=int, default=0, help="also a synthetic N-entry workspace")
    args = ap.parse_args()
    rounds = 3 if args.quick else 15
    exe = shutil.which("finetrail", path=str(Path(sys.executable).parent))
    base = [exe] if exe else [sys.executable, "-m", "finetrail"]
    tmp = Path(tempfile.mkdtemp(prefix="finetrail-bench-"))
    try:
        demo = args.demo
        if demo is None:
            demo = tmp / "demo"
            t0 = time.perf_counter()
            subprocess.run(
                [*base, "demo", "--quick", "--out", str(demo)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            print(f"ran `finetrail demo --quick` in {time.perf_counter() - t0:.0f} s")
        commands: dict[str, list[str]] = {"python -c pass": [sys.executable, "-c", "pass"]}
        gates: list[list[str]] = []
        for label, ws, trust, key in demo_workspaces(demo, tmp / "copies"):
            commands[f"verify {label}"] = [*base, "verify", str(ws), "--trust", str(trust)]
            gate = [
                "gate",
                str(ws),
                "--policy",
                "eu-ai-act-high-risk",
                "--trust",
                str(trust),
                "--signing-key",
                str(key),
                "--tracking-uri",
                f"sqlite:///{ws / 'mlflow.db'}",
            ]
            commands[f"gate {label}"] = [*base, *gate]
            gates.append(gate)
        if args.entries:
            root = tmp / "synthetic"
            policy, key = build(root, args.entries)
            commands[f"verify {args.entries} entries"] = [*base, "verify", str(root)]
            commands[f"gate {args.entries} entries"] = [
                *base,
                "gate",
                str(root),
                "--policy",
                str(policy),
                "--signing-key",
                str(key),
                "--require-approvals",
            ]
        print(f"bytecode: {compile_bytecode()}")
        heavy = {" ".join(g[:2]): heavy_imports(g) for g in gates}
        for cmd in commands.values():  # warm the page cache once; every timed run is a new process
            timed(cmd)
        wall: dict[str, list[float]] = {k: [] for k in commands}
        cpu: dict[str, list[float]] = {k: [] for k in commands}
        rss: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(rounds):
            for name, cmd in commands.items():
                w, c, r = timed(cmd)
                wall[name].append(w)
                cpu[name].append(c)
                rss[name].append(r)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, load average {load:.2f}"
        )
        print(f"{rounds} interleaved rounds; each command a fresh process (cold interpreter start)")
        width = max(len(k) for k in commands) + 1
        print(
            f"{'command':{width}} {'wall median s':>14} {'wall min s':>11} {'CPU median s':>13} "
            f"{'peak RSS MiB':>13} {'wall ratio to python -c pass':>30}"
        )
        bare = wall["python -c pass"]
        for name, ts in wall.items():
            ratio = statistics.median(t / b for t, b in zip(ts, bare, strict=True))
            print(
                f"{name:{width}} {statistics.median(ts):14.3f} {min(ts):11.3f} "
                f"{statistics.median(cpu[name]):13.3f} {max(rss[name]):13.1f} {ratio:30.2f}"
            )
        print(
            "(ratio: median over rounds of each run's wall time divided by the same round's bare start)"
        )
        for name, found in heavy.items():
            print(f"heavy imports of `finetrail {name}`: {', '.join(found) or 'none'}")
        for name in commands:
            if name.startswith(("verify", "gate")):
                med = statistics.median(wall[name])
                print(
                    f"target < 0.5 s: {name}: {'met' if med < 0.5 else 'NOT met'} ({med:.3f} s wall)"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
