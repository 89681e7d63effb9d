"""Our epsilon against Google's dp-accounting: PLD within 2% of PRV, RDP equal to 1e-3."""

from __future__ import annotations

import logging

import dp_accounting
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from hypothesis import given, settings
from hypothesis import strategies as st

from finetrail.errors import ConfigError
from finetrail.training.accounting import (
    RDP_ORDERS,
    Accounting,
    calibrate_noise,
    checkpoint_steps,
    epsilon_prv,
    epsilon_rdp,
    epsilon_rdp_curve,
)

GRID = [
    # (sample rate, noise multiplier, steps, delta)
    (1 / 16, 0.6689, 48, 1e-5),
    (0.01, 1.0, 1000, 1e-5),
    (0.05, 0.8, 500, 1e-6),
    (0.2, 2.0, 100, 1e-5),
    (0.01, 0.7, 3000, 1e-5),
    (0.004, 1.2, 2000, 1e-6),
]


def _event(q: float, sigma: float, steps: int) -> dp_accounting.DpEvent:
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )


@pytest.mark.parametrize(("q", "sigma", "steps", "delta"), GRID)
def test_prv_matches_google_pld_and_rdp_matches_google_rdp(
    q: float, sigma: float, steps: int, delta: float
) -> None:
    ours = epsilon_prv(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta)
    pld = pld_privacy_accountant.PLDAccountant()
    pld.compose(_event(q, sigma, steps))
    google_pld = pld.get_epsilon(delta)
    assert abs(ours - google_pld) / google_pld <= 0.02, (ours, google_pld)

    logging.disable(logging.WARNING)  # dp-accounting logs about fractional orders
    try:
        rdp = rdp_privacy_accountant.RdpAccountant(orders=list(RDP_ORDERS))
        rdp.compose(_event(q, sigma, steps))
        google_rdp = rdp.get_epsilon(delta)
    finally:
        logging.disable(logging.NOTSET)
    ours_rdp = epsilon_rdp(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta)
    assert abs(ours_rdp - google_rdp) <= 1e-3, (ours_rdp, google_rdp)
    assert ours <= ours_rdp  # PRV is the tighter of the two here


def test_the_stated_epsilon_is_prv_never_gdp() -> None:
    from opacus.accountants import GaussianAccountant

    acc = Accounting.compute(noise_multiplier=1.0, sample_rate=0.01, steps=1000, delta=1e-5)
    assert acc.epsilon == epsilon_prv(
        noise_multiplier=1.0, sample_rate=0.01, steps=1000, delta=1e-5
    )
    gdp = GaussianAccountant()
    gdp.history = [(1.0, 0.01, 1000)]
    assert gdp.get_epsilon(1e-5) < 0.9 * acc.epsilon  # GDP under-reports: never the stated number


def test_calibrated_noise_reaches_the_target_golden() -> None:
    # Measured here with make_private_with_epsilon(8, 1e-5, epochs=3, sample rate 1/16): 0.6689.
    sigma = calibrate_noise(target_epsilon=8.0, delta=1e-5, sample_rate=1 / 16, steps=48)
    assert sigma == pytest.approx(0.6689, abs=1e-3)
    eps = epsilon_prv(noise_multiplier=sigma, sample_rate=1 / 16, steps=48, delta=1e-5)
    assert 7.9 <= eps <= 8.0


def test_accounting_record_curve_ends_at_the_final_epsilon() -> None:
    acc = Accounting.compute(noise_multiplier=1.0, sample_rate=1 / 6, steps=12, delta=1e-3)
    steps = [p.step for p in acc.epsilon_per_step]
    assert steps == checkpoint_steps(12) == [3, 6, 9, 12]
    assert acc.epsilon_per_step[-1].epsilon == acc.epsilon
    assert acc.epsilon_per_step[-1].epsilon_rdp == acc.epsilon_rdp
    eps = [p.epsilon for p in acc.epsilon_per_step]
    assert eps == sorted(eps)


def test_checkpoints_skip_step_one_unless_it_is_the_last() -> None:
    assert checkpoint_steps(1) == [1]
    assert checkpoint_steps(4) == [2, 3, 4]
    assert checkpoint_steps(0) == []
    assert checkpoint_steps(1000) == [250, 500, 750, 1000]


def test_no_noise_means_no_epsilon() -> None:
    with pytest.raises(ConfigError, match="noise_multiplier must be positive"):
        epsilon_prv(noise_multiplier=0.0, sample_rate=0.1, steps=10, delta=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    q=st.floats(0.001, 0.5),
    sigma=st.floats(0.5, 5.0),
    steps=st.integers(1, 5000),
)
def test_rdp_epsilon_grows_with_steps_and_shrinks_with_noise(
    q: float, sigma: float, steps: int
) -> None:
    at = epsilon_rdp_curve(noise_multiplier=sigma, sample_rate=q, delta=1e-5)
    assert at(steps) <= at(steps + 1) + 1e-12
    assert at(steps) == pytest.approx(
        epsilon_rdp(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5)
    )
    more_noise = epsilon_rdp(noise_multiplier=sigma * 1.5, sample_rate=q, steps=steps, delta=1e-5)
    assert more_noise <= at(steps) + 1e-12
