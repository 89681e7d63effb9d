"""Exposure-ranking throughput: candidates scored per second.

Side by side on the same model (the demo model: Llama, hidden 128, 2 layers, vocabulary 3,000)
and the same canary format ("... my account pin is NNNNNN"):

- naive: one candidate at a time, a full forward pass each (the loop the probe avoids);
- plain forward: batched full sequences (prefix + secret) through the model, logits only and no
  scoring at all: the model's own limit for those tokens;
- batched scoring: the probe's padding-aware batched scorer over full sequences;
- tree: the probe's exact ranking path, the whole secret space expanded level by level from the
  shared prefix with KV-cache reuse (``tree_leaf_scores``).

Rounds are interleaved and each ratio is the median of per-round ratios. Run:
``python benchmarks/probe_scoring.py`` (6-digit space, 10^6 candidates) or ``--quick`` (4 digits).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tinylm


def naive(net: Any, prefix: list[int], cands: list[list[int]]) -> list[float]:
    import torch

    out = []
    with torch.no_grad():
        for c in cands:
            ids = torch.tensor([prefix + c])
            logp = torch.log_softmax(net(input_ids=ids).logits[0, :-1].float(), -1)
            tgt = ids[0, 1:]
            out.append(
                float(logp[len(prefix) - 1 :].gather(-1, tgt[len(prefix) - 1 :, None]).sum())
            )
    return out


def plain_forward(net: Any, prefix: list[int], cands: list[list[int]], batch: int) -> None:
    import torch

    with torch.no_grad():
        for s in range(0, len(cands), batch):
            net(input_ids=torch.tensor([prefix + c for c in cands[s : s + batch]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4-digit space, fewer candidates")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args()

    import torch

    from finetrail.governance.probes.scoring import (
        continuation_logprobs,
        token_budget,
        tree_leaf_scores,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    digits_n = 4 if args.quick else 6
    n_naive, n_batched = (100, 5000) if args.quick else (300, 20000)
    rounds = args.rounds or (2 if args.quick else 3)

    tok = _tinylm.tokenizer(_tinylm.corpus(3000, 1))
    net = _tinylm.model(len(tok))
    prefix = tok("Customer note: my account pin is ")["input_ids"]
    digit = [tok.convert_tokens_to_ids(str(d)) for d in range(10)]
    rng = random.Random(0)
    secrets = [rng.randrange(10**digits_n) for _ in range(n_batched)]
    cands = [[digit[int(ch)] for ch in f"{s:0{digits_n}d}"] for s in secrets]
    batch = max(1, token_budget(net) // (len(prefix) + digits_n))
    space = 10**digits_n

    print(f"machine: {_tinylm.machine()}")
    print(
        f"model: Llama hidden 128, 2 layers, vocabulary {len(tok)}; prefix {len(prefix)} tokens, "
        f"secret {digits_n} digits (space {space:,}); batch {batch}"
    )
    naive(net, prefix, cands[:20])  # warm-up (first-call allocations), not timed
    plain_forward(net, prefix, cands[:batch], batch)
    rows: dict[str, list[float]] = {"naive": [], "plain": [], "batched": [], "tree": []}
    check = 0.0
    for r in range(rounds):
        t = time.perf_counter()
        ref = naive(net, prefix, cands[:n_naive])
        rows["naive"].append(n_naive / (time.perf_counter() - t))
        t = time.perf_counter()
        plain_forward(net, prefix, cands, batch)
        rows["plain"].append(len(cands) / (time.perf_counter() - t))
        t = time.perf_counter()
        continuation_logprobs(net, [(prefix, c) for c in cands])
        rows["batched"].append(len(cands) / (time.perf_counter() - t))
        t = time.perf_counter()
        leaves = tree_leaf_scores(net, prefix_ids=prefix, slots=[digit] * digits_n)
        rows["tree"].append(space / (time.perf_counter() - t))
        order = {int(i): k for k, i in enumerate(leaves.indices)}
        check = max(
            check, max(abs(leaves.scores[order[s]] - v) for s, v in zip(secrets, ref, strict=False))
        )
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rows.items()))

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rows[a], rows[b], strict=True))

    print()
    print("| method | candidates/s (median) | vs naive | vs plain batched forward |")
    print("|---|---|---|---|")
    for k, label in (
        ("naive", "naive loop, one candidate per forward"),
        ("plain", "plain batched forward (logits only)"),
        ("batched", "batched scoring, padding-aware"),
        ("tree", "digit tree with shared KV cache (exact ranking)"),
    ):
        print(
            f"| {label} | {statistics.median(rows[k]):,.0f} | {ratio(k, 'naive'):.1f}x | "
            f"{ratio(k, 'plain'):.2f} |"
        )
    print(
        f"\ntree scores match one-at-a-time scoring within {check:.1e} nats "
        f"(max over {n_naive} candidates)"
    )
    seq = len(prefix) + digits_n
    nodes = sum(10**d for d in range(digits_n))
    print(
        f"tokens through the model per candidate: {seq} (naive, plain, batched) vs "
        f"{nodes / space:.3f} (tree: {nodes:,} one-token queries for {space:,} candidates, "
        f"vocabulary projection once per query instead of at every position)"
    )


if __name__ == "__main__":
    main()
