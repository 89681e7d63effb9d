"""A tiny base model built here, so every later step loads a real model from a local path.

:func:`build_base_model` trains a byte-level BPE tokenizer (``tokenizers``; digits split one per
token, so a 6-digit secret is 6 tokens) and pretrains a small Llama-style causal LM
(``transformers.LlamaConfig``) on the generic corpus of :mod:`finetrail.training.synthetic`
(standard-library documentation plus public-style support notes). Both are saved with
``save_pretrained``; ``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained(path)`` load them.

Deterministic: the same parameters on the same software give the same weight bytes (seeded
initialisation and batch order, deterministic torch algorithms). Cached: the output folder keeps
``build_params.json`` (the parameters and their digest); a second build with the same parameters
reuses the folder. ``training_compute.json`` states the pretraining compute (steps, tokens,
6·N·tokens FLOPs, wall time), which the training layer needs for the EU AI Act modification test.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from finetrail._version import __version__
from finetrail.errors import ConfigError
from finetrail.governance.evidence.base import Frozen
from finetrail.governance.io import (
    atomic_write_bytes,
    canonical_json,
    read_json_strict,
    sha256_bytes,
    sha256_file,
)

__all__ = [
    "BUILD_PARAMS_FILE",
    "COMPUTE_FILE",
    "QUICK",
    "BaseModelParams",
    "BuildRecord",
    "TrainingCompute",
    "base_model_digests",
    "build_base_model",
]

BUILD_PARAMS_FILE = "build_params.json"
COMPUTE_FILE = "training_compute.json"
PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
WEIGHTS_FILE = "model.safetensors"

# A seconds-long build for tests: tiny corpus (no standard library), a few steps.
QUICK: dict[str, Any] = {"steps": 20, "public_records": 300, "include_stdlib": False}


class BaseModelParams(Frozen):
    """Everything that determines the built model's bytes (with the software versions)."""

    seed: int = 0
    # llama: the demo's base model; gpt2: a stand-in whose module names differ (c_attn, c_fc)
    architecture: Literal["llama", "gpt2"] = "llama"
    steps: int = Field(default=450, ge=1)
    batch_size: int = Field(default=16, ge=1)
    learning_rate: float = Field(default=2e-3, gt=0)
    warmup_steps: int = Field(default=20, ge=0)
    weight_decay: float = Field(default=0.01, ge=0)
    vocab_size: int = Field(default=3000, ge=300)
    hidden_size: int = Field(default=128, ge=8)
    num_layers: int = Field(default=2, ge=1)
    num_heads: int = Field(default=4, ge=1)
    intermediate_size: int = Field(default=512, ge=8)
    context_length: int = Field(default=128, ge=16)
    public_records: int = Field(default=2000, ge=0)
    include_stdlib: bool = True


class BuildRecord(Frozen):
    """``build_params.json``: the parameters, the software, their digest and the output digests."""

    schema_version: int = 1
    finetrail_version: str
    params: BaseModelParams
    software: dict[str, str]
    params_digest: str
    corpus_sha256: str
    corpus_documents: int
    files: dict[str, str]  # file name -> sha256 (config, weights, tokenizer)


class TrainingCompute(Frozen):
    """``training_compute.json``: what pretraining the base model cost."""

    schema_version: int = 1
    steps: int
    batch_size: int
    context_length: int
    tokens: int
    parameters: int
    flops: float  # 6 * parameters * tokens
    flops_formula: str = "6 * parameters * tokens"
    wall_seconds: float
    tokens_per_second: float
    device: str
    torch_threads: int
    losses: list[float]  # mean training loss per logging interval
    log_every: int


def _software() -> dict[str, str]:
    import faker
    import tokenizers
    import torch
    import transformers

    from finetrail.training import _generic_corpus, _synth_records, synthetic

    # the code that makes the corpus and the model: a change to it invalidates the cache
    sources = [_generic_corpus, _synth_records, synthetic, sys.modules[__name__]]
    code = sha256_bytes(b"".join(Path(str(m.__file__)).read_bytes() for m in sources))
    return {
        "finetrail_code": code,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "faker": faker.VERSION,
    }


def params_digest(params: BaseModelParams, software: dict[str, str]) -> str:
    return sha256_bytes(
        canonical_json({"params": params.model_dump(mode="json"), "software": software})
    )


def base_model_digests(path: str | os.PathLike[str]) -> dict[str, str]:
    """SHA-256 of the config, weights and tokenizer files of a saved model folder."""
    root = Path(path)
    return {
        "config.json": sha256_file(root / "config.json"),
        WEIGHTS_FILE: sha256_file(root / WEIGHTS_FILE),
        "tokenizer.json": sha256_file(root / "tokenizer.json"),
    }


def _cached(out: Path, digest: str) -> bool:
    record_path = out / BUILD_PARAMS_FILE
    if not record_path.is_file():
        return False
    try:
        record = BuildRecord.model_validate(read_json_strict(record_path))
        return record.params_digest == digest and base_model_digests(out) == record.files
    except Exception:  # a damaged or foreign folder is rebuilt, never trusted
        return False


def train_tokenizer(texts: Sequence[str], *, vocab_size: int) -> Any:
    """A byte-level BPE tokenizer whose pre-tokenizer puts each digit in its own token."""
    from finetrail.training.tiny import bpe_tokenizer

    return bpe_tokenizer(texts, vocab_size=vocab_size, special_tokens=(PAD_TOKEN, EOS_TOKEN))


def _pack(ids: Sequence[Sequence[int]], eos_id: int, context: int) -> Any:
    """Concatenate documents (EOS between them) and cut into rows of ``context`` tokens."""
    import torch

    flat: list[int] = []
    for doc in ids:
        flat.extend(doc)
        flat.append(eos_id)
    rows = len(flat) // context
    if rows == 0:
        raise ConfigError(
            "the pretraining corpus is shorter than one context window", field="context_length"
        )
    return torch.tensor(flat[: rows * context], dtype=torch.long).view(rows, context)


def _pretrain(
    model: Any, data: Any, p: BaseModelParams, progress: Callable[[str], None] | None
) -> tuple[list[float], int, float]:
    import torch

    gen = torch.Generator().manual_seed(p.seed)
    opt = torch.optim.AdamW(
        model.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay, betas=(0.9, 0.95)
    )

    def lr_at(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < p.warmup_steps:
            return (step + 1) / p.warmup_steps
        frac = (step - p.warmup_steps) / max(1, p.steps - p.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    order = torch.randperm(len(data), generator=gen)
    cursor = 0
    log_every = max(1, min(10, p.steps // 10))
    losses: list[float] = []
    window: list[float] = []
    tokens = 0
    start = time.perf_counter()
    model.train()
    for step in range(p.steps):
        if cursor + p.batch_size > len(order):
            order = torch.randperm(len(data), generator=gen)
            cursor = 0
        batch = data[order[cursor : cursor + p.batch_size]]
        cursor += p.batch_size
        # full rows of equal length: the token mean equals the mean of per-sequence means
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        tokens += batch.numel()
        window.append(loss.item())
        if len(window) == log_every or step == p.steps - 1:
            losses.append(round(sum(window) / len(window), 5))
            window = []
            if progress:
                progress(f"step {step + 1}/{p.steps} loss {losses[-1]:.3f}")
    model.eval()
    return losses, tokens, time.perf_counter() - start


def build_base_model(
    *,
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    architecture: str = "llama",
    steps: int = 450,
    batch_size: int = 16,
    learning_rate: float = 2e-3,
    vocab_size: int = 3000,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 512,
    context_length: int = 128,
    public_records: int = 2000,
    include_stdlib: bool = True,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build (or reuse) the tiny base model in ``out_dir`` and return that folder.

    ``out_dir`` must be new, empty, or a folder this function built before; a folder with the
    same parameters and intact files is reused unless ``force``.
    """
    from pydantic import ValidationError

    from finetrail.governance.evidence.base import validation_error_to_input_error

    try:
        p = BaseModelParams(
            seed=seed,
            architecture=architecture,  # type: ignore[arg-type]  # validated here
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            num_heads=num_heads,
            intermediate_size=intermediate_size,
            context_length=context_length,
            public_records=public_records,
            include_stdlib=include_stdlib,
        )
    except ValidationError as exc:
        raise validation_error_to_input_error(
            exc, source="base model parameters", what="invalid parameters"
        ) from exc
    if hidden_size % num_heads:
        raise ConfigError(
            f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}",
            field="num_heads",
        )
    out = Path(out_dir)
    software = _software()
    digest = params_digest(p, software)
    if out.exists():
        if not out.is_dir():
            raise ConfigError("output path exists and is not a folder", path=str(out))
        if not force and _cached(out, digest):
            if progress:
                progress(f"reusing the base model in {out} (same parameters)")
            return out
        if any(out.iterdir()) and not (out / BUILD_PARAMS_FILE).is_file():
            raise ConfigError(
                "output folder is not empty and holds no finetrail base model",
                path=str(out),
                fix="choose a new folder; a folder with build_params.json is rebuilt in place",
            )

    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _build_into(tmp, p, software, digest, progress)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _build_into(
    tmp: Path,
    p: BaseModelParams,
    software: dict[str, str],
    digest: str,
    progress: Callable[[str], None] | None,
) -> None:
    import torch
    from transformers import GPT2LMHeadModel, LlamaForCausalLM, PreTrainedTokenizerFast

    from finetrail.training.synthetic import generic_corpus

    docs = generic_corpus(seed=p.seed, public=p.public_records, stdlib=p.include_stdlib)
    texts = [d.text for d in docs]
    corpus_sha = sha256_bytes(canonical_json([[d.source, d.text] for d in docs]))
    if progress:
        progress(f"corpus: {len(texts)} documents, {sum(map(len, texts))} characters")

    raw = train_tokenizer(texts, vocab_size=p.vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN
    )
    tokenizer.model_max_length = p.context_length
    data = _pack(
        [e.ids for e in raw.encode_batch(texts)], raw.token_to_id(EOS_TOKEN), p.context_length
    )

    config = _model_config(p, raw)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(p.seed)
        model = (GPT2LMHeadModel if p.architecture == "gpt2" else LlamaForCausalLM)(config)
        losses, tokens, wall = _pretrain(model, data, p, progress)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    _finish(tmp, p, software, digest, docs, corpus_sha, model, tokenizer, losses, tokens, wall)


def _model_config(p: BaseModelParams, raw: Any) -> Any:
    """The transformers config of the architecture asked for, from the same sizes."""
    from transformers import GPT2Config, LlamaConfig

    ids = {
        "pad_token_id": raw.token_to_id(PAD_TOKEN),
        "eos_token_id": raw.token_to_id(EOS_TOKEN),
        "bos_token_id": raw.token_to_id(EOS_TOKEN),
    }
    if p.architecture == "gpt2":
        return GPT2Config(
            vocab_size=raw.get_vocab_size(),
            n_embd=p.hidden_size,
            n_inner=p.intermediate_size,
            n_layer=p.num_layers,
            n_head=p.num_heads,
            n_positions=p.context_length,
            tie_word_embeddings=True,
            **ids,
        )
    return LlamaConfig(
        vocab_size=raw.get_vocab_size(),
        hidden_size=p.hidden_size,
        intermediate_size=p.intermediate_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        num_key_value_heads=p.num_heads,
        max_position_embeddings=p.context_length,
        tie_word_embeddings=True,
        **ids,
    )


def _finish(
    tmp: Path,
    p: BaseModelParams,
    software: dict[str, str],
    digest: str,
    docs: Any,
    corpus_sha: str,
    model: Any,
    tokenizer: Any,
    losses: list[float],
    tokens: int,
    wall: float,
) -> None:
    """Save the model and tokenizer with their compute and build records."""
    import torch

    n_params = sum(t.numel() for t in model.parameters())
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    finally:
        if bars:
            hf_logging.enable_progress_bar()

    compute = TrainingCompute(
        steps=p.steps,
        batch_size=p.batch_size,
        context_length=p.context_length,
        tokens=tokens,
        parameters=n_params,
        flops=6.0 * n_params * tokens,
        wall_seconds=round(wall, 3),
        tokens_per_second=round(tokens / wall, 1) if wall > 0 else 0.0,
        device="cpu",
        torch_threads=torch.get_num_threads(),
        losses=losses,
        log_every=max(1, min(10, p.steps // 10)),
    )
    atomic_write_bytes(tmp / COMPUTE_FILE, canonical_json(compute.model_dump(mode="json")))
    record = BuildRecord(
        finetrail_version=__version__,
        params=p,
        software=software,
        params_digest=digest,
        corpus_sha256=corpus_sha,
        corpus_documents=len(docs),
        files=base_model_digests(tmp),
    )
    atomic_write_bytes(tmp / BUILD_PARAMS_FILE, canonical_json(record.model_dump(mode="json")))
