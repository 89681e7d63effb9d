"""The one-run audit's numerics: p-value against direct binomial sums, the bound against its
theoretical ceiling (property test), the note's golden ceilings, and the audit's decisions."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetrail.governance.probes.audit_math import (
    epsilon_lower_bound,
    p_value,
    theoretical_ceiling,
)
from finetrail.governance.probes.dp_audit import (
    canaries_needed,
    count_guesses,
    design_ceiling,
    one_run_audit,
    verdict,
)


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


def test_repeated_canaries_are_audited_as_units_in_their_own_family() -> None:
    """A 16-copy canary converted to a per-example bound by group privacy certifies nothing (its
    group delta is 1 at eps = 1); such canaries are tested as units and never split the
    per-example test's significance level."""
    rng = random.Random(3)
    reps = [1, 4, 16] * 100
    included = [rng.random() < 0.5 for _ in reps]
    # single-copy canaries uninformative, repeated ones perfectly separated
    scores = [
        (10.0 + rng.random() if inc else rng.random()) if k > 1 else rng.gauss(0, 1)
        for k, inc in zip(reps, included, strict=True)
    ]
    out = one_run_audit(scores=scores, included=included, repetitions=reps, delta=1e-5)
    assert out.single_copy == 100 and out.tests == 5
    assert [t.repetitions for t in out.groups] == [1] and out.groups[0].unit == "example"
    assert [(t.repetitions, t.unit) for t in out.repeated] == [(4, "canary"), (16, "canary")]
    assert out.bound == 0.0  # per example: nothing
    assert all(t.epsilon_lower_bound > 2.0 for t in out.repeated)  # per unit: clear leakage
    assert out.ceiling == pytest.approx(design_ceiling(canaries=100, delta=1e-5))


@pytest.mark.parametrize("selection", ["bonferroni", "split"])
@pytest.mark.parametrize("m", [2, 7, 30, 90, 400])
def test_reported_ceiling_is_the_planned_one(m: int, selection: str) -> None:
    rng = random.Random(m)
    included = [rng.random() < 0.5 for _ in range(m)]
    scores = [rng.random() for _ in range(m)]
    out = one_run_audit(
        scores=scores, included=included, repetitions=[1] * m, delta=1e-5, selection=selection
    )
    planned = design_ceiling(canaries=m, delta=1e-5, selection=selection)
    assert out.ceiling == pytest.approx(planned, abs=1e-6)
    # every guess right reaches the ceiling exactly
    perfect = one_run_audit(
        scores=[float(i) for i in included],
        included=included,
        repetitions=[1] * m,
        delta=1e-5,
        selection=selection,
    )
    assert perfect.bound <= planned + 1e-6


def test_ceiling_golden_and_saturation() -> None:
    """Bonferroni over 5 guess counts, 95%, delta 1e-5: the ceiling grows with the count, then
    the delta term stops it; a claim of 8 can never be contradicted, 4 needs a few hundred."""
    golden = {20: 1.35, 90: 2.941, 1000: 5.316}
    for m, expected in golden.items():
        assert round(design_ceiling(canaries=m, delta=1e-5), 3) == pytest.approx(expected, abs=1e-3)
    four = canaries_needed(claim=4.0, delta=1e-5)
    assert four.needed is not None
    assert design_ceiling(canaries=four.needed, delta=1e-5) > 4.0
    assert design_ceiling(canaries=four.needed - 1, delta=1e-5) <= 4.0
    eight = canaries_needed(claim=8.0, delta=1e-5, limit=20_000)
    assert eight.needed is None and 6.0 < eight.peak < 8.0


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
    assert verdict(out.bound, 1.0, out.ceiling) == "contradicted"
    assert verdict(out.bound, 8.0, out.ceiling) == "inconclusive"  # 200 canaries reach ~3.8
    assert verdict(out.bound, out.bound - 0.1, out.ceiling) == "contradicted"
    assert verdict(0.0, 3.0, out.ceiling) == "consistent"
    assert verdict(0.0, out.ceiling, out.ceiling) == "inconclusive"
    assert verdict(out.bound, None, out.ceiling) == "no_claim"


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
        assert len(out.groups) == 1 and len(out.repeated) == 2


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
