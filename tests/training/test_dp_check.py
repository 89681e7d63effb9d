"""``--check-dp`` for every method: Opacus's per-sample gradients against a brute-force loop.

Each fix the check depends on is also shown failing when it is removed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from finetrail.training import dp_guards
from finetrail.training.dp_check import TOLERANCE, check_per_sample_gradients
from tests.support.tiny_training import make_texts, tiny_config, tiny_model

TEXTS = make_texts(16, seed=3)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("gpt2", tmp_path_factory)


METHODS = {
    "lora": {"name": "lora", "rank": 4, "alpha": 8, "target_modules": "all-linear"},
    "prefix": {"name": "prefix", "num_virtual_tokens": 4},
    "ia3": {"name": "ia3"},
    "full": {"name": "full"},
}


@pytest.mark.parametrize(
    ("arch", "method", "mode"),
    [
        ("llama", "lora", "hooks"),
        ("llama", "lora", "ghost"),
        ("llama", "prefix", "hooks"),
        ("llama", "ia3", "hooks"),
        ("llama", "ia3", "ghost"),
        ("llama", "full", "hooks"),
        ("llama", "full", "ghost"),
        ("gpt2", "lora", "hooks"),
        ("gpt2", "prefix", "ghost"),
        ("gpt2", "ia3", "hooks"),
        ("gpt2", "full", "hooks"),
    ],
)
def test_per_sample_gradients_match_brute_force(
    request: pytest.FixtureRequest, tmp_path: Path, arch: str, method: str, mode: str
) -> None:
    base = request.getfixturevalue(f"tiny_{arch}")
    config = tiny_config(base, tmp_path, method=METHODS[method], privacy={"clipping": mode})
    report = check_per_sample_gradients(config, texts=TEXTS, mode=mode)
    rec = report.record
    assert rec.clipping_mode == mode and rec.examples == 4
    assert rec.passed, (rec.max_relative_error, report.worst)
    assert rec.max_relative_error <= TOLERANCE


def test_without_clearing_padding_idx_full_finetuning_fails(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiny model's padding_idx is <bos>, which starts every record; Opacus's embedding grad
    # sampler ignores padding_idx while autograd zeroes that row.
    monkeypatch.setattr(dp_guards, "clear_padding_idx", lambda model: [])
    config = tiny_config(tiny_llama, tmp_path, method=METHODS["full"])
    report = check_per_sample_gradients(config, texts=TEXTS, mode="hooks")
    assert not report.record.passed
    assert report.record.max_relative_error > 1e-2
    assert any("embed_tokens" in w for w in report.worst)


def test_without_expanded_position_ids_gpt2_full_finetuning_breaks(
    tiny_gpt2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import finetrail.training.dp_check as dp_check

    def no_position_ids(ids, mask, method):  # type: ignore[no-untyped-def]
        return {"input_ids": ids, "attention_mask": mask}

    monkeypatch.setattr(dp_check, "model_inputs", no_position_ids)
    config = tiny_config(tiny_gpt2, tmp_path, method=METHODS["full"])
    report = check_per_sample_gradients(config, texts=TEXTS, mode="hooks")
    # opacus#841: the position embedding's per-sample gradient has batch dimension 1 (Opacus's
    # optimizer then fails with "stack expects each tensor to be equal size").
    assert not report.record.passed
    assert report.worst[0] == "transformer.wpe.weight: inf"


def test_without_exposing_ia3_vectors_opacus_sees_no_gradient(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dp_guards, "expose_ia3", lambda model: [])
    config = tiny_config(tiny_llama, tmp_path, method=METHODS["ia3"])
    report = check_per_sample_gradients(config, texts=TEXTS, mode="hooks")
    assert not report.record.passed
    assert report.record.max_relative_error == float("inf")
