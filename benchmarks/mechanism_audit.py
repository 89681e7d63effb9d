"""The white-box mechanism audit: its cost side by side, the planted-bug table, the honest table.

1. **Cost.** Two identical DP engines (tiny Llama, 2 layers, width 64, sequence 64, LoRA r=8 on
   all linear layers, hooks; the setup of ``dp_overhead.py``) step on the same batch, alternating
   which goes first; one carries the audit. The table shows the median of the per-pair ratios,
   with the audit observing every step: its raw cost. In training it observes a step while its
   own time stays under 3% of the rest of the loop's (the honest table shows the share measured).
2. **Planted bugs.** Each bug of ``finetrail.training.mechanism_bugs`` at epsilon 1, 4 and 8,
   trained through finetrail's own loop (``run_loop``; its guards may stop a run early, the
   audit's record is written either way): is the audit's verdict ``rejected``?
3. **Honest runs.** The same runs without a bug over many seeds (the noise is drawn from the
   operating system's entropy, as in production): how many are falsely rejected? The noise test's
   family-wise false-alarm rate is 1e-3 (the clipping and normalisation checks are exact).

    python benchmarks/mechanism_audit.py           # 30 pairs, 20 honest seeds per epsilon
    python benchmarks/mechanism_audit.py --quick   # 10 pairs, 5 seeds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dp_overhead import SEQ, Setup, build_base

EPSILONS = (1.0, 4.0, 8.0)
DELTA = 1e-5
CLIP = 0.05
STEPS = 20
BATCH = 16


def _attach(setup: Any, settings: Any) -> Any:
    from finetrail.governance.evidence.mechanism import MechanismClaim
    from finetrail.training.mechanism_audit import MechanismAudit

    opt = setup.engine.optimizer
    claim = MechanismClaim(
        noise_multiplier=float(opt.noise_multiplier),
        max_grad_norm=float(opt.max_grad_norm),
        expected_batch_size=float(opt.expected_batch_size),
        delta=DELTA,
        source="benchmark: the optimizer's own values",
    )
    audit = MechanismAudit(
        optimizer=opt, claim=claim, mode=setup.mode, hooks=setup.engine.hooks, settings=settings
    )
    audit.attach()
    return audit


def cost_table(base: Path, *, pairs: int, warmup: int) -> list[str]:
    from finetrail.training.mechanism_audit import AuditSettings

    rows = [
        "| batch | audit observes | median ratio audited / plain step | plain step (ms) |"
        " steps observed |",
        "|---|---|---|---|---|",
    ]
    for batch in (16, 64):
        for label, settings in (("every step", AuditSettings(max_fraction=1e9)),):
            plain = Setup(base, kind="dp", mode="hooks", batch=batch)
            audited = Setup(base, kind="dp", mode="hooks", batch=batch)
            audit = _attach(audited, settings)
            for _ in range(warmup):
                plain.step()
                audited.step()
            ratios, t_plain = [], []
            for i in range(pairs):
                if i % 2:
                    a, b = audited.step(), plain.step()
                else:
                    b, a = plain.step(), audited.step()
                ratios.append(a / b)
                t_plain.append(b)
            audit.detach()
            observed = audit._observed
            rows.append(
                f"| {batch} | {label} | {statistics.median(ratios):.3f} | "
                f"{1000 * statistics.median(t_plain):.0f} | {observed} of {pairs + warmup} |"
            )
    return rows


def _run(base: Path, tmp: Path, *, sigma: float, bug: str | None) -> tuple[Any, str]:
    import torch
    from torch.utils.data import TensorDataset

    from finetrail.errors import FinetrailError
    from finetrail.training.config import parse_config
    from finetrail.training.data import read_jsonl_texts, tokenize
    from finetrail.training.engine import build_engine, plan_run
    from finetrail.training.loop import RunState, mechanism_claim, run_loop
    from finetrail.training.mechanism_bugs import plant
    from finetrail.training.model import build_model

    config = parse_config(
        {
            "base_model": {"path": str(base)},
            "method": {"name": "lora", "rank": 8, "alpha": 16, "target_modules": "all-linear"},
            "privacy": {
                "noise_multiplier": sigma,
                "delta": DELTA,
                "max_grad_norm": CLIP,
                "clipping": "hooks",
            },
            "data": {"train": str(base / "train.jsonl"), "max_length": SEQ, "unregistered": "flag"},
            "optim": {"batch_size": BATCH, "steps": STEPS, "learning_rate": 1e-3},
            "device": "cpu",
            "tracking": {"mlflow": False},
        },
        source="benchmark",
    )
    built = build_model(config, device=torch.device("cpu"), dp=True)
    _, texts = read_jsonl_texts(base / "train.jsonl", "text")
    ids, mask = tokenize(built.tokenizer, texts, SEQ)
    plan = plan_run(
        config,
        sampled_records=len(texts),
        private_records=len(texts),
        world_size=1,
        seq_len=ids.shape[1],
        model=built.model,
    )
    engine = build_engine(
        config, model=built.model, plan=plan, dataset=TensorDataset(ids, mask), distributed=False
    )
    if bug:
        plant(engine.optimizer, bug, mode=plan.clipping_mode, hooks=engine.hooks)
    state = RunState()
    stopped = ""
    try:
        run_loop(
            engine=engine,
            plan=plan,
            method=built.method,
            device=torch.device("cpu"),
            state=state,
            validation=None,
            eval_every=10**6,
            early_stopping=None,
            rank=0,
            dp=True,
            progress=False,
            mechanism=mechanism_claim(plan, max_grad_norm=CLIP, delta=DELTA),
        )
    except FinetrailError:
        stopped = f"a finetrail guard stopped the run after {state.step} step(s)"
    return state.mechanism, stopped


def _sigmas() -> dict[float, float]:
    from finetrail.training.accounting import calibrate_noise

    q = 1 / 32  # 512 records, batch 16
    return {
        e: calibrate_noise(target_epsilon=e, delta=DELTA, sample_rate=q, steps=STEPS)
        for e in EPSILONS
    }


def bug_table(base: Path, tmp: Path, sigmas: dict[float, float]) -> list[str]:
    from finetrail.training.mechanism_bugs import PLANTED_BUGS

    head = "| planted bug | " + " | ".join(f"epsilon {e:g}" for e in EPSILONS) + " |"
    rows = [head, "|---|" + "---|" * len(EPSILONS)]
    for bug, what in PLANTED_BUGS.items():
        cells = []
        for e in EPSILONS:
            record, stopped = _run(base, tmp, sigma=sigmas[e], bug=bug)
            failed = [
                name
                for name in ("noise", "clipping", "normalisation")
                if getattr(record, name) is not None and getattr(record, name).verdict == "rejected"
            ] + [r.split(":", 1)[0] for r in record.reasons if r.startswith("update:")]
            caught = "caught" if record.verdict == "rejected" else "**missed**"
            cells.append(f"{caught} ({', '.join(failed)}{'; ' + stopped if stopped else ''})")
        rows.append(f"| `{bug}`: {what} | " + " | ".join(cells) + " |")
    return rows


def honest_table(base: Path, tmp: Path, sigmas: dict[float, float], seeds: int) -> list[str]:
    rows = [
        "| epsilon | sigma | runs | falsely rejected | noise variance ratio (min-max) | min p |"
        " bound (max) / ceiling / step epsilon | audit cost (median share of the loop) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in EPSILONS:
        ratios, ps, bounds, costs, rejected = [], [], [], [], 0
        last = None
        for _ in range(seeds):
            record, _stopped = _run(base, tmp, sigma=sigmas[e], bug=None)
            rejected += record.verdict != "verified"
            if record.noise and record.noise.variance_ratio is not None:
                ratios.append(record.noise.variance_ratio)
                ps.append(record.noise.p_value or 0.0)
            if record.cost and record.cost.fraction is not None:
                costs.append(record.cost.fraction)
            if record.bound:
                bounds.append(record.bound.epsilon_lower_bound)
                last = record.bound
        bound = (
            f"{max(bounds):.2f} / {last.ceiling:.2f} / {last.claimed_step_epsilon:.2f}"
            if last
            else "-"
        )
        rows.append(
            f"| {e:g} | {sigmas[e]:.3f} | {seeds} | {rejected} | {min(ratios):.3f}-"
            f"{max(ratios):.3f} | {min(ps):.3g} | {bound} | "
            f"{100 * statistics.median(costs):.1f}% |"
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    pairs, seeds = (10, 5) if args.quick else (30, 20)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = build_base(Path(tmp) / "base")
        sigmas = _sigmas()
        out = [
            "### Cost (CPU, one thread; median of interleaved pairs)",
            "",
            *cost_table(base, pairs=pairs, warmup=3),
            "",
            f"### Planted bugs ({STEPS} steps, batch {BATCH} of 512, C={CLIP}, delta {DELTA:g};"
            " through finetrail's loop)",
            "",
            *bug_table(base, Path(tmp), sigmas),
            "",
            f"### Honest runs (false-alarm rate of the noise test 1e-3; {seeds} seeds per"
            " epsilon, noise from the OS)",
            "",
            *honest_table(base, Path(tmp), sigmas, seeds),
            "",
            f"({time.perf_counter() - t0:.0f} s)",
        ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
