"""Tiny random-init models of real ``transformers`` architectures, saved with ``save_pretrained``
(as a user's own model folder would be), for the architecture matrix and the DP guard tests.

Each is 2 layers of width 32 built from its config class (nothing downloaded), with the tests'
byte-level BPE tokenizer; the embedding is sized to the tokenizer as ``AutoTokenizer`` loads it
for that architecture (Qwen2's tokenizer class adds a pad token, for instance).
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Architectures as users have them: grouped-query attention where the family uses it, and the
# family's usual choice of tied or separate input/output embeddings.
GQA = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3_text"}
UNTIED = {"gpt_neox", "mistral", "mixtral", "qwen3", "phi", "phi3", "gptj"}

_CACHE: dict[str, Path] = {}


def build_arch(arch: str, root: Path) -> Path:
    """The tiny ``arch`` model folder under ``root`` (built once per process)."""
    if arch in _CACHE and _CACHE[arch].is_dir():
        return _CACHE[arch]
    import torch
    from transformers import AutoTokenizer

    from finetrail.training.tiny import tiny_causal_lm
    from tests.support.tiny_training import _tokenizer

    torch.set_num_threads(1)
    folder = root / arch
    folder.mkdir(parents=True, exist_ok=True)
    saved = _tokenizer(folder)
    # model_type decides the tokenizer class AutoTokenizer picks: write the config first
    from transformers import AutoConfig

    probe = tiny_causal_lm(arch, vocab_size=len(saved), hidden=32, layers=1, heads=4)
    AutoConfig.for_model(probe.config.model_type).save_pretrained(str(folder))
    loaded = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    ids = {
        "bos_token_id": saved.bos_token_id,
        "eos_token_id": saved.eos_token_id,
        "pad_token_id": saved.bos_token_id,
    }
    model = tiny_causal_lm(
        arch,
        vocab_size=max(len(saved), len(loaded)),
        hidden=32,
        intermediate=64,
        layers=2,
        heads=4,
        kv_heads=2 if arch in GQA else None,
        max_positions=128,
        tie_embeddings=arch not in UNTIED,
        token_ids=ids,
        seed=0,
    )
    model.save_pretrained(str(folder), safe_serialization=True)
    _CACHE[arch] = folder
    return folder


def tiny_arch(arch: str, factory: pytest.TempPathFactory) -> Path:
    return build_arch(arch, factory.getbasetemp() / "tiny-architectures")
