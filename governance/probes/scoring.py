"""Batched log-likelihood scoring of token sequences with a causal language model.

Works with any Hugging Face causal LM (and peft wrappers). torch is imported inside the functions.

- :func:`token_logprobs` scores many sequences of different lengths: sorted by length, packed into
  batches by a token budget, right-padded with an attention mask; padding never enters a score.
- :func:`continuation_logprobs` gives log p(continuation | prefix) for many pairs;
  :func:`next_token_logprobs` log p(token | prefix) for a few candidate tokens at once (the bias
  audit's one-token verbalisers). This is the one scoring kernel: probes and the bias audit both
  use it.
- :func:`tree_leaf_scores` expands a tree of alternatives (a canary's secret space) level by level
  from a shared prefix: the prefix runs once, each parent's children are one query that reuses
  the parent's KV cache, chunks bound memory, and subtrees whose running log-likelihood falls
  below a threshold are pruned (a leaf's log-likelihood is never above its ancestors').
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Tick = Callable[[int], None]


@dataclass
class SequenceScores:
    """Per-token log-probabilities of tokens 1..L-1 (numpy arrays), optionally with the mean and
    standard deviation of log p under the model's own next-token distribution (Min-K%++)."""

    logprobs: list[Any]
    mu: list[Any] | None = None
    sigma: list[Any] | None = None


def model_device(model: Any) -> Any:
    return next(iter(model.parameters())).device


def _inner(model: Any) -> Any:
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def _forward_params(model: Any) -> set[str]:
    return set(inspect.signature(_inner(model).forward).parameters)


def forward(
    model: Any,
    input_ids: Any,
    *,
    attention_mask: Any = None,
    position_ids: Any = None,
    cache: Any = None,
    use_cache: bool = False,
    keep_last: int = 0,
) -> tuple[Any, Any]:
    """One forward pass; returns (logits, cache). ``keep_last`` > 0 returns the logits of the last
    positions only (computed only there when the model supports ``logits_to_keep``). Bridges the
    ``cache``/``past_key_values`` and ``logits_to_keep`` names across transformers versions."""
    params = _forward_params(model)
    kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": use_cache}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    if cache is not None:
        kwargs["cache" if "cache" in params else "past_key_values"] = cache
    if keep_last:
        if "logits_to_keep" in params:
            kwargs["logits_to_keep"] = keep_last
        elif "num_logits_to_keep" in params:
            kwargs["num_logits_to_keep"] = keep_last
    out = model(**kwargs)
    # transformers 5 names it ``cache``; reading its ``past_key_values`` alias logs a deprecation
    fields = getattr(out, "__dataclass_fields__", {})
    new_cache = getattr(out, "cache" if "cache" in fields else "past_key_values", None)
    logits = out.logits[:, -keep_last:] if keep_last else out.logits
    return logits, new_cache


def token_budget(model: Any) -> int:
    """Tokens per batch so that the fp32 logits stay near 128 MiB."""
    vocab = int(getattr(getattr(model, "config", None), "vocab_size", 32000) or 32000)
    return max(256, (1 << 25) // vocab)


def token_logprobs(
    model: Any,
    sequences: Sequence[Sequence[int]],
    *,
    pad_id: int = 0,
    moments: bool = False,
    tick: Tick | None = None,
) -> SequenceScores:
    """Score every sequence (no per-sequence loop over the model): log p(x_t | x_<t), t >= 1."""
    import torch

    device = model_device(model)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    budget = token_budget(model)
    lps: list[Any] = [None] * len(sequences)
    mus: list[Any] = [None] * len(sequences)
    sds: list[Any] = [None] * len(sequences)
    start = 0
    with torch.no_grad():
        while start < len(order):
            longest = len(sequences[order[start]])
            end = start
            while end < len(order):
                longest = max(longest, len(sequences[order[end]]))
                if (end - start + 1) * longest > budget and end > start:
                    break
                end += 1
            batch = [sequences[i] for i in order[start:end]]
            width = max(len(s) for s in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, seq in enumerate(batch):
                ids[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
                mask[row, : len(seq)] = 1
            logits, _ = forward(model, ids.to(device), attention_mask=mask.to(device))
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            target = ids[:, 1:].to(device)
            tok = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).cpu().numpy()
            if moments:
                p = logp.exp()
                mu_t = (p * logp).sum(-1)
                var = (p * logp * logp).sum(-1) - mu_t * mu_t
                mu_np = mu_t.cpu().numpy()
                sd_np = var.clamp_min(1e-12).sqrt().cpu().numpy()
            for row, i in enumerate(order[start:end]):
                n = len(sequences[i]) - 1
                lps[i] = tok[row, :n]
                if moments:
                    mus[i] = mu_np[row, :n]
                    sds[i] = sd_np[row, :n]
            if tick is not None:
                tick(end - start)
            start = end
    return SequenceScores(lps, mus if moments else None, sds if moments else None)


def continuation_logprobs(
    model: Any,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    pad_id: int = 0,
    tick: Tick | None = None,
) -> list[float]:
    """log p(continuation | prefix) for each (prefix ids, continuation ids) pair.

    Sequences are left-padded (with matching position ids) so that every continuation ends at the
    last position; the vocabulary projection and the softmax then run only over the last
    ``max continuation + 1`` positions instead of all of them."""
    import torch

    device = model_device(model)
    seqs = [list(p) + list(c) for p, c in pairs]
    conts = [len(c) for _, c in pairs]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    budget = token_budget(model)
    out = [0.0] * len(seqs)
    start = 0
    with torch.no_grad():
        while start < len(order):
            end, width, keep = start, 0, 1
            while end < len(order):
                i = order[end]
                w, k = max(width, len(seqs[i])), max(keep, conts[i] + 1)
                if end > start and (
                    (end - start + 1) * k > budget or (end - start + 1) * w > 8 * budget
                ):
                    break
                width, keep, end = w, k, end + 1
            idx = order[start:end]
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - len(seqs[i]) :] = torch.tensor(seqs[i], dtype=torch.long)
                mask[row, width - len(seqs[i]) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            keep = min(keep, width)
            logits, _ = forward(
                model,
                ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                keep_last=keep,
            )
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            target = ids[:, width - keep + 1 :].to(device)
            tok = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).double().cpu()
            for row, i in enumerate(idx):
                out[i] = float(tok[row, tok.shape[1] - conts[i] :].sum()) if conts[i] else 0.0
            if tick is not None:
                tick(end - start)
            start = end
    return out


# -- tree expansion ---------------------------------------------------------------------------
def next_token_logprobs(
    model: Any,
    prefixes: Sequence[Sequence[int]],
    candidates: Sequence[int],
    *,
    pad_id: int = 0,
    tick: Tick | None = None,
) -> list[list[float]]:
    """``out[i][j]`` = log p(candidates[j] | prefixes[i]): one pass, last position only."""
    import torch

    device = model_device(model)
    order = sorted(range(len(prefixes)), key=lambda i: len(prefixes[i]))
    budget = token_budget(model)
    out: list[list[float]] = [[0.0] * len(candidates) for _ in prefixes]
    cand = torch.tensor(list(candidates), dtype=torch.long)
    start = 0
    with torch.no_grad():
        while start < len(order):
            end, width = start, 0
            while end < len(order):
                w = max(width, len(prefixes[order[end]]))
                if end > start and (end - start + 1) * w > 8 * budget:
                    break
                width, end = w, end + 1
            idx = order[start:end]
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - len(prefixes[i]) :] = torch.tensor(list(prefixes[i]))
                mask[row, width - len(prefixes[i]) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits, _ = forward(
                model,
                ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                keep_last=1,
            )
            logp = torch.log_softmax(logits[:, -1].float(), dim=-1).double().cpu()
            picked = logp[:, cand]
            for row, i in enumerate(idx):
                out[i] = [float(x) for x in picked[row]]
            if tick is not None:
                tick(end - start)
            start = end
    return out


class TreeBudgetExceeded(Exception):
    """The pruned tree would score more candidates than allowed."""


@dataclass
class TreeLeaves:
    scores: Any  # float64 numpy array: log-likelihood of every leaf kept
    indices: Any  # int64 numpy array: each leaf's mixed-radix position in the space
    scored: int  # tree nodes (partial and whole candidates) whose log-likelihood was computed


def _cache_layers(cache: Any) -> list[tuple[Any, Any]]:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))  # older transformers


def _select(cache: Any, index: Any) -> Any:
    from transformers import DynamicCache

    out = DynamicCache()
    for li, (k, v) in enumerate(_cache_layers(cache)):
        out.update(k[index], v[index], li)
    return out


def tree_leaf_scores(
    model: Any,
    *,
    prefix_ids: Sequence[int],
    slots: Sequence[Sequence[int]],
    threshold: float = float("-inf"),
    max_leaves: int = 2_000_000,
    chunk: int = 4096,
    tick: Tick | None = None,
) -> TreeLeaves:
    """Log-likelihood of every path through ``slots`` (one token id per alternative) after
    ``prefix_ids``, keeping leaves scoring >= ``threshold``. Raises :class:`TreeBudgetExceeded`
    when more than ``max_leaves`` tree nodes would be scored."""
    import numpy as np
    import torch

    device = model_device(model)
    depth = len(slots)
    alts = [torch.tensor(list(s), dtype=torch.long, device=device) for s in slots]
    kept_scores: list[Any] = []
    kept_index: list[Any] = []
    scored = 0

    def expand(cache: Any, logp_next: Any, node_scores: Any, node_index: Any, level: int) -> None:
        nonlocal scored
        a = alts[level]
        child = node_scores[:, None] + logp_next[:, a].double()  # [N, A]
        scored += child.numel()
        if scored > max_leaves:
            raise TreeBudgetExceeded
        index = node_index[:, None] * len(a) + torch.arange(len(a), device=device)
        keep = child >= threshold
        if level + 1 == depth:
            kept_scores.append(child[keep].cpu().numpy())
            kept_index.append(index[keep].cpu().numpy())
            if tick is not None:
                tick(int(child.numel()))
            return
        parents, which = keep.nonzero(as_tuple=True)
        per = max(1, chunk)
        for s in range(0, len(parents), per):
            p, w = parents[s : s + per], which[s : s + per]
            sub = _select(cache, p)
            logits, new_cache = forward(model, a[w][:, None], cache=sub, use_cache=True)
            nxt = torch.log_softmax(logits[:, -1].float(), dim=-1)
            expand(new_cache, nxt, child[p, w], index[p, w], level + 1)

    with torch.no_grad():
        ids = torch.tensor([list(prefix_ids)], dtype=torch.long, device=device)
        logits, cache = forward(model, ids, use_cache=True)
        first = torch.log_softmax(logits[:, -1].float(), dim=-1)
        expand(
            cache,
            first,
            torch.zeros(1, dtype=torch.float64, device=device),
            torch.zeros(1, dtype=torch.long, device=device),
            0,
        )
    scores = np.concatenate(kept_scores) if kept_scores else np.zeros(0)
    index = np.concatenate(kept_index) if kept_index else np.zeros(0, dtype=np.int64)
    return TreeLeaves(scores=scores, indices=index, scored=scored)
