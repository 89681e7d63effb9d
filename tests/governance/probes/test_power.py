"""The audit must have power (issue 5, item 6).

The non-private control trained with canaries must show clear memorisation: high exposure for
repeated canaries, a positive empirical epsilon lower bound, extracted canary secrets, a
membership signal. A DP run (LoRA under Opacus, epsilon 4) on the same data and canaries must
show a bound at or below its claimed epsilon, and no such memorisation.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from finetrail.governance.evidence.probes import ProbeSubject
from finetrail.governance.probes import (
    DPClaim,
    ProbeContext,
    ProbeModels,
    ProbeRun,
    run_probes,
    weights_sha256,
)

pytestmark = pytest.mark.slow


def probe(
    model: Any,
    tinylm: SimpleNamespace,
    study: SimpleNamespace,
    *,
    claim: DPClaim | None = None,
    only: str | None = None,
) -> ProbeRun:
    ctx = ProbeContext(
        models=ProbeModels(model=model, tokenizer=tinylm.tokenizer, base_model=tinylm.base),
        subject=ProbeSubject(adapter_sha256=weights_sha256(model, trainable_only=True)),
        canaries=study.canary_set,
        train_texts=study.texts,
        heldout_texts=study.heldout,
        claim=claim,
    )
    return run_probes(ctx, only=only)


@pytest.fixture(scope="module")
def control_run(tinylm: SimpleNamespace, study: SimpleNamespace) -> tuple[ProbeRun, float]:
    with tinylm.one_thread():
        t0 = time.perf_counter()
        run = probe(study.control, tinylm, study)
        return run, time.perf_counter() - t0


@pytest.fixture(scope="module")
def dp_run(tinylm: SimpleNamespace, study: SimpleNamespace) -> tuple[ProbeRun, float]:
    with tinylm.one_thread():
        x, m = tinylm.encode(tinylm.tokenizer, study.texts)
        model, spent = tinylm.train_dp_lora(tinylm.base, x, m, epsilon=4.0, epochs=4, seed=2)
        claim = DPClaim(epsilon=spent, delta=1e-5, accountant="prv")
        run = probe(model, tinylm, study, claim=claim, only="exposure,dp-audit")
        return run, spent


def test_control_exposure_is_high_for_repeated_canaries(
    control_run: tuple[ProbeRun, float],
) -> None:
    exposure = control_run[0].records["exposure"]
    reps = exposure.by_repetition
    assert set(reps) == {"1", "4", "16"}
    assert reps["16"].mean_bits > 8.0  # of 19.93 possible; a random secret scores about 1.44
    assert reps["16"].max_bits > 14.0
    assert reps["16"].mean_bits > reps["4"].mean_bits > exposure.controls.mean_bits
    assert exposure.controls.mean_bits < 3.0
    assert exposure.formats[0].method == "exact_tree"


def test_control_has_a_positive_empirical_lower_bound(control_run: tuple[ProbeRun, float]) -> None:
    audit = control_run[0].records["dp_audit"]
    assert audit.verdict == "no_claim"
    assert audit.single_copy_canaries == 40
    assert audit.empirical_epsilon_lower_bound <= audit.ceiling  # per example, 40 canaries
    # repeated canaries, audited as units (never converted to a per-example bound)
    sixteen = next(g for g in audit.repeated if g.repetitions == 16)
    assert sixteen.unit == "canary"
    assert sixteen.correct == sixteen.guesses_in + sixteen.guesses_out  # every guess right
    assert sixteen.epsilon_lower_bound > 0.0


def test_control_leaks_canary_secrets_and_membership(control_run: tuple[ProbeRun, float]) -> None:
    run = control_run[0]
    extraction = run.records["extraction"]
    assert extraction.canary_secrets_extracted >= 1
    assert extraction.memorized_identifiers >= extraction.canary_secrets_extracted
    assert extraction.control_secrets_emitted == 0
    for example in extraction.masked_examples:
        assert not any(ch.isdigit() for ch in example.masked_value + example.masked_prompt_tail)
    membership = run.records["membership"]
    assert membership.max_auc > 0.6
    assert membership.attacks["reference"].auc >= membership.attacks["loss"].auc - 0.05
    # Held-out records come from the same generator: the base model cannot tell them apart.
    assert membership.exchangeability is not None and membership.exchangeability.ok
    assert abs(membership.exchangeability.base_auc - 0.5) < 0.1


def test_a_held_out_set_of_another_kind_is_flagged(
    tinylm: SimpleNamespace, study: SimpleNamespace
) -> None:
    """Word-reversed held-out notes (same tokens, other kind of text): the attacks would score the
    shift, so the record says the membership figures are not a memorisation measure."""
    shifted = SimpleNamespace(**vars(study))
    shifted.heldout = [" ".join(reversed(t.split())) for t in study.heldout]
    with tinylm.one_thread():
        run = probe(study.control, tinylm, shifted, only="mia")
    ex = run.records["membership"].exchangeability
    assert ex is not None and not ex.ok
    assert ex.base_auc_ci.low > 0.5 + ex.tolerance


def test_full_suite_runs_in_about_two_minutes(control_run: tuple[ProbeRun, float]) -> None:
    run, seconds = control_run
    assert set(run.records) == {"exposure", "extraction", "membership", "dp_audit"}
    assert seconds < 120, run.seconds


def test_dp_run_bound_is_within_its_claim(dp_run: tuple[ProbeRun, float]) -> None:
    run, spent = dp_run
    audit = run.records["dp_audit"]
    assert audit.claimed_epsilon == pytest.approx(spent)
    assert 3.5 < spent <= 4.0 + 1e-6
    assert audit.empirical_epsilon_lower_bound <= spent
    # 40 single-copy canaries reach a ceiling near 2.2 < 4: the audit cannot contradict the
    # claim and says so (it never reads "consistent" where it could not have failed)
    assert audit.ceiling < spent
    assert audit.verdict == "inconclusive"


def test_dp_removes_the_memorisation(
    dp_run: tuple[ProbeRun, float], control_run: tuple[ProbeRun, float]
) -> None:
    dp = dp_run[0].records["exposure"].by_repetition["16"].mean_bits
    control = control_run[0].records["exposure"].by_repetition["16"].mean_bits
    assert dp < control - 4.0
    assert dp < 5.0
