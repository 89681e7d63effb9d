"""The extraction probe generates from the model as trained: with a prefix-tuned (peft prefix)
model, generate() must reproduce the prefixed forward pass, not the base model's (transformers 5
+ peft 0.21 silently dropped the prefix). Tiny models built from configs; nothing downloaded."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from finetrail.errors import CheckFailed
from finetrail.governance.probes import extraction
from finetrail.governance.probes.models import TokenizerAdapter
from tests.support.tiny_training import base_config, tiny_model, write_config

PROMPTS = ["the order was", "please refund my last invoice because"]


def _prefix_model(arch: str, factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    import torch
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_model(arch, factory)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True)
    model = get_peft_model(base, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    return model.eval(), AutoTokenizer.from_pretrained(str(folder))


def _greedy_by_forward(model: Any, tok: TokenizerAdapter, prompts: list[list[int]], n: int) -> Any:
    """Greedy decoding of each prompt alone by plain forward passes, to EOS (the reference)."""
    import torch

    out = []
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p])
            for _ in range(n):
                nxt = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1]
                ids = torch.cat([ids, nxt.argmax().view(1, 1)], 1)
                if int(ids[0, -1]) == tok.eos_id:
                    break
            out.append(tok.decode(ids[0, len(p) :].tolist()))
    return out


def _decode(model: Any, tok: TokenizerAdapter, prompts: list[list[int]], **kw: Any) -> Any:
    kw = {"mode": "greedy", "n": 1, "max_new_tokens": 6, "temperature": 1.0, "top_k": 0} | kw
    return extraction.generate(model, tok, prompts, seed=0, **kw)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_generation_includes_the_prefix(
    arch: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import torch

    model, hf_tok = _prefix_model(arch, tmp_path_factory)
    tok = TokenizerAdapter(hf_tok)
    prompts = [tok.encode(p, special=True) for p in PROMPTS]
    got = [g[0] for g in _decode(model, tok, prompts)]
    assert got == _greedy_by_forward(model, tok, prompts, 6)
    assert extraction.check_generation(model, tok, prompts[1]) < 1e-4
    # the prefix changes the model (so a generation without it is told apart)
    ids = torch.tensor([prompts[1]])
    with torch.no_grad():
        prefixed = model(input_ids=ids).logits[0, -1]
        with model.disable_adapter():
            plain = model(input_ids=ids).logits[0, -1]
    assert float((prefixed - plain).abs().max()) > 0.05
    beams = _decode(model, tok, prompts, mode="beam", n=3)
    samples = _decode(model, tok, prompts, mode="sampled", n=2, top_k=20)
    assert [len(b) for b in beams] == [3, 3] and [len(s) for s in samples] == [2, 2]
    step = vars(model).get("prepare_inputs_for_generation")  # peft's own, or none
    assert step is None or step.__func__ is type(model).prepare_inputs_for_generation


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_the_probe_refuses_a_generation_that_drops_the_prefix(
    arch: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without finetrail's fix, generate() runs the base model: the check catches it."""
    model, hf_tok = _prefix_model(arch, tmp_path_factory)
    tok = TokenizerAdapter(hf_tok)
    monkeypatch.setattr(extraction, "prefix_generation", contextlib.nullcontext)
    with pytest.raises(CheckFailed, match=r"generate\(\) on a prompt-learning \(prefix\) model "):
        extraction.check_generation(model, tok, tok.encode(PROMPTS[1], special=True))


def test_a_trained_prefix_workspace_generates_with_its_prefix(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """finetrail train (method prefix, DP) -> load_trained -> the probe's generate()."""
    from finetrail.governance.workspace import Workspace
    from finetrail.training import train
    from finetrail.training.loading import load_trained

    base = tmp_path / "base"
    shutil.copytree(tiny_model("llama", tmp_path_factory), base)
    cfg = base_config(
        base, tmp_path, method={"name": "prefix", "num_virtual_tokens": 4}, optim={"steps": 2}
    )
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    train(config=write_config(tmp_path / "train.yaml", cfg), workspace=ws)
    loaded = load_trained(ws.root, device="cpu")
    tok = TokenizerAdapter(loaded.tokenizer)
    prompts = [tok.encode(p, special=True) for p in PROMPTS]
    got = [g[0] for g in _decode(loaded.model, tok, prompts)]
    assert got == _greedy_by_forward(loaded.model, tok, prompts, 6)
    assert got != [g[0] for g in _decode(loaded.base_model, tok, prompts)]
