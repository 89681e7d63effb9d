"""The one-run empirical epsilon lower bound (Steinke, Nasr, Jagielski, NeurIPS 2023).

Each of m canaries is included independently with probability 1/2. After one training run the
auditor scores every canary, guesses IN for the top ``k+`` and OUT for the bottom ``k-``: ``r``
guesses, ``v`` of them right. For an (eps, delta)-DP mechanism

    P[W >= v] <= beta + alpha * delta * 2m,     q = e^eps / (1 + e^eps),
    beta  = P[Binomial(r, q) >= v],
    alpha = max over i = 1..v of (1/i) * P[v > Binomial(r, q) >= v - i].

The lower bound is the largest eps whose p-value stays at or below the significance level, found
by bisection. With all r guesses right and delta = 0 the bound can never exceed
``log(a / (1 - a))`` with ``a = level ** (1 / r)``: :func:`theoretical_ceiling`.

Pure numerics (numpy, scipy imported inside the functions); no model, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "GroupPrivacy",
    "epsilon_lower_bound",
    "p_value",
    "theoretical_ceiling",
]


def _q(eps: float) -> float:
    # e^eps / (1 + e^eps) without overflow
    return 1.0 / (1.0 + math.exp(-eps))


def p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Upper bound on P[at least v of r guesses right] under (epsilon, delta)-DP, capped at 1."""
    _check_counts(m, r, v)
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError("epsilon must be >= 0 and delta in [0, 1]")
    if v == 0:
        return 1.0
    import numpy as np
    from scipy.stats import binom

    q = _q(epsilon)
    beta = float(binom.sf(v - 1, r, q))
    # S_i = P[v - i <= B <= v - 1] for i = 1..v, built by a reversed cumulative sum of the pmf.
    pmf = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # pmf(v-1), pmf(v-2), ..., pmf(0)
    sums = np.cumsum(pmf)
    alpha = float(np.max(sums / np.arange(1, v + 1)))
    return min(1.0, beta + alpha * delta * 2 * m)


@dataclass(frozen=True)
class GroupPrivacy:
    """Each audited canary is ``k`` copies of one example: under per-example (eps, delta)-DP the
    canary is (k eps, k e^((k-1) eps) delta)-DP (group privacy). k = 1 is the plain audit."""

    k: int = 1

    def epsilon(self, eps: float) -> float:
        return self.k * eps

    def delta(self, eps: float, delta: float) -> float:
        if self.k == 1:
            return delta
        exponent = (self.k - 1) * eps
        if exponent > 700:  # e^700 overflows float; the group delta is vacuous long before
            return 1.0
        return min(1.0, self.k * math.exp(exponent) * delta)


def epsilon_lower_bound(
    *,
    m: int,
    r: int,
    v: int,
    delta: float,
    level: float = 0.05,
    group: GroupPrivacy = GroupPrivacy(),
    tolerance: float = 1e-6,
    eps_max: float = 100.0,
) -> float:
    """The largest per-example eps whose p-value is <= ``level``; 0.0 when even eps = 0 is not
    rejected. ``group`` converts per-example eps to the canary unit (copies per canary)."""
    _check_counts(m, r, v)
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")

    def pv(eps: float) -> float:
        return p_value(m=m, r=r, v=v, epsilon=group.epsilon(eps), delta=group.delta(eps, delta))

    if v == 0 or pv(0.0) > level:
        return 0.0
    lo, hi = 0.0, 1.0
    while pv(hi) <= level:
        lo, hi = hi, hi * 2
        if hi > eps_max:
            return eps_max
    while hi - lo > tolerance:
        mid = (lo + hi) / 2
        if pv(mid) <= level:
            lo = mid
        else:
            hi = mid
    return lo


def theoretical_ceiling(*, r: int, level: float = 0.05) -> float:
    """The bound with every one of r guesses right and delta = 0: log(a / (1 - a)), a = level^(1/r).

    No valid audit with r guesses can report more (the delta term only raises the p-value)."""
    if r < 1:
        return 0.0
    a = level ** (1.0 / r)
    if a <= 0.5:
        return 0.0
    return math.log(a / (1.0 - a))


def _check_counts(m: int, r: int, v: int) -> None:
    if not (0 <= v <= r <= m):
        raise ValueError(f"need 0 <= v <= r <= m, got m={m}, r={r}, v={v}")
