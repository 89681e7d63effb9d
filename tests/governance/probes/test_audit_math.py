"""The one-run audit's numerics: p-value against direct binomial sums, the bound against its
theoretical ceiling (property test), the note's golden ceilings, and the audit's decisions."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetrail.governance.probes.audit_math import (
    GroupPrivacy,
    epsilon_lower_bound,
    p_value,
    theoretical_ceiling,
)
from finetrail.governance.probes.dp_audit import count_guesses, one_run_audit, verdict


def direct_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The note's formula summed term by term in plain Python (no scipy)."""
    q = math.exp(eps) / (1 + math.exp(eps))
    pmf = [math.comb(r, k) * q**k * (1 - q) ** (r - k) for k in range(r + 1)]
    beta = math.fsum(pmf[v:])
    alpha = max(math.fsum(pmf[v - i : v]) / i for i in range(1, v + 1))
    return min(1.0, beta + alpha * delta * 2 * m)


GRID = [
    (m, r, v, eps)
    for m, r in ((10, 4), (50, 20), (100, 60), (200, 200))
    for v in sorted({1, r // 2, (3 * r) // 4, r})
    for eps in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
]


@pytest.mark.parametrize(("m", "r", "v", "eps"), GRID)
@pytest.mark.parametrize("delta", [0.0, 1e-5, 1e-2])
def test_p_value_matches_direct_binomial_sums(
    m: int, r: int, v: int, eps: float, delta: float
) -> None:
    assert p_value(m=m, r=r, v=v, epsilon=eps, delta=delta) == pytest.approx(
        direct_p_value(m, r, v, eps, delta), rel=1e-9, abs=1e-12
    )


def test_p_value_of_zero_correct_is_one() -> None:
    assert p_value(m=10, r=5, v=0, epsilon=1.0, delta=1e-5) == 1.0


@pytest.mark.parametrize(("m", "r", "v"), [(5, 6, 1), (5, 4, 5), (5, 2, -1)])
def test_p_value_rejects_impossible_counts(m: int, r: int, v: int) -> None:
    with pytest.raises(ValueError, match="need 0 <= v <= r <= m"):
        p_value(m=m, r=r, v=v, epsilon=1.0, delta=0.0)


@pytest.mark.parametrize(("m", "expected"), [(1000, 5.78), (10_000, 7.83)])
def test_note_ceilings_golden(m: int, expected: float) -> None:
    """shared/notes/dp-pitfalls.md: all guesses right, 95%, delta 1e-5."""
    bound = epsilon_lower_bound(m=m, r=m, v=m, delta=1e-5, level=0.05)
    assert round(bound, 2) == expected


def test_bound_is_the_largest_rejected_epsilon() -> None:
    bound = epsilon_lower_bound(m=100, r=60, v=55, delta=1e-5)
    assert p_value(m=100, r=60, v=55, epsilon=bound, delta=1e-5) <= 0.05
    assert p_value(m=100, r=60, v=55, epsilon=bound + 1e-4, delta=1e-5) > 0.05


def test_chance_level_guessing_gives_no_bound() -> None:
    assert epsilon_lower_bound(m=100, r=100, v=55, delta=1e-5) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(min_value=1, max_value=3000),
    data=st.data(),
    delta=st.sampled_from([0.0, 1e-6, 1e-5, 1e-3]),
    level=st.sampled_from([0.05, 0.01, 0.05 / 15]),
)
def test_bound_never_exceeds_theoretical_ceiling(
    m: int, data: st.DataObject, delta: float, level: float
) -> None:
    r = data.draw(st.integers(min_value=1, max_value=m))
    v = data.draw(st.integers(min_value=0, max_value=r))
    bound = epsilon_lower_bound(m=m, r=r, v=v, delta=delta, level=level)
    ceiling = theoretical_ceiling(r=r, level=level)
    assert 0.0 <= bound <= ceiling + 1e-6
    # and never above the bound had every guess been right
    assert bound <= epsilon_lower_bound(m=m, r=r, v=r, delta=delta, level=level) + 1e-6


def test_group_privacy_divides_the_bound() -> None:
    one = epsilon_lower_bound(m=40, r=40, v=40, delta=0.0, level=0.01)
    four = epsilon_lower_bound(m=40, r=40, v=40, delta=0.0, level=0.01, group=GroupPrivacy(4))
    assert four == pytest.approx(one / 4, rel=1e-4)
    assert GroupPrivacy(3).delta(1.0, 1e-5) == pytest.approx(3 * math.e**2 * 1e-5)
    assert GroupPrivacy(16).delta(100.0, 1e-5) == 1.0


def test_count_guesses_top_in_bottom_out() -> None:
    scores = [9.0, 8.0, 7.0, 1.0, 0.0, -1.0]
    included = [True, True, False, False, True, False]
    # top 2 IN (both right), bottom 2 OUT (index 4 wrong, index 5 right)
    assert count_guesses(scores, included, 2, 2) == 3


def test_audit_of_perfectly_separated_canaries_is_positive_and_contradicts_small_claims() -> None:
    rng = random.Random(0)
    included = [rng.random() < 0.5 for _ in range(200)]
    scores = [10.0 + rng.random() if inc else rng.random() for inc in included]
    out = one_run_audit(scores=scores, included=included, repetitions=[1] * 200, delta=1e-5)
    assert out.tests == 5
    assert out.best is not None and out.best.correct == out.best.guesses_in + out.best.guesses_out
    assert 2.0 < out.bound <= out.ceiling
    assert verdict(out.bound, 1.0) == "contradicted"
    assert verdict(out.bound, 8.0) == "consistent"
    assert verdict(out.bound, None) == "no_claim"


def test_audit_of_uninformative_scores_finds_nothing() -> None:
    rng = random.Random(1)
    included = [rng.random() < 0.5 for _ in range(300)]
    scores = [rng.gauss(0, 1) for _ in included]
    for selection in ("bonferroni", "split"):
        out = one_run_audit(
            scores=scores,
            included=included,
            repetitions=[1, 4, 16] * 100,
            delta=1e-5,
            selection=selection,
        )
        assert out.bound == 0.0
        assert len(out.groups) == 3


def test_split_selection_tests_each_group_once() -> None:
    rng = random.Random(2)
    included = [rng.random() < 0.5 for _ in range(120)]
    scores = [5.0 + rng.random() if inc else rng.random() for inc in included]
    out = one_run_audit(
        scores=scores, included=included, repetitions=[1] * 120, delta=1e-5, selection="split"
    )
    assert out.tests == 1
    assert out.best is not None and out.best.canaries == 60  # the held-out half
    assert out.bound > 0.5
