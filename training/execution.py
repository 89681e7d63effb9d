"""Plan = execution: after the last step, the optimizer and Opacus's own accountant must show the
mechanism the evidence will state.

finetrail states epsilon from its plan (noise multiplier, sample rate, steps) through its PRV
accountant. This check reads what actually ran: the DP optimizer's noise multiplier and clipping
norm, its expected batch size, and the history of Opacus's accountant, which its optimizer hook
appends to at every real step (noise multiplier, sample rate, number of steps). Any difference
from the plan fails the run (:class:`~finetrail.errors.IntegrityError`; it is recorded as failed,
with no guarantee); a run that passes records what was compared.
"""

from __future__ import annotations

import math
from typing import Any

from finetrail.errors import IntegrityError

REL_TOL = 1e-9


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def check_execution(
    engine: Any, *, noise_multiplier: float, max_grad_norm: float, sample_rate: float,
    expected_batch_size: float, world_size: int, steps: int,
) -> dict[str, Any]:  # fmt: skip
    """Compare the optimizer and the accountant's history with the plan; the compared facts."""
    opt = engine.optimizer
    problems: list[str] = []

    def compare(what: str, ran: Any, planned: Any) -> None:
        if not _same(float(ran) if ran is not None else None, float(planned)):
            problems.append(f"{what}: ran {ran!r}, the plan (and the evidence) states {planned!r}")

    compare("noise multiplier", getattr(opt, "noise_multiplier", None), noise_multiplier)
    compare("clipping norm", getattr(opt, "max_grad_norm", None), max_grad_norm)
    # Opacus normalises the noisy sum by int(records x sample rate) per process (opacus#819):
    # the noise-to-sensitivity ratio, and so epsilon, is unchanged; any other divisor is a bug
    per_rank = getattr(opt, "expected_batch_size", None)
    share = expected_batch_size / world_size
    if per_rank is None or not any(_same(float(per_rank), x) for x in (share, math.floor(share))):
        problems.append(
            f"expected batch size per process: ran {per_rank!r}, the plan states {share:g} "
            f"(Opacus rounds it down to {math.floor(share)})"
        )
    history = list(getattr(getattr(engine.privacy_engine, "accountant", None), "history", []))
    accounted = sum(int(n) for _, _, n in history)
    for sigma, q, n in history:
        compare(f"accountant's noise multiplier ({n} steps)", sigma, noise_multiplier)
        compare(f"accountant's sample rate ({n} steps)", q, sample_rate)
    if accounted != steps:
        problems.append(f"steps: the accountant saw {accounted}, the run states {steps}")
    if problems:
        raise IntegrityError(
            "the DP mechanism that ran is not the one the evidence would state: "
            + "; ".join(problems),
            why="epsilon is computed from the plan; a run that executed another mechanism "
            "has no such guarantee",
            fix="report this with the config; the run is recorded as failed, with no guarantee",
        )
    return {
        "noise_multiplier": float(opt.noise_multiplier),
        "max_grad_norm": float(opt.max_grad_norm),
        # the per-process divisor Opacus applied (checked above: not None)
        "normalised_by": float(per_rank) if per_rank is not None else None,
        "accountant_history": [[float(s), float(q), int(n)] for s, q, n in history],
        "accountant_steps": accounted,
    }
