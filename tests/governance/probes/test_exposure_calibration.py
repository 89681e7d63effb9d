"""Exposure calibrated against the base model: each canary's exposure under the base model is
computed the same way and subtracted, so a secret the base model already likes does not read as
memorised, while one the fine-tune learnt still does; the record says which calibration ran."""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest

from finetrail.governance.evidence.probes import CanaryExposure, ExposureEvidence, ProbeSubject
from finetrail.governance.probes import ProbeConfig, ProbeContext, ProbeModels, run_probes
from finetrail.governance.probes.canaries import build_canary_set, draw_canaries
from finetrail.governance.probes.context import ExposureConfig
from finetrail.governance.probes.exposure import calibrate, reference_bits, sampled_lower_bits
from finetrail.governance.probes.formats import EMAIL, PIN6

SUBJECT = ProbeSubject(adapter_sha256="a" * 64)


def _exposure(models: ProbeModels, canaries: Any, **exposure: Any) -> ExposureEvidence:
    ctx = ProbeContext(
        models=models,
        subject=SUBJECT,
        canaries=canaries,
        config=ProbeConfig(exposure=ExposureConfig(**exposure)),
    )
    rec: ExposureEvidence = run_probes(ctx, only="exposure").records["exposure"]
    return rec


def _memorise(model: Any, texts: list[str], helpers: Any, tok: Any) -> Any:
    model = copy.deepcopy(model)
    x, m = helpers.encode(tok, texts)
    helpers.train_plain(model, x, m, steps=40, batch=8, lr=1e-2)
    return model.eval()


def test_a_secret_the_base_model_already_likes_is_not_read_as_memorised(
    random_lm: Any, tiny_tokenizer: Any, helpers: Any
) -> None:
    cs = build_canary_set(draw_canaries(formats=[PIN6], m=4, seed=11), repetitions=(1,))
    liked, learnt = cs.canaries[0], cs.canaries[1]
    # the base model already likes one secret (it was in its pretraining data, and public text
    # the fine-tune sees keeps it there); the fine-tune learns another
    base = _memorise(random_lm, [liked.text] * 8, helpers, tiny_tokenizer)
    tuned = _memorise(base, [learnt.text] * 6 + [liked.text] * 2, helpers, tiny_tokenizer)
    models = ProbeModels(model=tuned, tokenizer=tiny_tokenizer, base_model=base)
    rec = _exposure(models, cs)
    by_id = {c.id: c for c in rec.canaries}
    assert rec.calibration == "base_model_reference" and rec.calibration_note is None
    assert by_id[liked.id].exposure_bits > 15  # raw exposure reads it as memorised
    assert by_id[liked.id].base_exposure_bits > 15  # but the base model ranks it as high
    assert by_id[liked.id].calibrated_bits < 2  # ... so the fine-tune gets no credit for it
    assert by_id[learnt.id].exposure_bits > 15
    assert by_id[learnt.id].calibrated_bits > 10  # what the fine-tune learnt still reads
    for c in rec.canaries:
        assert c.method == "exact" and c.base_exposure_bits is not None
        assert c.calibrated_bits == pytest.approx(
            max(0.0, c.exposure_bits - c.base_exposure_bits), abs=1e-4
        )
    inserted = [c.calibrated_bits for c in rec.canaries if c.included]
    assert rec.calibrated_max_bits == (max(inserted) if inserted else None)
    assert rec.calibrated_controls is not None
    assert rec.calibrated_controls.n == sum(not c.included for c in cs.canaries)
    # the raw figures are those of an uncalibrated run
    raw = _exposure(models, cs, calibrate_with_base=False)
    assert raw.calibration == "none"
    assert raw.calibration_note == "calibration disabled (exposure.calibrate_with_base: false)"
    assert [c.exposure_bits for c in raw.canaries] == [c.exposure_bits for c in rec.canaries]
    assert all(c.calibrated_bits is None for c in raw.canaries)
    assert ExposureEvidence.model_validate_json(rec.model_dump_json()) == rec


def test_no_base_model_says_so(random_lm: Any, tiny_tokenizer: Any) -> None:
    cs = build_canary_set(draw_canaries(formats=[PIN6], m=2, seed=3), repetitions=(1,))
    rec = _exposure(ProbeModels(model=random_lm, tokenizer=tiny_tokenizer), cs)
    assert rec.calibration == "none"
    assert rec.calibration_note == "no base model given to the probe"
    assert rec.calibrated_max_bits is None and rec.calibrated_by_repetition == {}


def test_sampled_calibration_subtracts_a_lower_bound(helpers: Any) -> None:
    """No tree over the space (digits merge): both figures are sampled; the base's is taken from
    below, so the calibrated figure stays on the safe side."""
    tokenizer = helpers.build_tokenizer(helpers.corpus(300, 5), split_digits=False)
    tuned = helpers.build_model(len(tokenizer), hidden=32, seed=4).eval()
    base = helpers.build_model(len(tokenizer), hidden=32, seed=5).eval()
    cs = build_canary_set(draw_canaries(formats=[PIN6, EMAIL], m=4, seed=2), repetitions=(1,))
    models = ProbeModels(model=tuned, tokenizer=tokenizer, base_model=base)
    rec = _exposure(models, cs, samples=300)
    assert rec.calibration == "base_model_reference"
    for c in rec.canaries:
        assert c.method == "sampled_upper_bound"
        assert c.base_exposure_bits is not None and c.calibrated_bits is not None
        assert c.calibrated_bits == pytest.approx(
            max(0.0, c.exposure_bits - c.base_exposure_bits), abs=1e-4
        )


def test_sampled_lower_bound_never_over_reads() -> None:
    """The base model's sampled exposure is subtracted from below: the bound exceeds the true
    exposure in at most about 5% of random draws."""
    rng = random.Random(0)
    for true_bits in (1.0, 3.0, 6.0, 9.0):
        tail = 2.0**-true_bits
        over = 0
        for _ in range(200):
            above = sum(rng.random() < tail for _ in range(4000))
            if sampled_lower_bits(above, 4000) > true_bits + 1e-9:
                over += 1
        assert over <= 0.05 * 200 + 5, (true_bits, over)
    assert sampled_lower_bits(4000, 4000) == 0.0
    assert sampled_lower_bits(0, 4000) == pytest.approx(-math.log2(1 - 0.05 ** (1 / 4000)))


def _row(**kw: Any) -> CanaryExposure:
    base = {
        "id": "c1",
        "format": "pin6",
        "repetitions": 1,
        "included": True,
        "exposure_bits": 10.0,
        "space_bits": PIN6.space_bits,
        "method": "exact",
        "rank": 1000,
        "log_likelihood": -3.0,
    }
    return CanaryExposure.model_validate(base | kw)


@pytest.mark.parametrize(
    ("ft_bits", "base_row", "want"),
    [
        (10.0, {"exposure_bits": 4.0}, 6.0),
        (3.0, {"exposure_bits": 7.5}, 0.0),  # the base likes it more: nothing added
        (19.0, {"exposure_bits": 19.9, "rank": 1}, 0.0),
        # sampled: the lower bound of 12 above of 4,000 (about 7.6 bits), not the 8.4 upper one
        (
            12.0,
            {
                "method": "sampled_upper_bound",
                "rank": None,
                "exposure_bits": 8.4,
                "sampled_above": 12,
            },
            None,
        ),
    ],
)
def test_calibrate_table(ft_bits: float, base_row: dict[str, Any], want: float | None) -> None:
    ft = _row(exposure_bits=ft_bits)
    base = _row(**base_row)
    (out,) = calibrate([ft], [base], 4000)
    ref = reference_bits(base, 4000)
    assert out.base_exposure_bits == round(ref, 4)  # to 1e-4 bits
    if base.method == "exact":
        assert ref == base.exposure_bits
    else:
        assert ref == sampled_lower_bits(12, 4000) < base.exposure_bits
    want = want if want is not None else ft_bits - ref
    assert out.calibrated_bits == pytest.approx(want, abs=1e-4)
    assert out.calibrated_bits == round(out.calibrated_bits, 4)
    assert out.exposure_bits == ft_bits  # the raw figure is kept
