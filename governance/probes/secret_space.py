"""How a canary format's secrets map to tokens, and their log-likelihood under a model.

The score of a secret is log p(secret tokens | the canary's text before the secret). When the
tokenizer gives one token per slot alternative (digits split individually, for example) and the
canaries tokenize as ``prefix + one token per character``, the whole space can be expanded as a
tree (:func:`~finetrail.governance.probes.scoring.tree_leaf_scores`) and ranked exactly;
otherwise secrets are scored as ordinary continuations and exposure is extrapolated.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from finetrail.governance.probes.canaries import Canary
from finetrail.governance.probes.formats import CanaryFormat, format_by_name
from finetrail.governance.probes.models import TokenizerAdapter
from finetrail.governance.probes.scoring import Tick, continuation_logprobs


@dataclass(frozen=True)
class SecretPlan:
    fmt: CanaryFormat
    prefix_ids: tuple[int, ...]
    slot_ids: tuple[tuple[int, ...], ...] | None  # None: the tokenizer merges characters

    @property
    def tree(self) -> bool:
        return self.slot_ids is not None

    def pair(self, tok: TokenizerAdapter, secret: str) -> tuple[list[int], list[int]]:
        """(context ids, secret ids) whose continuation log-probability is the secret's score."""
        if self.slot_ids is not None:
            cont = [
                ids[slot.index(ch)]
                for ch, ids, slot in zip(secret, self.slot_ids, self.fmt.slots, strict=True)
            ]
            return list(self.prefix_ids), cont
        full = tok.encode(self.fmt.prefix + secret, special=True)
        j = 0
        while j < min(len(full), len(self.prefix_ids)) and full[j] == self.prefix_ids[j]:
            j += 1
        j = max(j, 1)  # the first token is never scored
        return full[:j], full[j:]


def plan_for(tok: TokenizerAdapter, fmt: CanaryFormat, secrets: Sequence[str]) -> SecretPlan:
    """Decide whether the format's space can be expanded as a token tree with this tokenizer."""
    prefix_ids = tuple(tok.encode(fmt.prefix, special=True))
    slot_ids: list[tuple[int, ...]] = []
    for slot in fmt.slots:
        ids = []
        for alt in slot:
            enc = tok.encode(alt, special=False)
            if len(enc) != 1:
                return SecretPlan(fmt, prefix_ids, None)
            ids.append(enc[0])
        if len(set(ids)) != len(ids):
            return SecretPlan(fmt, prefix_ids, None)
        slot_ids.append(tuple(ids))
    plan = SecretPlan(fmt, prefix_ids, tuple(slot_ids))
    rng = random.Random(0)
    checks = list(secrets) + [fmt.random_secret(rng) for _ in range(8)]
    for secret in checks:
        full = tok.encode(fmt.render(secret), special=True)
        ctx, cont = plan.pair(tok, secret)
        if full[: len(ctx) + len(cont)] != ctx + cont:
            return SecretPlan(fmt, prefix_ids, None)
    return plan


def secret_logprobs(
    model: Any, tok: TokenizerAdapter, canaries: Sequence[Canary], *, tick: Tick | None = None
) -> dict[str, float]:
    """Score every canary's secret, batched across canaries and formats."""
    by_format: dict[str, list[Canary]] = defaultdict(list)
    for c in canaries:
        by_format[c.format].append(c)
    pairs: list[tuple[list[int], list[int]]] = []
    ids: list[str] = []
    for name, group in sorted(by_format.items()):
        plan = plan_for(tok, format_by_name(name), [c.secret for c in group])
        for c in group:
            pairs.append(plan.pair(tok, c.secret))
            ids.append(c.id)
    scores = continuation_logprobs(model, pairs, pad_id=tok.pad_id, tick=tick)
    return dict(zip(ids, scores, strict=True))


def candidate_logprobs(
    model: Any,
    tok: TokenizerAdapter,
    plan: SecretPlan,
    secrets: Sequence[str],
    *,
    tick: Tick | None = None,
) -> list[float]:
    pairs = [plan.pair(tok, s) for s in secrets]
    return continuation_logprobs(model, pairs, pad_id=tok.pad_id, tick=tick)
