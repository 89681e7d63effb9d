"""Memorisation against epsilon: the non-private control and DP at epsilon 0.5, 1, 4 and 8 on the
same data and canaries, each probed with the full suite (exposure, extraction, membership
inference, one-run DP audit). Writes the table into docs/memorisation.md between markers.

Setup (shared/notes/tiny-model-memorisation.md, scaled to fit a shared 2-core machine): Llama
hidden 128, 2 layers, vocabulary 3,000, digits split; pretrained on public-style support records;
fine-tuned on 1,000 private records plus six-digit pin canaries (m canaries, each included with
probability 1/2, included ones repeated 1, 4 or 16 times): non-private full fine-tuning (lr 3e-3,
900 steps of 16) and LoRA (r16, all linear layers, lr 1e-2, 400 steps of 16), and DP LoRA (Opacus,
hooks, Poisson sampling, expected batch 64, clip 1.0, lr 3e-3, 3 epochs, PRV accountant).

Run: ``python benchmarks/memorisation_vs_epsilon.py [--quick] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tinylm

DOC = Path(__file__).resolve().parent.parent / "docs" / "memorisation.md"
START, END = "<!-- memorisation-table:start -->", "<!-- memorisation-table:end -->"


def val_loss(net: Any, x: Any, m: Any) -> float:
    import torch

    with torch.no_grad():
        return float(_tinylm.sequence_loss(net, x, m))


def fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller model, data and budgets")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--epsilons", default="0.5,1,4,8")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    import torch

    from finetrail.governance.evidence.probes import ProbeSubject
    from finetrail.governance.probes import (
        DPClaim,
        ProbeContext,
        ProbeModels,
        run_probes,
        weights_sha256,
    )
    from finetrail.governance.probes.canaries import augment, build_canary_set, draw_canaries
    from finetrail.governance.probes.formats import PIN6

    if args.threads:
        torch.set_num_threads(args.threads)
    q = args.quick
    hidden = 64 if q else 128
    n_public, n_private, n_held, m_canaries = (3000, 400, 200, 60) if q else (6000, 1000, 300, 90)
    pre_steps, full_steps, lora_steps, dp_epochs = (250, 300, 200, 3) if q else (600, 900, 400, 3)
    t_start = time.perf_counter()

    public = _tinylm.corpus(n_public, seed=1)
    private = _tinylm.corpus(n_private, seed=3)
    heldout = _tinylm.corpus(n_held, seed=4)
    tok = _tinylm.tokenizer(public + _tinylm.corpus(500, seed=2), vocab=2000 if q else 3000)
    base = _tinylm.model(len(tok), hidden=hidden)
    xp, mp = _tinylm.encode(tok, public)
    t = time.perf_counter()
    _tinylm.train_plain(base, xp, mp, steps=pre_steps, batch=16, lr=2e-3)
    print(f"pretrained {pre_steps} steps in {time.perf_counter() - t:.0f}s", flush=True)

    canaries = draw_canaries(
        formats=[PIN6], m=m_canaries, repetitions=(1, 4, 16), seed=5, avoid=private
    )
    cs = build_canary_set(canaries, repetitions=(1, 4, 16))
    texts = [
        r["text"]
        for r in augment([{"text": t} for t in private], canaries, text_field="text", seed=6)
    ]
    x, m = _tinylm.encode(tok, texts)
    xh, mh = _tinylm.encode(tok, heldout)

    def probe(net: Any, claim: DPClaim | None) -> dict[str, Any]:
        ctx = ProbeContext(
            models=ProbeModels(model=net, tokenizer=tok, base_model=base),
            subject=ProbeSubject(adapter_sha256=weights_sha256(net, trainable_only=True)),
            canaries=cs,
            train_texts=texts,
            heldout_texts=heldout,
            claim=claim,
        )
        return run_probes(ctx).records

    rows = []
    runs: list[tuple[str, float | None]] = [("full", None), ("lora", None)]
    runs += [("DP", float(e)) for e in args.epsilons.split(",")]
    for name, eps in runs:
        t = time.perf_counter()
        spent: float | None = None
        claim: DPClaim | None = None
        if name == "full":
            net = copy.deepcopy(base)
            _tinylm.train_plain(net, x, m, steps=full_steps, batch=16, lr=3e-3, seed=1)
            steps = full_steps
        elif name == "lora":
            net = _tinylm.lora(base)
            _tinylm.train_plain(net, x, m, steps=lora_steps, batch=16, lr=1e-2, seed=1)
            steps = lora_steps
        else:
            net, spent, steps = _tinylm.train_dp(
                base, x, m, epsilon=eps, delta=1e-5, epochs=dp_epochs, batch=64, lr=3e-3, seed=2
            )
            claim = DPClaim(epsilon=spent, delta=1e-5, accountant="prv")
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        rec = probe(net, claim)
        probe_s = time.perf_counter() - t
        e, x_, mi, a = (rec["exposure"], rec["extraction"], rec["membership"], rec["dp_audit"])
        row = {
            "setting": (
                "non-private, full fine-tune"
                if name == "full"
                else "non-private, LoRA"
                if name == "lora"
                else f"DP LoRA, target epsilon {eps:g}"
            ),
            "epsilon": spent,
            "steps": steps,
            "val_loss": val_loss(net, xh, mh),
            "memorized": x_.memorized_identifiers,
            "canary_secrets": x_.canary_secrets_extracted,
            "base_matches": x_.base_model_matches,
            "exp": {
                k: e.by_repetition[k].mean_bits for k in ("1", "4", "16") if k in e.by_repetition
            },
            "exp_max": e.max_bits,
            "controls": e.controls.mean_bits,
            "auc": mi.max_auc,
            "auc_ref": mi.attacks["reference"].auc if "reference" in mi.attacks else None,
            "bound": a.empirical_epsilon_lower_bound,
            "verdict": a.verdict,
            "ceiling": a.ceiling,
            "train_s": train_s,
            "probe_s": probe_s,
        }
        rows.append(row)
        print(
            f"{row['setting']}: trained {train_s:.0f}s, probed {probe_s:.0f}s; exposure 16x "
            f"{fmt(row['exp'].get('16'))}, memorised {row['memorized']}, bound {row['bound']:.3f}",
            flush=True,
        )
        del net

    lines = [
        f"Measured by `python benchmarks/memorisation_vs_epsilon.py{' --quick' if q else ''}` on "
        f"{_tinylm.machine()}; total {time.perf_counter() - t_start:.0f} s.",
        f"Model: Llama hidden {hidden}, 2 layers, vocabulary {len(tok)}; {n_private} private "
        f"records + {sum(c.copies for c in canaries)} canary copies ({len(cs.included)} of "
        f"{m_canaries} pin canaries inserted); {n_held} held-out records; delta 1e-5.",
        "",
        "| setting | epsilon (PRV) | steps | val loss | memorised identifiers (canary secrets) | "
        "exposure 1x / 4x / 16x (bits) | max exposure | controls | MIA AUC (max / reference) | "
        "empirical epsilon lower bound (95%) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        exp = " / ".join(fmt(r["exp"].get(k)) for k in ("1", "4", "16"))
        lines.append(
            f"| {r['setting']} | {fmt(r['epsilon'])} | {r['steps']} | {r['val_loss']:.3f} | "
            f"{r['memorized']} ({r['canary_secrets']}) | {exp} | {r['exp_max']:.2f} | "
            f"{fmt(r['controls'])} | {r['auc']:.3f} / {fmt(r['auc_ref'], 3)} | "
            f"{r['bound']:.3f} (ceiling {r['ceiling']:.2f}) | {r['verdict']} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    if not args.no_write:
        text = DOC.read_text(encoding="utf-8") if DOC.exists() else f"{START}\n{END}\n"
        if START not in text:
            text += f"\n{START}\n{END}\n"
        text = re.sub(
            re.escape(START) + ".*?" + re.escape(END),
            lambda _: f"{START}\n{table}\n{END}",
            text,
            flags=re.S,
        )
        DOC.write_text(text, encoding="utf-8")
        print(f"\nwrote {DOC}")


if __name__ == "__main__":
    main()
