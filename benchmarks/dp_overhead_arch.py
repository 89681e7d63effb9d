"""Cost of DP per architecture: finetrail's DP LoRA step time over the non-DP LoRA step time, for
every architecture of the model-family matrix (``finetrail.training.tiny.ARCHITECTURES``).

For each architecture one tiny random-init model (2 layers, width 64, grouped-query attention and
tied or separate embeddings as the family has them, as in the matrix of
``tests/training/test_architectures.py``) is saved with ``save_pretrained`` and loaded through
finetrail's own training path (``build_model`` + ``build_engine``) three times: LoRA r=8 without
DP, under Opacus with ``privacy.clipping: hooks`` and with ``ghost``. LoRA's target modules are
finetrail's defaults for the architecture (every linear layer, except OPT and Mixtral: attention
projections), the same with and without DP. The three step (forward, per-sequence loss,
backward, update; the same batch) in interleaved rounds, the order rotating each round; the table
shows the median over rounds of (DP step / non-DP step of the same round), and the mode
``privacy.clipping: auto`` picks for the architecture.

    python benchmarks/dp_overhead_arch.py                 # 15 rounds, batch 16
    python benchmarks/dp_overhead_arch.py --quick         # 6 rounds
    python benchmarks/dp_overhead_arch.py --archs llama,gpt2 --rounds 30 --json build/arch.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SEQ = 64
WIDTH = 64
# as the architecture matrix builds them (tests/training/architecture_models.py)
GQA = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3_text"}
UNTIED = {"gpt_neox", "mistral", "mixtral", "qwen3", "phi", "phi3", "gptj"}
MODES = ("none", "hooks", "ghost")


def build_tokenizer() -> tuple[Any, list[str]]:
    """A byte-level BPE tokenizer (1,000 tokens) and the texts the steps use."""
    from finetrail.training.tiny import WORDS, bpe_tokenizer, fast_tokenizer

    rng = random.Random(0)
    texts = [
        " ".join(rng.choice(WORDS) for _ in range(14)) + f" {rng.randint(0, 99999)}"
        for _ in range(1000)
    ]
    tok = bpe_tokenizer(
        texts, vocab_size=1000, special_tokens=("<unk>", "<bos>", "<eos>"), template="<bos> $A"
    )
    return fast_tokenizer(tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"), texts


def build_arch(arch: str, root: Path, saved_tok: Any, texts: list[str]) -> Path:
    """The tiny ``arch`` model folder (tokenizer, config, safetensors, a training file)."""
    from transformers import AutoConfig, AutoTokenizer

    from finetrail.training.model import quiet_loading
    from finetrail.training.tiny import tiny_causal_lm

    folder = root / arch
    folder.mkdir(parents=True)
    saved_tok.save_pretrained(str(folder))
    # model_type decides the tokenizer class AutoTokenizer picks (Qwen2's adds a pad token)
    probe = tiny_causal_lm(arch, vocab_size=len(saved_tok), hidden=WIDTH, layers=1, heads=4)
    AutoConfig.for_model(probe.config.model_type).save_pretrained(str(folder))
    loaded = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    ids = {
        "bos_token_id": saved_tok.bos_token_id,
        "eos_token_id": saved_tok.eos_token_id,
        "pad_token_id": saved_tok.bos_token_id,
    }
    model = tiny_causal_lm(
        arch,
        vocab_size=max(len(saved_tok), len(loaded)),
        hidden=WIDTH,
        intermediate=4 * WIDTH,
        layers=2,
        heads=4,
        kv_heads=2 if arch in GQA else None,
        max_positions=128,
        tie_embeddings=arch not in UNTIED,
        token_ids=ids,
        seed=0,
    )
    with quiet_loading():
        model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "train.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in texts[:256]), encoding="utf-8"
    )
    return folder


class Setup:
    """One LoRA model with finetrail's optimisation (no DP, or DP with one clipping mode)."""

    def __init__(self, base: Path, *, mode: str, batch: int, ids: Any, mask: Any) -> None:
        import torch
        from torch.utils.data import TensorDataset

        from finetrail.training.config import parse_config
        from finetrail.training.engine import build_engine, plan_run
        from finetrail.training.model import build_model

        dp = mode != "none"
        cfg = {
            "base_model": {"path": str(base)},
            "method": {"name": "lora", "rank": 8, "alpha": 16},  # finetrail's default targets
            "privacy": {
                "noise_multiplier": 1.0,
                "delta": 1e-5,
                "max_grad_norm": 1.0,
                "clipping": mode,
            }
            if dp
            else "none",
            "data": {"train": str(base / "train.jsonl"), "max_length": SEQ, "unregistered": "flag"},
            "optim": {"batch_size": batch, "steps": 10, "learning_rate": 1e-3},
            "device": "cpu",
            "tracking": {"mlflow": False},
        }
        config = parse_config(cfg, source="benchmark")
        self.built = build_model(config, device=torch.device("cpu"), dp=dp)
        self.ids, self.mask = ids, mask
        n = batch * 8
        dataset = TensorDataset(ids.repeat(8, 1)[:n], mask.repeat(8, 1)[:n])
        plan = plan_run(
            config,
            sampled_records=n,
            private_records=n,
            world_size=1,
            seq_len=SEQ,
            model=self.built.model,
        )
        self.mode = plan.clipping_mode if dp else "-"
        self.engine = build_engine(
            config, model=self.built.model, plan=plan, dataset=dataset, distributed=False
        )

    def step(self) -> float:
        from finetrail.training.dp_guards import model_inputs

        t0 = time.perf_counter()
        st = self.engine.stepper
        logits = self.engine.model(**model_inputs(self.ids, self.mask, "lora")).logits
        st.backward(st.loss(logits, self.ids, self.mask))
        st.step()
        return time.perf_counter() - t0


def auto_mode(base: Path, batch: int, ids: Any, mask: Any) -> str:
    """The clipping mode ``privacy.clipping: auto`` chooses for this model (the plan's)."""
    return Setup(base, mode="auto", batch=batch, ids=ids, mask=mask).mode


def measure_arch(
    arch: str, root: Path, tok: Any, texts: list[str], *, batch: int, rounds: int, warmup: int
) -> dict[str, Any]:
    base = build_arch(arch, root, tok, texts)
    from finetrail.training.model import load_tokenizer

    loaded, _ = load_tokenizer(base)
    enc = loaded(
        texts[:batch], padding="max_length", truncation=True, max_length=SEQ, return_tensors="pt"
    )
    ids, mask = enc["input_ids"], enc["attention_mask"]
    setups: dict[str, Setup] = {}
    refused: dict[str, str] = {}
    for mode in MODES:
        try:
            setups[mode] = Setup(base, mode=mode, batch=batch, ids=ids, mask=mask)
        except Exception as exc:  # a refusal is a result: the table names it
            if mode == "none":
                raise
            refused[mode] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    for _ in range(warmup):
        for s in setups.values():
            s.step()
    keys = list(setups)
    ratios: dict[str, list[float]] = {k: [] for k in keys}
    times: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        took = {k: setups[k].step() for k in order}
        for k in keys:
            ratios[k].append(took[k] / took["none"])
            times[k].append(took[k])
    none = setups["none"]
    trainable, total = none.built.counts()[:2]
    out: dict[str, Any] = {
        "arch": arch,
        "trainable": trainable,
        "total": total,
        "auto": auto_mode(base, batch, ids, mask),
        "refused": refused,
    }
    for k in keys:
        out[k] = {
            "ratio": statistics.median(ratios[k]),
            "ms": 1000 * statistics.median(times[k]),
            "mode": setups[k].mode,
        }
    return out


def table(results: list[dict[str, Any]], *, batch: int, rounds: int) -> str:
    lines = [
        f"DP LoRA step / non-DP LoRA step, median of {rounds} interleaved rounds (tiny models: 2 "
        f"layers, width {WIDTH}, sequence {SEQ}, batch {batch}; LoRA r=8 on finetrail's default "
        "target modules; AdamW; noise multiplier 1.0, clip 1.0). In brackets: the median step "
        "time (absolute times move with the load of a shared machine; the ratio of steps taken "
        "in the same round is what is compared).",
        "",
        "| architecture (`model_type`) | LoRA trainable / total params | no DP | DP hooks | "
        "DP ghost | `clipping: auto` picks |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = []
        for mode in ("hooks", "ghost"):
            if mode in r:
                cells.append(f"{r[mode]['ratio']:.2f}x ({r[mode]['ms']:.0f} ms)")
            else:
                cells.append(f"refused: {r['refused'].get(mode, '?')}")
        lines.append(
            f"| `{r['arch']}` | {r['trainable']:,} / {r['total']:,} | 1.00x "
            f"({r['none']['ms']:.0f} ms) | {cells[0]} | {cells[1]} | {r['auto']} |"
        )
    hooks = [r["hooks"]["ratio"] for r in results if "hooks" in r]
    ghost = [r["ghost"]["ratio"] for r in results if "ghost" in r]
    if hooks:
        lines += [
            "",
            f"Across the {len(hooks)} architectures: DP hooks {min(hooks):.2f}x to "
            f"{max(hooks):.2f}x (median {statistics.median(hooks):.2f}x)"
            + (
                f"; DP ghost {min(ghost):.2f}x to {max(ghost):.2f}x (median "
                f"{statistics.median(ghost):.2f}x)."
                if ghost
                else "."
            ),
        ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="6 rounds per architecture, not 15")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--archs", default=None, help="comma-separated model types (default: all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", default=None, help="also write the measurements to this file")
    args = ap.parse_args()

    import torch
    from dp_overhead import machine

    from finetrail.training.tiny import ARCHITECTURES

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Secure RNG turned off")  # noise is not measured
    warnings.filterwarnings("ignore", category=FutureWarning)
    archs = args.archs.split(",") if args.archs else list(ARCHITECTURES)
    bad = [a for a in archs if a not in ARCHITECTURES]
    if bad:
        ap.error(f"unknown architecture(s) {bad}; choose from {', '.join(ARCHITECTURES)}")
    rounds = args.rounds or (6 if args.quick else 15)
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="dp-overhead-arch-") as tmp:
        tok, texts = build_tokenizer()
        for arch in archs:
            r = measure_arch(arch, Path(tmp), tok, texts, batch=args.batch, rounds=rounds, warmup=2)
            results.append(r)
            got = ", ".join(f"{m} {r[m]['ratio']:.2f}x" for m in ("hooks", "ghost") if m in r)
            print(f"  {arch}: {got}; auto picks {r['auto']}", file=sys.stderr, flush=True)
    took = time.perf_counter() - t0
    cmd = "python benchmarks/dp_overhead_arch.py" + (" --quick" if args.quick else "")
    if args.rounds:
        cmd += f" --rounds {args.rounds}"
    if args.batch != 16:
        cmd += f" --batch {args.batch}"
    if args.archs:
        cmd += f" --archs {args.archs}"
    print(f"Machine: {machine(args.threads)}")
    print()
    print(f"Command: `{cmd}` ({took:.0f} s)")
    print()
    print(table(results, batch=args.batch, rounds=rounds))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {"rounds": rounds, "batch": args.batch, "seconds": took, "results": results},
                indent=1,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
