"""The one loader probes and audits call: the fine-tuned model, the base model and the tokenizer.

:func:`load_trained` reads ``evidence/training.json``, refuses an unfinished run, checks that the
adapter file's SHA-256 is the one the evidence names (and the base model's config, weights and
tokenizer files too), and loads both models in eval mode on one device. Heavy imports happen
inside the function.

Portable: the workspace may have been copied anywhere, and the base model may live in another
folder than at training (``base_model_path``; the folder the evidence recorded otherwise). The
adapter's ``adapter_config.json`` names the base model by ``base_model.name``, never a path; what
is loaded is decided by the digests, not by names. Safetensors only.

A base model whose files differ from the digests the evidence names is refused
(:class:`BaseModelMismatch`, exit 2) unless ``allow_base_mismatch``; then it is loaded and
:attr:`LoadedModels.base_mismatches` lists what differs, for the probe records to state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetrail.errors import InputError, IntegrityError
from finetrail.governance.evidence.registry import location
from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.io import sha256_file

__all__ = ["BaseModelMismatch", "LoadedModels", "load_trained"]


@dataclass
class LoadedModels:
    model: Any  # the fine-tuned model (a PeftModel for adapters), eval mode
    base_model: Any  # the unmodified base model, eval mode
    tokenizer: Any
    device: Any
    evidence: TrainingEvidence
    method: str
    base_path: Path | None = None  # the base model folder loaded
    base_source: str = "training_evidence"  # or "argument" (base_model_path was given)
    base_mismatches: tuple[str, ...] = ()  # files that differ from the evidence (when allowed)

    @property
    def adapter_sha256(self) -> str:
        assert self.evidence.adapter is not None
        return self.evidence.adapter.sha256


def _check_files(
    problems: list[str], folder: Path, files: dict[str, str], what: str, field: str
) -> None:
    for name, want in sorted(files.items()):
        f = folder / name
        if not f.is_file():
            problems.append(f"{what} {f}: missing")
        elif sha256_file(f) != want:
            problems.append(f"{what} {f}: sha256 differs from training.base_model.{field}")


class BaseModelMismatch(InputError):
    """The base model folder is not the one the training evidence names (exit 2)."""


def _base_problems(evidence: TrainingEvidence, base_path: Path, tok_path: Path) -> list[str]:
    problems: list[str] = []
    bm = evidence.base_model
    _check_files(problems, base_path, {"config.json": bm.config_sha256}, "base model", "config")
    _check_files(problems, base_path, bm.weight_files, "base model", "weight_files")
    _check_files(problems, tok_path, bm.tokenizer_files, "base tokenizer", "tokenizer_files")
    return problems


def _verify_adapter(root: Path, evidence: TrainingEvidence) -> None:
    adapter = evidence.adapter
    if not evidence.completed or adapter is None:
        raise IntegrityError(
            f"the workspace's training run did not complete (status: {evidence.status})",
            path=str(root / location("training")),
            fix="train again in a new workspace",
        )
    problems = []
    for rel, want in sorted(adapter.files.items()):
        f = root / rel
        if not f.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(f) != want:
            problems.append(f"{rel}: sha256 differs from the evidence")
    if adapter.path not in adapter.files:
        problems.append(f"{adapter.path}: not among the recorded adapter files")
    elif (root / adapter.path).is_file() and sha256_file(root / adapter.path) != adapter.sha256:
        problems.append(f"{adapter.path}: sha256 differs from training.adapter.sha256")
    if problems:
        raise IntegrityError(
            "the adapter does not match the training evidence: " + "; ".join(problems),
            path=str(root),
            fix="restore the files the evidence names",
        )


def _base_folders(
    evidence: TrainingEvidence, base_model_path: str | os.PathLike[str] | None
) -> tuple[Path, Path]:
    """(base model folder, tokenizer folder): the one given, else where training found them."""
    recorded_tok = evidence.config.get("base_model", {}).get("tokenizer")
    if base_model_path is not None:
        base = Path(base_model_path)
        # a tokenizer kept apart at training: use it if it is still there, else the base folder
        tok = Path(recorded_tok) if recorded_tok and Path(recorded_tok).is_dir() else base
    else:
        base = Path(evidence.base_model.path)
        tok = Path(recorded_tok) if recorded_tok else base
    if not (base / "config.json").is_file():
        name = evidence.base_model.name or evidence.base_model.model_type
        raise InputError(
            f"the base model ({name}) is not at {base}",
            path=str(base),
            why="an adapter is loaded onto its base model; the evidence names it by digest",
            fix="pass base_model_path (probes and audits: --base-model) pointing at a folder "
            "with the base model's config, safetensors weights and tokenizer",
        )
    return base, tok


def load_trained(
    ws_root: str | os.PathLike[str],
    *,
    device: str = "auto",
    base_model_path: str | os.PathLike[str] | None = None,
    allow_base_mismatch: bool = False,
) -> LoadedModels:
    """Load what ``evidence/training.json`` describes, after checking every digest.

    ``base_model_path``: the base model's folder (default: where training found it). A base
    whose config, weights or tokenizer differ from the evidence is refused
    (:class:`BaseModelMismatch`) unless ``allow_base_mismatch``."""
    root = Path(ws_root)
    record_path = root / location("training")
    if not record_path.is_file():
        raise InputError(
            "no training evidence in the workspace",
            path=str(record_path),
            fix="run `finetrail train CONFIG --workspace W` first",
        )
    evidence = TrainingEvidence.read(record_path)
    base_path, tok_path = _base_folders(evidence, base_model_path)
    _verify_adapter(root, evidence)
    assert evidence.adapter is not None
    mismatches = _base_problems(evidence, base_path, tok_path)
    if mismatches and not allow_base_mismatch:
        raise BaseModelMismatch(
            f"the base model at {base_path} is not the one training used: " + "; ".join(mismatches),
            path=str(base_path),
            field="training.base_model",
            why="the probes compare the fine-tune with its base model; with another base, "
            "neither the fine-tuned model nor the comparison is the one trained",
            fix="pass the folder training used (--base-model; digests in evidence/training.json "
            "base_model), or --allow-base-mismatch to probe against this one (the probe records "
            "then state the mismatch)",
        )

    import torch
    from transformers import AutoModelForCausalLM

    from finetrail.training.model import load_tokenizer, quiet_loading, resolve_device

    dev = resolve_device(device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        str(evidence.config.get("dtype", "float32"))
    ]
    tokenizer, _ = load_tokenizer(tok_path)
    adapter_dir = root / Path(evidence.adapter.path).parent

    def base() -> Any:
        m = AutoModelForCausalLM.from_pretrained(
            str(base_path), local_files_only=True, use_safetensors=True, dtype=dtype
        )
        return m.to(dev).eval()

    model: Any
    with quiet_loading():
        if evidence.adapter.kind == "full_weights":
            model = AutoModelForCausalLM.from_pretrained(
                str(adapter_dir), local_files_only=True, use_safetensors=True, dtype=dtype
            )
            model = model.to(dev).eval()
        else:
            from peft import PeftModel

            model = PeftModel.from_pretrained(base(), str(adapter_dir), is_trainable=False)
            model = model.to(dev).eval()
        base_model = base()
    return LoadedModels(
        model=model,
        base_model=base_model,
        tokenizer=tokenizer,
        device=dev,
        evidence=evidence,
        method=evidence.method,
        base_path=base_path,
        base_source="argument" if base_model_path is not None else "training_evidence",
        base_mismatches=tuple(mismatches),
    )
