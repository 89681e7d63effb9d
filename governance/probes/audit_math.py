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

__all__ = [
    "clopper_pearson",
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


def epsilon_lower_bound(
    *,
    m: int,
    r: int,
    v: int,
    delta: float,
    level: float = 0.05,
    tolerance: float = 1e-6,
    eps_max: float = 100.0,
) -> float:
    """The largest eps whose p-value is <= ``level``; 0.0 when even eps = 0 is not rejected.

    The eps is that of the unit each canary is (one example for a canary inserted once). No
    group-privacy conversion is offered: for a k-copy canary the group delta k e^((k-1) eps) delta
    reaches 1 at small eps and the converted bound certifies almost nothing."""
    _check_counts(m, r, v)
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")

    def pv(eps: float) -> float:
        return p_value(m=m, r=r, v=v, epsilon=eps, delta=delta)

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


def clopper_pearson(k: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion k / n.

    Conservative: its coverage is at least ``confidence`` for every true proportion."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    from scipy.stats import beta

    a = (1 - confidence) / 2
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return low, high


def _check_counts(m: int, r: int, v: int) -> None:
    if not (0 <= v <= r <= m):
        raise ValueError(f"need 0 <= v <= r <= m, got m={m}, r={r}, v={v}")
