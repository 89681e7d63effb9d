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
class CanaryFraming:
    """What the model saw before a canary's text in training: nothing (text data), or the chat
    rendering of the canary's conversation up to the assistant's reply. ``special``: whether the
    tokenizer adds its special tokens (False when a chat template writes its own)."""

    before: str = ""
    special: bool = True
    after: str = ""  # what the rendering writes after the canary's text (end of the turn)
    rendering: str | None = None  # the evidence sentence (None: plain text)


PLAIN = CanaryFraming()


@dataclass(frozen=True)
class SecretPlan:
    fmt: CanaryFormat
    prefix_ids: tuple[int, ...]
    slot_ids: tuple[tuple[int, ...], ...] | None  # None: the tokenizer merges characters
    framing: CanaryFraming = PLAIN

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
        full = tok.encode(
            self.framing.before + self.fmt.prefix + secret, special=self.framing.special
        )
        # the text goes on after the secret (the format's suffix): an end token the tokenizer
        # appends to this shorter text is not what the model saw after the secret in training
        ends = set(getattr(tok.tokenizer, "all_special_ids", None) or ())
        while len(full) > len(self.prefix_ids) and full[-1] in ends:
            full.pop()
        j = 0
        while j < min(len(full), len(self.prefix_ids)) and full[j] == self.prefix_ids[j]:
            j += 1
        j = max(j, 1)  # the first token is never scored
        return full[:j], full[j:]


def plan_for(
    tok: TokenizerAdapter,
    fmt: CanaryFormat,
    secrets: Sequence[str],
    *,
    framing: CanaryFraming = PLAIN,
) -> SecretPlan:
    """Decide whether the format's space can be expanded as a token tree with this tokenizer.
    The secret is scored after ``framing.before`` and the format's text before the secret."""
    special = framing.special
    prefix_ids = tuple(tok.encode(framing.before + fmt.prefix, special=special))
    slot_ids: list[tuple[int, ...]] = []
    for slot in fmt.slots:
        ids = []
        for alt in slot:
            enc = tok.encode(alt, special=False)
            if len(enc) != 1:
                return SecretPlan(fmt, prefix_ids, None, framing)
            ids.append(enc[0])
        if len(set(ids)) != len(ids):
            return SecretPlan(fmt, prefix_ids, None, framing)
        slot_ids.append(tuple(ids))
    plan = SecretPlan(fmt, prefix_ids, tuple(slot_ids), framing)
    rng = random.Random(0)
    checks = list(secrets) + [fmt.random_secret(rng) for _ in range(8)]
    for secret in checks:
        full = tok.encode(framing.before + fmt.render(secret), special=special)
        ctx, cont = plan.pair(tok, secret)
        if full[: len(ctx) + len(cont)] != ctx + cont:
            return SecretPlan(fmt, prefix_ids, None, framing)
    return plan


def secret_logprobs(
    model: Any,
    tok: TokenizerAdapter,
    canaries: Sequence[Canary],
    *,
    tick: Tick | None = None,
    framing: CanaryFraming = PLAIN,
) -> dict[str, float]:
    """Score every canary's secret, batched across canaries and formats."""
    by_format: dict[str, list[Canary]] = defaultdict(list)
    for c in canaries:
        by_format[c.format].append(c)
    pairs: list[tuple[list[int], list[int]]] = []
    ids: list[str] = []
    for name, group in sorted(by_format.items()):
        plan = plan_for(tok, format_by_name(name), [c.secret for c in group], framing=framing)
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
