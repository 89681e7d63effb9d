"""Planted mechanism bugs: each breaks an Opacus ``DPOptimizer`` the way a real bug would, while
the evidence keeps stating the planned mechanism. The mechanism audit must catch every one
(tests, ``benchmarks/mechanism_audit.py``, and a demo that shows a broken release failing).

Plant after ``make_private`` and before :class:`~.mechanism_audit.MechanismAudit` attaches
(``run_loop`` attaches it at its start). Methods are replaced on a subclass swapped in as the
optimizer's class, so no instance-level patch (finetrail's first-step check uses one) undoes them.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["PLANTED_BUGS", "plant"]

PLANTED_BUGS: dict[str, str] = {
    "noise_down_10": "the noise multiplier cut to 1/10 after make_private",
    "noise_down_1e4": "the noise multiplier cut to 1/10,000 after make_private",
    "sigma_overclaimed": "the noise multiplier used is 0.8x the one the evidence claims",
    "clipping_disabled": "per-sample gradients summed without clipping",
    "noise_cancelled": "the noise added, then subtracted again before the update",
    "normalisation_actual_batch": "the noisy sum divided by the realised batch size",
    "normalisation_scaled": "the noisy sum divided by twice the expected batch size",
}


def _swap(optimizer: Any, **methods: Any) -> None:
    cls = type(optimizer)
    optimizer.__class__ = type(f"Planted{cls.__name__}", (cls,), methods)


def _batch_size(optimizer: Any, hooks: Any) -> int:
    if hooks is not None and getattr(hooks, "_per_sample_gradient_norms", None) is not None:
        return int(hooks.per_sample_gradient_norms.numel())
    return int(optimizer._get_flat_grad_sample(optimizer.params[0]).shape[0])


def plant(optimizer: Any, bug: str, *, mode: str, hooks: Any = None) -> None:
    """Break ``optimizer`` (an Opacus ``DPOptimizer``) as :data:`PLANTED_BUGS` ``[bug]`` says."""
    if bug not in PLANTED_BUGS:
        raise ValueError(f"unknown planted bug {bug!r}; choose from {', '.join(PLANTED_BUGS)}")
    base = type(optimizer)
    if bug == "noise_down_10":
        optimizer.noise_multiplier /= 10
    elif bug == "noise_down_1e4":
        optimizer.noise_multiplier /= 1e4
    elif bug == "sigma_overclaimed":
        optimizer.noise_multiplier *= 0.8
    elif bug == "clipping_disabled":
        if mode == "ghost":
            hooks.max_grad_norm = math.inf  # coefficient 1 for every example
        else:

            def clip_and_accumulate(self: Any) -> None:
                for p in self.params:
                    g = self._get_flat_grad_sample(p).to(p.dtype).sum(0)
                    p.summed_grad = g if p.summed_grad is None else p.summed_grad + g

            _swap(optimizer, clip_and_accumulate=clip_and_accumulate)
    elif bug == "noise_cancelled":

        def add_noise(self: Any) -> None:
            base.add_noise(self)
            for p in self.params:
                p.grad = p.summed_grad.view_as(p).clone()

        _swap(optimizer, add_noise=add_noise)
    elif bug == "normalisation_actual_batch":

        def scale_grad(self: Any) -> None:
            b = max(1, _batch_size(self, hooks))
            for p in self.params:
                p.grad /= b

        _swap(optimizer, scale_grad=scale_grad)
    elif bug == "normalisation_scaled":
        optimizer.expected_batch_size = optimizer.expected_batch_size * 2
