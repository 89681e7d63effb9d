"""The base model and its fine-tuning method: loading, fingerprinting and PEFT wrapping.

Order matters (opacus#820): the base model is moved to its device *before* PEFT wraps it, and the
result is checked (every parameter on the device). Adjustments that DP needs are made here and
returned as plain sentences for the evidence (:attr:`BuiltModel.adjustments`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetrail.errors import DPGuardError, InputError
from finetrail.governance.evidence.training import BaseModelFingerprint
from finetrail.governance.io import canonical_json, read_json_strict, sha256_bytes, sha256_file
from finetrail.training.config import (
    IA3MethodConfig,
    LoRAMethodConfig,
    PrefixMethodConfig,
    TrainConfig,
)

__all__ = [
    "BuiltModel",
    "base_model_name",
    "build_model",
    "fingerprint_base_model",
    "resolve_device",
]

WEIGHT_PATTERN = "*.safetensors"  # safetensors only: a pickled checkpoint can run code on load
PICKLED_PATTERNS = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)
TRAINING_COMPUTE_FILE = "training_compute.json"


@dataclass
class BuiltModel:
    model: Any  # torch.nn.Module (a PeftModel for lora/prefix/ia3)
    tokenizer: Any
    device: Any  # torch.device
    method: str
    adjustments: list[str] = field(default_factory=list)
    base_parameters: int = 0  # the base model's own parameters (no adapter, no prefix)

    def trainable(self) -> list[tuple[str, Any]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def counts(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.model.parameters())
        return sum(p.numel() for _, p in self.trainable()), total


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No "Loading weights" bar from transformers while loading (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def resolve_device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "device 'cuda' requested but no CUDA device is available",
            field="device",
            fix="use device: cpu or auto",
        )
    return torch.device(name)


def _digest_files(root: Path, names: list[str]) -> tuple[str, dict[str, str]]:
    files = {name: sha256_file(root / name) for name in sorted(names)}
    if len(files) == 1:
        return next(iter(files.values())), files
    return sha256_bytes(canonical_json(files)), files


def base_model_name(config: TrainConfig, model_cfg: Any) -> tuple[str, str]:
    """(name, where it came from): what the adapter names as its base model, never a local path.

    ``base_model.name`` when the config gives one; else the base folder's ``config.json``
    ``_name_or_path`` (the Hub id older ``transformers`` releases wrote) when it is not a
    filesystem path; else the base folder's name."""
    if config.base_model.name is not None:
        return config.base_model.name, "config: base_model.name"
    stated = model_cfg.get("_name_or_path") if isinstance(model_cfg, dict) else None
    if isinstance(stated, str) and stated.strip() and not _looks_like_path(stated):
        return stated.strip(), "config.json _name_or_path"
    return Path(config.base_model.path).resolve().name, "base model folder name"


def _looks_like_path(value: str) -> bool:
    return (
        Path(value).is_absolute()
        or value.startswith(("~", "./", "../", "\\\\"))
        or (len(value) > 1 and value[1] == ":")  # a Windows drive letter
        or value.count("/") > 1
    )


def fingerprint_base_model(config: TrainConfig) -> BaseModelFingerprint:
    """Digests of the base model's config, weight files and tokenizer files (no torch import)."""
    root = Path(config.base_model.path)
    if not (root / "config.json").is_file():
        raise InputError(
            "base model folder has no config.json",
            path=str(root),
            field="base_model.path",
            fix="point base_model.path at a save_pretrained folder",
        )
    weights = sorted(p.name for p in root.glob(WEIGHT_PATTERN))
    if not weights:
        pickled = sorted({p.name for pat in PICKLED_PATTERNS for p in root.glob(pat)})
        raise InputError(
            "base model folder has no safetensors weights"
            + (f" (only pickled checkpoints: {', '.join(pickled)})" if pickled else ""),
            path=str(root),
            field="base_model.path",
            why="finetrail loads safetensors only: unpickling a checkpoint can run arbitrary code",
            fix="convert the weights once with save_pretrained(..., safe_serialization=True)",
        )
    weights_sha, weight_files = _digest_files(root, weights)
    tok_root = Path(config.base_model.tokenizer or root)
    tok_names = [n for n in TOKENIZER_FILES if (tok_root / n).is_file()]
    if not tok_names:
        raise InputError(
            "no tokenizer files found", path=str(tok_root), field="base_model.tokenizer"
        )
    tok_sha, tok_files = _digest_files(tok_root, tok_names)
    model_cfg = read_json_strict(root / "config.json")
    name, name_source = base_model_name(config, model_cfg)
    flops = config.base_model.training_flops
    flops_source = "config: base_model.training_flops" if flops is not None else None
    compute_file = root / TRAINING_COMPUTE_FILE
    if flops is None and compute_file.is_file():
        stated = read_json_strict(compute_file)
        if (
            isinstance(stated, dict)
            and isinstance(stated.get("flops"), int | float)
            and stated["flops"] > 0
        ):
            flops = float(stated["flops"])
            flops_source = f"{TRAINING_COMPUTE_FILE} in the base model folder"
    return BaseModelFingerprint(
        path=str(root),
        model_type=str(model_cfg.get("model_type", "unknown"))
        if isinstance(model_cfg, dict)
        else "unknown",
        name=name,
        name_source=name_source,
        parameters=0,  # filled in once the model is loaded
        config_sha256=sha256_file(root / "config.json"),
        weights_sha256=weights_sha,
        weight_files=weight_files,
        tokenizer_sha256=tok_sha,
        tokenizer_files=tok_files,
        training_flops=flops,
        training_flops_source=flops_source,
        systemic_risk=config.base_model.systemic_risk,
    )


def load_tokenizer(path: Path) -> tuple[Any, list[str]]:
    from transformers import AutoTokenizer

    notes: list[str] = []
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    tok.padding_side = "right"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise InputError(
                "the tokenizer has neither a pad nor an eos token",
                path=str(path),
                fix="save the tokenizer with a pad_token",
            )
        tok.pad_token = tok.eos_token
        notes.append(
            f"the tokenizer has no pad token; padding with eos ({tok.eos_token!r}), "
            "masked out of the loss and attention"
        )
    return tok, notes


def _dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def build_model(
    config: TrainConfig, *, device: Any, dp: bool, dtype: str | None = None
) -> BuiltModel:
    """Load the base model, move it to ``device``, then apply the method (PEFT or full)."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer, notes = load_tokenizer(Path(config.base_model.tokenizer or config.base_model.path))
    torch.manual_seed(config.seed)
    with quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(
            str(config.base_model.path),
            local_files_only=True,
            use_safetensors=True,
            dtype=_dtype(dtype or config.dtype),
        )
    model.to(device)  # before PEFT wraps it (opacus#820)
    check_vocabulary(tokenizer, model, config)
    base_parameters = sum(p.numel() for p in model.parameters())
    method = config.method
    if isinstance(method, LoRAMethodConfig | PrefixMethodConfig | IA3MethodConfig):
        model, note = _apply_peft(model, method)
        notes.extend(note)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    built = BuiltModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        method=method.name,
        adjustments=notes,
        base_parameters=base_parameters,
    )
    check_on_device(built)
    from finetrail.training.dp_guards import clear_padding_idx, prepare_for_dp

    # The non-private control gets the same padding_idx treatment, so the two runs differ by DP only.
    built.adjustments.extend(prepare_for_dp(built.model) if dp else clear_padding_idx(built.model))
    return built


def check_vocabulary(tokenizer: Any, model: Any, config: TrainConfig) -> None:
    """Every id the tokenizer can produce must index a row of the model's embedding."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        added = [t for i, t in sorted(tokenizer.added_tokens_decoder.items()) if i >= rows]
        raise InputError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's embedding has {rows} "
            f"rows" + (f" (beyond it: {', '.join(map(str, added))})" if added else ""),
            path=str(config.base_model.tokenizer or config.base_model.path),
            field="base_model.tokenizer",
            why="an id beyond the embedding fails mid-run (index out of range); AutoTokenizer "
            "may add a pad or unk token the model was not trained with",
            fix="save the tokenizer the model was trained with (special tokens included) in the "
            "base model folder, or resize the model's embeddings before saving it",
        )


def _targets(model: Any, method: LoRAMethodConfig | IA3MethodConfig) -> tuple[Any, Any, list[str]]:
    """(target_modules, feedforward_modules, notes): the config's, else finetrail's default for
    the architecture where it has one (:mod:`.architectures`), else peft's."""
    from finetrail.training.architectures import model_type, target_defaults

    ff = method.feedforward_modules if isinstance(method, IA3MethodConfig) else None
    if "target_modules" in method.model_fields_set:
        return method.target_modules, ff, []
    arch = model_type(model)
    found = target_defaults(arch, method.name)
    if found is None:
        return method.target_modules, ff, []
    targets, feedforward, why = found
    if isinstance(method, IA3MethodConfig) and "feedforward_modules" in method.model_fields_set:
        feedforward = list(method.feedforward_modules or [])
    note = (
        f"method.target_modules not set: finetrail's {method.name} default for {arch} is "
        f"{targets}"
        + (f" (feed-forward: {feedforward})" if method.name == "ia3" else "")
        + f" ({why})"
    )
    return targets, feedforward, [note]


def module_names(model: Any) -> list[str]:
    """The distinct last components of the model's Linear/Conv1D-like module names, sorted
    (what ``target_modules`` can name), e.g. ``['c_attn', 'c_fc', 'c_proj']`` for GPT-2."""
    names = set()
    for name, module in model.named_modules():
        if not name or any(True for _ in module.children()):
            continue
        if hasattr(module, "weight") and getattr(module.weight, "ndim", 0) == 2:
            names.add(name.rsplit(".", 1)[-1])
    return sorted(n for n in names if not n.isdigit())


def _check_targets(model: Any, method: LoRAMethodConfig | IA3MethodConfig, targets: Any) -> None:
    """Every name in a listed ``target_modules`` must end some module name of the model."""
    if not isinstance(targets, list | tuple) or not targets:
        return
    have = module_names(model)
    full = [n for n, _ in model.named_modules() if n]
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in full)]
    if missing:
        raise InputError(
            f"method.target_modules names {', '.join(map(repr, missing))}, which "
            f"{type(model).__name__} does not have; its modules are: {', '.join(have)}",
            field="method.target_modules",
            why="LoRA and IA3 wrap modules by name, and names differ between architectures "
            "(Llama: q_proj, v_proj; GPT-2: c_attn)",
            fix="set method.target_modules to some of the names above, or leave it out for "
            "finetrail's default for the architecture (docs/models.md)",
        )


def _apply_peft(
    model: Any, method: LoRAMethodConfig | PrefixMethodConfig | IA3MethodConfig
) -> tuple[Any, list[str]]:
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, TaskType, get_peft_model

    from finetrail.training.architectures import prefix_dimensions

    peft_config: Any
    notes: list[str] = []
    if isinstance(method, LoRAMethodConfig):
        targets, _, notes = _targets(model, method)
        _check_targets(model, method, targets)
        peft_config = LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=method.rank,
            lora_alpha=method.alpha,  # type: ignore[arg-type]  # peft accepts floats
            lora_dropout=method.dropout,
            target_modules=targets,
            bias="none",
        )
    elif isinstance(method, PrefixMethodConfig):
        dims: dict[str, Any] = dict(prefix_dimensions(model.config))
        if dims:
            notes.append(
                f"prefix sized to the model's key/value heads ({dims['num_attention_heads']} "
                f"head(s), {dims['token_dim']} values per layer and token)"
            )
        peft_config = PrefixTuningConfig(
            task_type=TaskType.CAUSAL_LM, num_virtual_tokens=method.num_virtual_tokens, **dims
        )
    else:
        targets, feedforward, notes = _targets(model, method)
        _check_targets(model, method, targets)
        peft_config = IA3Config(
            task_type=TaskType.CAUSAL_LM,
            target_modules=targets,
            feedforward_modules=feedforward,
        )
    try:
        return get_peft_model(model, peft_config), notes
    except ValueError as exc:
        raise InputError(
            f"peft could not apply method '{method.name}' to {type(model).__name__}: {exc}",
            field="method",
            fix="set method.target_modules to module names of the model (docs/models.md lists "
            "the defaults per architecture)",
        ) from exc


def check_on_device(built: BuiltModel) -> None:
    """Every parameter must live on the run's device (else PEFT or Opacus see stale tensors)."""
    want = built.device
    wrong = [
        n
        for n, p in built.model.named_parameters()
        if p.device.type != want.type or (want.index is not None and p.device.index != want.index)
    ]
    if wrong:
        raise DPGuardError(
            f"{len(wrong)} parameter(s) are not on {want}: {', '.join(wrong[:5])}",
            why="the model must be on its device before PEFT wraps it (opacus#820: the adapter "
            "weights then never move while epsilon accrues)",
            fix="report this; finetrail moves the base model before wrapping it",
        )


def model_config_json(model: Any) -> str:
    cfg = getattr(model, "config", None)
    return json.dumps(cfg.to_dict() if cfg is not None else {}, sort_keys=True, default=str)
