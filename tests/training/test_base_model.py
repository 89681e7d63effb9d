"""Tiny base model: deterministic, cached, loadable with from_pretrained, digits one per token."""

from __future__ import annotations

import json

import pytest

from finetrail.cli import main
from finetrail.errors import ConfigError
from finetrail.governance.io import sha256_file
from finetrail.training.base_model import (
    BUILD_PARAMS_FILE,
    COMPUTE_FILE,
    QUICK,
    build_base_model,
)

pytestmark = pytest.mark.slow
TINY = {"public_records": 300, "include_stdlib": False}


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory):
    return build_base_model(out_dir=tmp_path_factory.mktemp("bm") / "base", **QUICK)


def test_same_parameters_give_identical_weights(tmp_path):
    a = build_base_model(out_dir=tmp_path / "a", steps=3, **TINY)
    b = build_base_model(out_dir=tmp_path / "b", steps=3, **TINY)
    c = build_base_model(out_dir=tmp_path / "c", steps=3, seed=1, **TINY)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert sha256_file(a / name) == sha256_file(b / name), name
    assert sha256_file(a / "model.safetensors") != sha256_file(c / "model.safetensors")


def test_loads_with_auto_classes_and_splits_digits(quick_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(quick_model)
    model = AutoModelForCausalLM.from_pretrained(quick_model)
    pieces = tok.tokenize("my account pin is 904512.")
    digits = [p for p in pieces if p.isdigit()]
    assert digits == list("904512")
    assert len(tok("904512", add_special_tokens=False)["input_ids"]) == 6
    assert tok.pad_token == "<pad>" and tok.eos_token == "<eos>"
    assert tok.pad_token_id != tok.eos_token_id
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (128, 2, 4)
    assert cfg.tie_word_embeddings and cfg.max_position_embeddings == 128
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    n = sum(p.numel() for p in model.parameters())
    assert 0.85e6 < n < 0.95e6
    assert tok.vocab_size == 3000


def test_pretraining_lowers_the_loss_on_held_out_text(quick_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    from finetrail.training.synthetic import public_records

    compute = json.loads((quick_model / COMPUTE_FILE).read_text())
    assert compute["losses"][-1] < compute["losses"][0] - 0.5
    tok = AutoTokenizer.from_pretrained(quick_model)
    trained = AutoModelForCausalLM.from_pretrained(quick_model)
    torch.manual_seed(123)
    fresh = LlamaForCausalLM(trained.config)
    held_out = public_records(seed=999, records=32)  # a seed the build never used
    enc = tok(held_out, padding=True, return_tensors="pt")
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    with torch.no_grad():
        trained_loss = trained(**enc, labels=labels).loss.item()
        fresh_loss = fresh(**enc, labels=labels).loss.item()
    assert trained_loss < fresh_loss - 0.5, (trained_loss, fresh_loss)


def test_compute_record_states_tokens_and_flops(quick_model):
    c = json.loads((quick_model / COMPUTE_FILE).read_text())
    assert c["steps"] == QUICK["steps"]
    assert c["tokens"] == c["steps"] * c["batch_size"] * c["context_length"]
    assert c["flops"] == pytest.approx(6 * c["parameters"] * c["tokens"])
    assert c["wall_seconds"] > 0


def test_cache_reuses_same_build_and_rebuilds_on_change(tmp_path):
    out = tmp_path / "m"
    build_base_model(out_dir=out, steps=2, **TINY)
    weights = out / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    build_base_model(out_dir=out, steps=2, **TINY)
    assert weights.stat().st_mtime_ns == stamp  # reused
    record = json.loads((out / BUILD_PARAMS_FILE).read_text())
    assert record["files"]["model.safetensors"] == sha256_file(weights)
    build_base_model(out_dir=out, steps=3, **TINY)  # different parameters: rebuilt
    assert json.loads((out / BUILD_PARAMS_FILE).read_text())["params"]["steps"] == 3
    stamp = weights.stat().st_mtime_ns
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # damaged files are not trusted
    build_base_model(out_dir=out, steps=3, **TINY)
    assert (
        sha256_file(weights)
        == json.loads((out / BUILD_PARAMS_FILE).read_text())["files"]["model.safetensors"]
    )
    assert weights.stat().st_mtime_ns != stamp


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no finetrail base model"):
        build_base_model(out_dir=tmp_path, steps=1, **TINY)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_base_model_build_command(tmp_path, capsys):
    rc = main(["base-model", "build", str(tmp_path / "bm"), "--quick", "--steps", "2"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "908928 parameters" in out and "FLOPs" in out
    assert (tmp_path / "bm" / "model.safetensors").is_file()
    assert main(["base-model", "build", str(tmp_path / "x"), "--steps", "0"]) == 2
