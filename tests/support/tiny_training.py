"""Tiny models, tokenizers and data built in the test session (shared by the training tests).

Imported by the test modules (not a conftest): ``from _training_tiny import ...``; each module
defines its own small fixtures over :func:`tiny_model`. The models are built once per process
and cached; each is a ``save_pretrained`` folder loaded from its path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

_CACHE: dict[str, Path] = {}


def make_texts(n: int, *, seed: int, min_words: int = 3, max_words: int = 14) -> list[str]:
    from finetrail.training.tiny import word_texts

    return word_texts(n, seed=seed, min_words=min_words, max_words=max_words)


def write_jsonl(path: Path, texts: list[str], field: str = "text") -> Path:
    path.write_text("".join(json.dumps({field: t}) + "\n" for t in texts), encoding="utf-8")
    return path


def _tokenizer(folder: Path) -> Any:
    from finetrail.training.tiny import bpe_tokenizer, fast_tokenizer

    # Every record is <bos> ... <eos>. The tokenizer has no pad token (finetrail pads with eos).
    tok = bpe_tokenizer(
        make_texts(400, seed=99),
        vocab_size=160,
        special_tokens=("<unk>", "<bos>", "<eos>"),
        template="<bos> $A <eos>",
    )
    fast = fast_tokenizer(tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")
    fast.save_pretrained(str(folder))
    return fast


def build_tiny(arch: str, root: Path) -> Path:
    """A 2-layer model of width 32 (``llama`` or ``gpt2``) saved under ``root/arch``."""
    import torch

    # Two shared cores: several torch threads per process spin against each other (a 32x32
    # linear took 12 ms instead of 0.08 ms), so the tests use one thread per process.
    torch.set_num_threads(1)
    if arch in _CACHE and _CACHE[arch].is_dir():
        return _CACHE[arch]
    from finetrail.training.tiny import tiny_causal_lm

    folder = root / arch
    folder.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(folder)
    # The model's pad_token_id is <bos>, so its embedding's padding_idx is a real token that
    # starts every record: where Opacus's embedding grad sampler (which ignores padding_idx)
    # and autograd (which zeroes that row) disagree unless finetrail clears padding_idx.
    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.bos_token_id,
    }
    model = tiny_causal_lm(
        arch,
        vocab_size=len(tok),
        hidden=32,
        intermediate=64,
        layers=2,
        heads=4,
        max_positions=128,
        tie_embeddings=arch != "llama",
        token_ids=ids,
        seed=0,
    )
    model.save_pretrained(str(folder), safe_serialization=True)
    _CACHE[arch] = folder
    return folder


def tiny_model(arch: str, factory: pytest.TempPathFactory) -> Path:
    """The cached tiny model folder of this test process (for module-scoped fixtures)."""
    return build_tiny(arch, factory.getbasetemp() / "tiny-models")


def base_config(base: Path, data_dir: Path, **sections: Any) -> dict[str, Any]:
    """A small valid config (DP LoRA). ``sections`` extend the top-level mappings (``method``
    and non-mapping values replace them)."""
    train = write_jsonl(data_dir / "train.jsonl", make_texts(48, seed=1))
    val = write_jsonl(data_dir / "val.jsonl", make_texts(12, seed=2))
    cfg: dict[str, Any] = {
        "base_model": {"path": str(base)},
        "method": {"name": "lora", "rank": 4, "alpha": 8, "target_modules": "all-linear"},
        "privacy": {"noise_multiplier": 1.0, "delta": 1e-3, "max_grad_norm": 1.0},
        "data": {
            "train": str(train),
            "validation": str(val),
            "max_length": 48,
            "unregistered": "flag",
        },
        "optim": {"batch_size": 8, "steps": 6, "learning_rate": 0.01},
        "device": "cpu",
        "seed": 0,
        "tracking": {"mlflow": False},
    }
    for key, value in sections.items():
        if key != "method" and isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def tiny_config(base: Path, data_dir: Path, **sections: Any) -> Any:
    """:func:`base_config` validated into a ``TrainConfig`` (no YAML file)."""
    from finetrail.training.config import parse_config

    data_dir.mkdir(parents=True, exist_ok=True)
    return parse_config(base_config(base, data_dir, **sections), source="test")


def tiny_engine(
    config: Any, *, dp: bool = True, post_privatise: Any = None
) -> tuple[Any, Any, Any]:
    """(built model, plan, engine) for ``config`` on the CPU, over its training data."""
    import torch
    from torch.utils.data import TensorDataset

    from finetrail.training.data import read_jsonl_texts, tokenize
    from finetrail.training.engine import build_engine, plan_run
    from finetrail.training.model import build_model

    built = build_model(config, device=torch.device("cpu"), dp=dp)
    _, texts = read_jsonl_texts(Path(config.data.train), "text")
    ids, mask = tokenize(built.tokenizer, texts, config.data.max_length)
    plan = plan_run(
        config,
        sampled_records=len(texts),
        private_records=len(texts),
        world_size=1,
        seq_len=ids.shape[1],
        model=built.model,
    )
    engine = build_engine(
        config,
        model=built.model,
        plan=plan,
        dataset=TensorDataset(ids, mask),
        distributed=False,
        post_privatise=post_privatise,
    )
    return built, plan, engine


def first_batch(engine: Any) -> tuple[Any, Any]:
    """A non-empty batch from the engine's loader, trimmed to its longest record."""
    for ids, mask in engine.loader:
        if ids.shape[0] > 1:
            length = int(mask.sum(1).max())
            return ids[:, :length], mask[:, :length]
    raise AssertionError("no non-empty batch")
