"""Elastic weight consolidation against the base model (Kirkpatrick et al., PNAS 2017).

The penalty ``(strength / 2) * sum_i F_i (theta_i - theta*_i)^2`` pulls the trainable tensors
towards their starting values (for adapters: the values that reproduce the base model), weighted
by a diagonal Fisher information ``F`` estimated on the *generic* (public) corpus as the mean
squared per-example gradient of the language-model loss.

Why its gradient is added *after* Opacus has privatised the batch gradient: the penalty depends
only on the current parameters (themselves outputs of the DP mechanism) and on public data, so
adding ``strength * F * (theta - theta*)`` to the noised gradient is post-processing and costs no
privacy. Putting it into each example's loss instead would send it through per-example clipping:
it would use up part of every example's clipping budget, and be scaled down with the example.
"""

from __future__ import annotations

from typing import Any

import torch

from finetrail.training.dp_guards import model_inputs, sequence_loss

__all__ = ["EWC"]


class EWC:
    def __init__(
        self,
        *,
        params: list[tuple[str, torch.Tensor]],
        fisher: dict[str, torch.Tensor],
        strength: float,
    ) -> None:
        self.params = params
        self.fisher = fisher
        self.anchor = {n: p.detach().clone() for n, p in params}
        self.strength = strength

    @classmethod
    def estimate(
        cls,
        *,
        model: Any,
        method: str,
        params: list[tuple[str, torch.Tensor]],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        strength: float,
    ) -> EWC:
        """Diagonal Fisher from per-example gradients on the generic records given."""
        was_training = model.training
        model.eval()
        tensors = [p for _, p in params]
        fisher = {n: torch.zeros_like(p) for n, p in params}
        n = input_ids.shape[0]
        for i in range(n):
            ids, mask = input_ids[i : i + 1], attention_mask[i : i + 1]
            length = int(mask.sum())
            ids, mask = ids[:, :length], mask[:, :length]
            logits = model(**model_inputs(ids, mask, method)).logits
            loss = sequence_loss(logits, ids, mask).sum()
            grads = torch.autograd.grad(loss, tensors, allow_unused=True)
            for (name, _), g in zip(params, grads, strict=True):
                if g is not None:
                    fisher[name] += g.detach() ** 2 / n
        model.train(was_training)
        return cls(params=params, fisher=fisher, strength=strength)

    def penalty(self) -> float:
        with torch.no_grad():
            total = sum(
                float((self.fisher[n] * (p - self.anchor[n]) ** 2).sum()) for n, p in self.params
            )
        return 0.5 * self.strength * total

    def add_gradient(self) -> None:
        """Add the penalty's gradient to ``p.grad`` (call after privatisation, before the update)."""
        with torch.no_grad():
            for n, p in self.params:
                g = self.strength * self.fisher[n] * (p - self.anchor[n])
                if p.grad is None:
                    p.grad = g
                else:
                    p.grad.add_(g)
