"""The trade-off table, measured: fine-tuning methods with and without DP on the demo's data.

For each method (full fine-tuning, LoRA r=8, IA3, prefix tuning) and each privacy setting (none,
DP at epsilon 0.5, 1 and 8; delta 1e-5, PRV accountant) this runs the demo's pipeline in a fresh
workspace, through the same ``finetrail`` commands ``finetrail demo`` runs (in-process):
``init``, ``data register``, ``canaries plant``, ``train``, ``probe`` (exposure, extraction,
one-run DP audit) and ``audit bias`` (for task F1), then reads the evidence JSON:

- trainable parameters, steps, wall seconds (``evidence/training.json``);
- epsilon (PRV) as stated by the run;
- memorised identifiers (extraction, attributed to the fine-tune), canary exposure (maximum and
  the mean of the 16x group), empirical epsilon lower bound (``evidence/probes/*.json``);
- task F1 on the credit task (``evidence/bias.json``), and its ratio to the same method's
  non-private run.

Step time relative to non-DP LoRA is measured twice: (1) from each run's wall time per step
(noisy on a shared machine, and DP runs use batch 64 against the control's 16), and (2) side by
side: one model per method x {no DP, DP} built through finetrail's training path
(``build_model`` + ``build_engine``), stepped in interleaved rounds on the same batch; the ratio
to the non-DP LoRA step of the same round, median over rounds.

Runs are resumable: a run whose workspace already holds complete evidence is not redone.

    python benchmarks/tradeoff_table.py                 # 16 runs (about 1-2 min each when calm)
    python benchmarks/tradeoff_table.py --quick         # LoRA and IA3 x none/eps 8, tiny sizes
    python benchmarks/tradeoff_table.py --methods lora,full --epsilons none,1 --out build/t
    python benchmarks/tradeoff_table.py --write-doc docs/tradeoff.md   # also fill the doc
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- tradeoff-table:start -->", "<!-- tradeoff-table:end -->"

METHODS: dict[str, dict[str, Any]] = {
    "full": {"name": "full"},
    "lora": {"name": "lora", "rank": 8, "alpha": 16, "target_modules": "all-linear"},
    "ia3": {"name": "ia3"},
    "prefix": {"name": "prefix", "num_virtual_tokens": 16},
}
LABELS = {
    "full": "full fine-tuning",
    "lora": "LoRA r=8 (all linear)",
    "ia3": "IA3 (peft default modules)",
    "prefix": "prefix tuning (16 virtual tokens)",
}
# learning rate (non-private, DP): LoRA's are the demo's; full fine-tuning is given a smaller one,
# IA3's scaling vectors and prefix tuning's virtual tokens larger ones (no search was run)
LR = {"full": (3e-3, 1e-3), "lora": (1e-2, 3e-3), "ia3": (3e-2, 1e-2), "prefix": (1e-2, 3e-3)}
RUN_ORDER = ("lora", "ia3", "prefix", "full")  # the reference first; full (slowest) last


def run_order(methods: list[str], epsilons: list[float | None]) -> list[tuple[str, Any]]:
    """Every method without DP first, then each epsilon across the methods (the smallest, then
    the largest, then the rest), non-DP LoRA and its smallest-epsilon twin leading: a partial
    table then still compares methods, and the reference is there first."""
    dp = sorted(e for e in epsilons if e is not None)
    dp = dp[:1] + dp[-1:] + dp[1:-1] if len(dp) > 1 else dp
    eps_order = ([None] if None in epsilons else []) + dp
    pairs = [(m, e) for e in eps_order for m in RUN_ORDER if m in methods]
    if ("lora", None) in pairs and dp and ("lora", dp[0]) in pairs:
        pairs.remove(("lora", dp[0]))
        pairs.insert(pairs.index(("lora", None)) + 1, ("lora", dp[0]))
    return pairs


TABLE_ORDER = ("full", "lora", "ia3", "prefix")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def eps_name(eps: float | None) -> str:
    return "none" if eps is None else f"eps{eps:g}"


# ---- one run -----------------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text("utf-8"))
    return data if isinstance(data, dict) else {}


EVIDENCE = (
    "training.json",
    "probes/exposure.json",
    "probes/extraction.json",
    "probes/dp_audit.json",
    "bias.json",
)


def complete(ws: Path) -> bool:
    ev = ws / "evidence"
    return all((ev / f).exists() for f in EVIDENCE) and bool(
        _read(ev / "training.json").get("completed")
    )


def prepare_shared(out: Path, sizes: Any, seed: int, run: Any) -> dict[str, Path]:
    """The synthetic data and the tiny base model, once for all runs (the demo's step 1)."""
    from finetrail.demo.pipeline import _must, _prepare_training_file

    data, base = out / "shared" / "data", out / "shared" / "base-model"
    if not (data / "task_eval.jsonl").exists():
        _must(
            run,
            [
                "synth",
                data,
                "--seed",
                seed,
                "--records",
                sizes.records,
                "--task-records",
                sizes.task_records,
                "--eval-records",
                sizes.eval_records,
                "--public-records",
                sizes.public_records,
                "--disparity",
                0.2,
            ],
        )
    if not (base / "config.json").exists():
        _must(run, ["base-model", "build", base, "--steps", sizes.base_steps, "--seed", seed])
    finetune, validation, heldout = _prepare_training_file(data)
    return {
        "data": data,
        "base": base,
        "finetune": finetune,
        "validation": validation,
        "heldout": heldout,
    }


def train_config(
    method: str, eps: float | None, paths: dict[str, Path], train: Path, sizes: Any, seed: int
) -> dict[str, Any]:
    lr_plain, lr_dp = LR[method]
    cfg: dict[str, Any] = {
        "base_model": {"path": str(paths["base"])},
        "method": METHODS[method],
        "data": {
            "train": str(train),
            "validation": str(paths["validation"]),
            "generic": str(paths["data"] / "generic.jsonl"),
            "generic_fraction": 0.05,
            "max_length": 96,
            "unregistered": "refuse",
        },
        "device": "cpu",
        "seed": seed,
        "tracking": {"mlflow": False},
    }
    if eps is None:
        cfg["privacy"] = "none"
        cfg["optim"] = {"batch_size": 16, "steps": sizes.control_steps, "learning_rate": lr_plain}
    else:
        cfg["privacy"] = {"target_epsilon": eps, "delta": 1e-5, "max_grad_norm": 1.0}
        cfg["optim"] = {
            "batch_size": sizes.dp_batch,
            "epochs": sizes.dp_epochs,
            "learning_rate": lr_dp,
        }
    return cfg


def one_run(
    ws: Path,
    method: str,
    eps: float | None,
    paths: dict[str, Path],
    sizes: Any,
    seed: int,
    run: Any,
) -> None:
    import yaml

    from finetrail.demo.pipeline import _must, _register_args, plant_canaries
    from finetrail.governance.io import atomic_write_text

    if ws.exists():
        shutil.rmtree(ws)  # an interrupted run starts again from a fresh workspace
    side = ws.parent / (ws.name + ".files")
    side.mkdir(parents=True, exist_ok=True)
    _must(
        run,
        [
            "init",
            ws,
            "--model",
            "tradeoff",
            "--version",
            ws.name,
            "--owner",
            "benchmark",
            "--purpose",
            "trade-off table: fine-tuning methods with and without DP",
        ],
    )
    for args in _register_args(ws, paths["data"], paths["finetune"], paths["validation"]):
        _must(run, [a for a in args if a != "--scan"])  # PII scans are not what is measured here
    augmented = plant_canaries(run, ws, paths["finetune"], side, sizes=sizes, seed=seed)
    config = side / "train.yaml"
    cfg = train_config(method, eps, paths, augmented, sizes, seed)
    atomic_write_text(config, yaml.safe_dump(cfg, sort_keys=False))
    _must(run, ["train", config, "--workspace", ws, "--no-progress"])
    _must(run, ["probe", ws, "--only", "exposure,extraction,dp-audit", "--no-progress"])
    _must(
        run,
        [
            "audit",
            "bias",
            ws,
            "--eval",
            paths["data"] / "task_eval.jsonl",
            "--sensitive",
            "gender,age_band",
            "--resamples",
            sizes.bias_resamples,
            "--seed",
            seed,
            "--no-counterfactual",
        ],
    )


def collect(ws: Path) -> dict[str, Any]:
    ev = ws / "evidence"
    tr, expo = _read(ev / "training.json"), _read(ev / "probes/exposure.json")
    extr, audit = _read(ev / "probes/extraction.json"), _read(ev / "probes/dp_audit.json")
    bias = _read(ev / "bias.json")
    dp, compute = tr.get("dp") or {}, tr.get("compute") or {}
    steps = dp.get("steps") or 0
    reps = expo.get("by_repetition") or {}
    top = max(reps, key=int) if reps else None
    return {
        "trainable": tr.get("trainable_parameters"),
        "steps": steps,
        "batch": dp.get("expected_batch_size"),
        "wall": compute.get("wall_seconds"),
        "s_per_step": (compute.get("wall_seconds") or 0) / steps if steps else None,
        "epsilon": dp.get("epsilon"),
        "noise": dp.get("noise_multiplier"),
        "clipping": dp.get("clipping_mode"),
        "val_loss": (tr.get("val_loss") or [None])[-1],
        "memorized": extr.get("memorized_identifiers"),
        "max_bits": expo.get("max_bits"),
        "top_rep": top,
        "top_rep_bits": (reps.get(top) or {}).get("mean_bits") if top else None,
        "emp_eps": audit.get("empirical_epsilon_lower_bound"),
        "verdict": audit.get("verdict"),
        "f1": (bias.get("task") or {}).get("f1"),
        "auc": (bias.get("task") or {}).get("auc"),
        "base_task": (bias.get("base") or {}).get("task") or {},
        "run_seconds": _read(ws.parent / (ws.name + ".files") / "took.json").get("seconds"),
        "accuracy": (bias.get("task") or {}).get("accuracy"),
    }


# ---- interleaved step timing -------------------------------------------------------------------


class Stepper:
    """One model with its optimisation (finetrail's own path), stepping on a fixed batch."""

    def __init__(
        self,
        base: Path,
        train: Path,
        method: str,
        dp: bool,
        batch: int,
        seq: int,
        ids: Any,
        mask: Any,
    ) -> None:
        import torch
        from torch.utils.data import TensorDataset

        from finetrail.training.config import parse_config
        from finetrail.training.engine import build_engine, plan_run
        from finetrail.training.model import build_model

        cfg = {
            "base_model": {"path": str(base)},
            "method": METHODS[method],
            "privacy": {"noise_multiplier": 1.0, "delta": 1e-5, "max_grad_norm": 1.0}
            if dp
            else "none",
            "data": {"train": str(train), "max_length": seq, "unregistered": "flag"},
            "optim": {"batch_size": batch, "steps": 10, "learning_rate": LR[method][int(dp)]},
            "device": "cpu",
            "tracking": {"mlflow": False},
        }
        config = parse_config(cfg, source="benchmark")
        self.method = method
        self.built = build_model(config, device=torch.device("cpu"), dp=dp)
        self.ids, self.mask = ids, mask
        n = batch * 8
        dataset = TensorDataset(ids.repeat(8, 1)[:n], mask.repeat(8, 1)[:n])
        plan = plan_run(
            config,
            sampled_records=n,
            private_records=n,
            world_size=1,
            seq_len=seq,
            model=self.built.model,
        )
        self.engine = build_engine(
            config, model=self.built.model, plan=plan, dataset=dataset, distributed=False
        )

    def step(self) -> float:
        from finetrail.training.dp_guards import model_inputs

        t0 = time.perf_counter()
        st = self.engine.stepper
        logits = self.engine.model(**model_inputs(self.ids, self.mask, self.method)).logits
        st.backward(st.loss(logits, self.ids, self.mask))
        st.step()
        return time.perf_counter() - t0


def step_times(
    paths: dict[str, Path], methods: list[str], batch: int, rounds: int, warmup: int
) -> dict[str, dict[str, float]]:
    """Median over interleaved rounds of (step time / non-DP LoRA step time in the same round)."""
    from finetrail.training.model import load_tokenizer

    tok, _ = load_tokenizer(paths["base"])
    texts = [
        json.loads(line)["text"]
        for line in paths["finetune"].read_text("utf-8").splitlines()[:batch]
    ]
    enc = tok(texts, padding="max_length", truncation=True, max_length=96, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    keys = [(m, dp) for m in dict.fromkeys(["lora", *methods]) for dp in (False, True)]
    setups = {
        k: Stepper(paths["base"], paths["finetune"], k[0], k[1], batch, 96, ids, mask) for k in keys
    }
    for _ in range(warmup):
        for s in setups.values():
            s.step()
    ratios: dict[tuple[str, bool], list[float]] = {k: [] for k in keys}
    times: dict[tuple[str, bool], list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]  # rotate who goes first
        took = {k: setups[k].step() for k in order}
        for k in keys:
            ratios[k].append(took[k] / took[("lora", False)])
            times[k].append(took[k])
    del setups
    return {
        f"{m}/{'dp' if dp else 'none'}": {
            "ratio": statistics.median(ratios[(m, dp)]),
            "ms": 1000 * statistics.median(times[(m, dp)]),
        }
        for m, dp in keys
    }


# ---- the table ---------------------------------------------------------------------------------


def _f(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def table(
    rows: dict[tuple[str, float | None], dict[str, Any]],
    timing: dict[str, Any],
    methods: list[str],
    epsilons: list[float | None],
    batch: int,
) -> str:
    ref = rows.get(("lora", None))
    ref_spe = _per_example(ref) if ref else None
    shown = ([None] if None in epsilons else []) + sorted(e for e in epsilons if e is not None)
    out = [
        "| method | DP | trainable params | step time vs non-DP LoRA, interleaved (batch "
        f"{batch}, median of {timing.get('rounds', '?')} rounds) | in the run: s/step (time per example vs non-DP LoRA) | steps x batch | epsilon (PRV) | "
        "memorised identifiers (removed) | exposure max / 16x mean (bits) | "
        "empirical epsilon (95% lower bound) | task F1 (vs non-private) | task AUC | val loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in [x for x in TABLE_ORDER if x in methods]:
        plain = rows.get((m, None))
        for eps in shown:
            r = rows.get((m, eps))
            t = timing.get(f"{m}/{'none' if eps is None else 'dp'}") if timing else None
            tcell = f"{t['ratio']:.2f}x ({t['ms']:.0f} ms)" if t else "-"
            if r is None:
                out.append(f"| {LABELS[m]} | {_dp(eps)} | - | {tcell} | not run yet |" + " - |" * 8)
                continue
            spe = _per_example(r)
            run_rel = _f(r["s_per_step"]) + (f" ({spe / ref_spe:.2f}x)" if spe and ref_spe else "")
            mem = _f(r["memorized"])
            if eps is not None and plain and plain.get("memorized"):
                mem += f" ({100 * (1 - r['memorized'] / plain['memorized']):.0f}%)"
            f1 = _f(r["f1"], 3)
            if eps is not None and plain and plain.get("f1") and r["f1"] is not None:
                f1 += f" ({100 * r['f1'] / plain['f1']:.0f}%)"
            batch_cell = f"{r['steps']} x {_f(r['batch'], 0)}"
            out.append(
                f"| {LABELS[m]} | {_dp(eps)} | {r['trainable']:,} | {tcell} | {run_rel} | "
                f"{batch_cell} | {_f(r['epsilon'])} | {mem} | {_f(r['max_bits'], 1)} / "
                f"{_f(r['top_rep_bits'], 1)} | {_f(r['emp_eps'])} | {f1} | {_f(r['auc'], 3)} | "
                f"{_f(r['val_loss'], 3)} |"
            )
    return "\n".join(out)


def _per_example(r: dict[str, Any]) -> float | None:
    if not (r.get("wall") and r.get("steps") and r.get("batch")):
        return None
    return float(r["wall"]) / (float(r["steps"]) * float(r["batch"]))


def _dp(eps: float | None) -> str:
    return "none" if eps is None else f"epsilon {eps:g}"


def machine(threads: int) -> str:
    import opacus
    import peft
    import torch
    import transformers

    cpu = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} cores (torch threads: {threads}), load average "
        f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}, torch "
        f"{torch.__version__}, transformers {transformers.__version__}, peft "
        f"{peft.__version__}, opacus {opacus.__version__}"
    )


def write_doc(doc: Path, block: str) -> None:
    text = doc.read_text("utf-8") if doc.exists() else f"# Trade-off table\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{START}\n{block}\n{END}{tail}", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes; LoRA and IA3 x none/eps 8 unless --methods/--epsilons",
    )
    ap.add_argument("--methods", default=None, help="comma-separated: full,lora,ia3,prefix")
    ap.add_argument("--epsilons", default=None, help="comma-separated: none,0.5,1,8")
    ap.add_argument("--out", default=None, help="work folder (default build/tradeoff[-quick])")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds")
    ap.add_argument("--no-timing", action="store_true", help="skip the interleaved timing")
    ap.add_argument(
        "--stop-after", type=float, default=None, help="start no new run after this many minutes"
    )
    ap.add_argument("--write-doc", default=None, help="fill the table block of this Markdown file")
    args = ap.parse_args()

    import torch

    from finetrail.demo.pipeline import FULL, QUICK, Sizes, _runner

    torch.set_num_threads(args.threads)
    methods = (args.methods or ("lora,ia3" if args.quick else "full,lora,ia3,prefix")).split(",")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}; choose from {sorted(METHODS)}")
    epsilons = [
        None if e.strip() == "none" else float(e)
        for e in (args.epsilons or ("none,8" if args.quick else "none,0.5,1,8")).split(",")
    ]
    # the demo's sizes; the full table trains a little less than the demo (16 runs, not 2)
    sizes = (
        Sizes(**{**QUICK.__dict__, "bias_resamples": 100})
        if args.quick
        else Sizes(
            **{**FULL.__dict__, "control_steps": 200, "dp_epochs": 2.0, "bias_resamples": 200}
        )
    )
    out = Path(args.out or ROOT / "build" / ("tradeoff-quick" if args.quick else "tradeoff"))
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    run = _runner(log)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the table only
        rows, timing, batch = measure(args, methods, epsilons, sizes, out, run, t0)
    block = render(rows, timing, methods, epsilons, batch, args, sizes, time.perf_counter() - t0)
    if args.write_doc:
        write_doc(Path(args.write_doc), block)
    print(block)
    return 0


def measure(
    args: Any,
    methods: list[str],
    epsilons: list[float | None],
    sizes: Any,
    out: Path,
    run: Any,
    t0: float,
) -> tuple[dict[tuple[str, float | None], dict[str, Any]], dict[str, Any], int]:
    paths = prepare_shared(out, sizes, args.seed, run)

    batch = 16  # the non-private runs' batch; DP runs use a larger expected batch
    timing_file = out / f"step_times_b{batch}.json"
    timing: dict[str, Any] = _read(timing_file)
    want = {f"{m}/{p}" for m in ["lora", *methods] for p in ("none", "dp")}
    if not args.no_timing and not want <= set(timing):
        log("== interleaved step timing")
        rounds = args.rounds or (6 if args.quick else 12)
        timing = {**step_times(paths, methods, batch, rounds, warmup=2), "rounds": rounds}
        timing_file.write_text(json.dumps(timing, indent=1), encoding="utf-8")

    rows: dict[tuple[str, float | None], dict[str, Any]] = {}
    for m, eps in run_order(methods, epsilons):
        ws = out / "runs" / f"{m}-{eps_name(eps)}"
        if complete(ws):
            log(f"== {ws.name}: complete evidence found, not rerun")
        elif args.stop_after and time.perf_counter() - t0 > 60 * args.stop_after:
            log(f"== {ws.name}: not started (--stop-after {args.stop_after:g} min)")
            continue
        else:
            log(f"== {ws.name}: {LABELS[m]}, privacy {_dp(eps)}")
            r0 = time.perf_counter()
            one_run(ws, m, eps, paths, sizes, args.seed, run)
            took = time.perf_counter() - r0
            (ws.parent / (ws.name + ".files") / "took.json").write_text(
                json.dumps({"seconds": took}), encoding="utf-8"
            )
            log(f"== {ws.name} took {took:.0f} s")
        rows[(m, eps)] = collect(ws)
        if args.write_doc:  # the doc grows as rows come in
            write_doc(
                Path(args.write_doc),
                render(
                    rows,
                    timing,
                    methods,
                    epsilons,
                    batch,
                    args,
                    sizes,
                    time.perf_counter() - t0,
                ),
            )
    return rows, timing, batch


def render(
    rows: dict[tuple[str, float | None], dict[str, Any]],
    timing: dict[str, Any],
    methods: list[str],
    epsilons: list[float | None],
    batch: int,
    args: Any,
    sizes: Any,
    took: float,
) -> str:
    done = len(rows)
    total = len(methods) * len(epsilons)
    cmd = "python benchmarks/tradeoff_table.py" + (" --quick" if args.quick else "")
    if args.methods:
        cmd += f" --methods {args.methods}"
    if args.epsilons:
        cmd += f" --epsilons {args.epsilons}"
    if args.rounds:
        cmd += f" --rounds {args.rounds}"
    status = "" if done == total else f" PARTIAL: {done} of {total} runs done."
    secs = [r["run_seconds"] for r in rows.values() if r.get("run_seconds")]
    spent = f"the {len(secs)} runs took {sum(secs) / 60:.0f} min in all" if secs else ""
    base = next((r["base_task"] for r in rows.values() if r.get("base_task")), {})
    base_line = (
        f" The base model before fine-tuning: task F1 {_f(base.get('f1'), 3)}, AUC "
        f"{_f(base.get('auc'), 3)}, selection rate {_f(base.get('selection_rate'), 3)}."
        if base
        else ""
    )
    return "\n".join(
        [
            f"Machine: {machine(args.threads)}",
            "",
            f"Command: `{cmd}` ({spent or f'{took / 60:.0f} min'}).{status}",
            "",
            f"Data: the demo's synthetic data ({sizes.records} support notes, {sizes.task_records} "
            f"credit-task rows in training, {sizes.eval_records} for F1), {sizes.canaries} pin6 "
            f"canaries (each included with probability 1/2, repeated 1, 4 or 16 times). "
            f"Non-private: {sizes.control_steps} steps at batch 16; DP: {sizes.dp_epochs:g} epochs "
            f"at expected batch {sizes.dp_batch}, delta 1e-5, clip 1.0. Learning rates (non-private, "
            "DP): "
            + ", ".join(f"{m} {LR[m][0]:g}/{LR[m][1]:g}" for m in methods)
            + "."
            + base_line,
            "",
            table(rows, timing, methods, epsilons, batch),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
