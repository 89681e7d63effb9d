"""Names that must not mislead: target_modules the model lacks are refused listing the names
it has; the base model's parameter count excludes the adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetrail.errors import InputError
from tests.support.tiny_training import tiny_config, tiny_model


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("gpt2", tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


@pytest.mark.parametrize(
    ("method", "missing"),
    [
        ({"name": "lora", "target_modules": ["q_proj", "v_proj"]}, "'q_proj', 'v_proj'"),
        ({"name": "lora", "target_modules": ["c_attn", "k_proj"]}, "'k_proj'"),
        ({"name": "ia3", "target_modules": ["q_proj"], "feedforward_modules": []}, "'q_proj'"),
    ],
)
def test_llama_names_on_gpt2_are_refused_listing_the_models_names(
    tiny_gpt2: Path, tmp_path: Path, method: dict[str, object], missing: str
) -> None:
    import torch

    from finetrail.training.model import build_model

    config = tiny_config(tiny_gpt2, tmp_path, method=method)
    with pytest.raises(InputError) as info:
        build_model(config, device=torch.device("cpu"), dp=True)
    err = info.value
    assert err.field == "method.target_modules"
    assert err.what == (
        f"method.target_modules names {missing}, which GPT2LMHeadModel does not have; "
        "its modules are: c_attn, c_fc, c_proj, lm_head, wpe, wte"
    )


@pytest.mark.parametrize("targets", [["c_attn"], ["attn.c_attn"], ["c_attn", "c_fc"]])
def test_names_the_model_has_are_accepted(
    tiny_gpt2: Path, tmp_path: Path, targets: list[str]
) -> None:
    import torch

    from finetrail.training.model import build_model

    config = tiny_config(tiny_gpt2, tmp_path, method={"name": "lora", "target_modules": targets})
    built = build_model(config, device=torch.device("cpu"), dp=True)
    trainable, total = built.counts()
    # the base model's own count: what the model card and the BOM call the base model's size
    assert built.base_parameters == total - trainable
    assert 0 < trainable < total


def test_full_fine_tuning_base_count_is_the_whole_model(tiny_llama: Path, tmp_path: Path) -> None:
    import torch

    from finetrail.training.model import build_model

    config = tiny_config(tiny_llama, tmp_path, method={"name": "full"})
    built = build_model(config, device=torch.device("cpu"), dp=True)
    trainable, total = built.counts()
    assert built.base_parameters == total == trainable
