"""The black-box DP audit's reach by canary design and count: for each design (pin, new-token,
bigram) and count of single-copy canaries, the ceiling (the largest per-example bound the design
can certify, every guess right) beside the bound reached on a non-private control that memorises
(the same tiny model and data as benchmarks/memorisation_vs_epsilon.py). Writes the table into
docs/memorisation.md between markers.

The non-private control has no epsilon; a positive bound on it shows the audit has power at that
count. Every canary is inserted once (the per-example bound uses only single-copy canaries), each
with probability 1/2; the control is trained the same way for every design.

Run: ``python benchmarks/canary_designs.py [--quick] [--threads 1]``.
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
START, END = "<!-- canary-design-table:start -->", "<!-- canary-design-table:end -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller model, data and budgets")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--counts", default=None, help="single-copy canary counts (comma-separated)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    import torch

    from finetrail.governance.evidence.probes import ProbeSubject
    from finetrail.governance.probes import ProbeContext, ProbeModels, weights_sha256
    from finetrail.governance.probes.canaries import (
        BigramSampler,
        augment,
        build_canary_set,
        design_formats,
        draw_canaries,
    )
    from finetrail.governance.probes.dp_audit import DPAuditProbe, design_ceiling

    if args.threads:
        torch.set_num_threads(args.threads)
    q = args.quick
    hidden = 64 if q else 128
    n_public, n_private = (3000, 400) if q else (6000, 1000)
    pre_steps, full_steps = (250, 300) if q else (600, 900)
    counts = [int(c) for c in (args.counts or ("60,200" if q else "100,400")).split(",")]
    t_start = time.perf_counter()

    public = _tinylm.corpus(n_public, seed=1)
    private = _tinylm.corpus(n_private, seed=3)
    tok = _tinylm.tokenizer(public + _tinylm.corpus(500, seed=2), vocab=2000 if q else 3000)
    base = _tinylm.model(len(tok), hidden=hidden)
    xp, mp = _tinylm.encode(tok, public)
    _tinylm.train_plain(base, xp, mp, steps=pre_steps, batch=16, lr=2e-3)

    rows: list[dict[str, Any]] = []
    for design in ("pin", "new-token", "bigram"):
        formats = design_formats(design)
        sampler = BigramSampler(private) if design == "bigram" else None
        for m in counts:
            t = time.perf_counter()
            canaries = draw_canaries(
                formats=formats, m=m, repetitions=(1,), seed=5, avoid=private, sampler=sampler
            )
            cs = build_canary_set(canaries, repetitions=(1,), design=design)  # type: ignore[arg-type]
            texts = [
                r["text"]
                for r in augment(
                    [{"text": t} for t in private], canaries, text_field="text", seed=6
                )
            ]
            x, mask = _tinylm.encode(tok, texts)
            net = copy.deepcopy(base)
            _tinylm.train_plain(net, x, mask, steps=full_steps, batch=16, lr=3e-3, seed=1)
            ctx = ProbeContext(
                models=ProbeModels(model=net, tokenizer=tok, base_model=base),
                subject=ProbeSubject(adapter_sha256=weights_sha256(net, trainable_only=True)),
                canaries=cs,
                train_texts=texts,
                heldout_texts=[],
                claim=None,
            )
            rec = DPAuditProbe().run(ctx)
            rows.append(
                {
                    "design": design,
                    "count": m,
                    "inserted": len(cs.included),
                    "ceiling": design_ceiling(canaries=m, delta=rec.delta_used),
                    "bound": rec.empirical_epsilon_lower_bound,
                    "seconds": time.perf_counter() - t,
                }
            )
            print(
                f"{design} x {m}: bound {rec.empirical_epsilon_lower_bound:.3f} "
                f"(ceiling {rows[-1]['ceiling']:.2f}) in {rows[-1]['seconds']:.0f}s",
                flush=True,
            )
            del net
    ceilings = [
        f"{n:,}: {design_ceiling(canaries=n, delta=1e-5):.2f}"
        for n in (20, 50, 100, 200, 500, 1000, 2000, 5000)
    ]
    lines = [
        f"Measured by `python benchmarks/canary_designs.py{' --quick' if q else ''}` on "
        f"{_tinylm.machine()}; total {time.perf_counter() - t_start:.0f} s. Control: non-private "
        f"full fine-tune, {full_steps} steps of 16 on {n_private} records plus the inserted "
        "canaries (Llama hidden "
        f"{hidden}); delta 1e-5; 95% confidence, Bonferroni over 5 guess counts.",
        "",
        "| design | single-copy canaries (inserted) | ceiling | bound reached on the control |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['design']} | {r['count']} ({r['inserted']}) | {r['ceiling']:.2f} | "
            f"{r['bound']:.3f} |"
        )
    lines += [
        "",
        "The ceiling depends on the count, not the design (`finetrail canaries plan --count N "
        "--delta 1e-5` prints it): " + "; ".join(ceilings) + ".",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    if not args.no_write:
        text = DOC.read_text(encoding="utf-8")
        if START not in text:
            text += f"\n## The black-box audit's reach by canary design\n\n{START}\n{END}\n"
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
