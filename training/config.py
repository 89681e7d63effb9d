"""The training configuration: a frozen pydantic model loaded from YAML.

Unknown keys, wrong types and bad values are rejected before any work starts. Every problem is
listed in one :class:`~finetrail.errors.ConfigError` that names the file, the dotted key and the
YAML line. Paths in the file are relative to the file's folder.

Example::

    base_model: {path: ../base}
    method: {name: lora, rank: 8, alpha: 16, target_modules: [q_proj, v_proj]}
    privacy: {target_epsilon: 8.0, delta: 1.0e-5, max_grad_norm: 1.0}
    data: {train: train.jsonl, validation: val.jsonl, unregistered: refuse}
    optim: {batch_size: 16, epochs: 3, learning_rate: 3.0e-3}

``privacy: none`` trains the non-private control; its evidence states no DP guarantee.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from finetrail.errors import ConfigError
from finetrail.governance.io import read_text_strict, sha256_bytes

__all__ = [
    "DataConfig",
    "EWCConfig",
    "EarlyStoppingConfig",
    "FullConfig",
    "IA3MethodConfig",
    "LoRAMethodConfig",
    "OptimConfig",
    "PrefixMethodConfig",
    "PrivacyConfig",
    "SaveConfig",
    "TrainConfig",
    "load_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class BaseModelConfig(_Strict):
    path: Path
    # What the model is, for people: a hub id or a release name ("Qwen/Qwen2.5-0.5B"). Recorded in
    # the evidence and shown on the model card and the BOM; the weights are identified by digest.
    name: str | None = Field(default=None, min_length=1, max_length=200)
    tokenizer: Path | None = None  # defaults to ``path``
    # The base model's training compute, for the EU AI Act one-third test. When absent,
    # ``<path>/training_compute.json`` (field ``flops``) is read if present, else the
    # Commission's fallback threshold applies.
    training_flops: float | None = Field(default=None, gt=0)
    systemic_risk: bool = False


class LoRAMethodConfig(_Strict):
    name: Literal["lora"]
    rank: int = Field(default=8, ge=1, le=1024)
    alpha: float = Field(default=16.0, gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class PrefixMethodConfig(_Strict):
    name: Literal["prefix"]
    num_virtual_tokens: int = Field(default=8, ge=1, le=512)


class IA3MethodConfig(_Strict):
    name: Literal["ia3"]
    target_modules: list[str] | None = None  # peft's default for the architecture
    feedforward_modules: list[str] | None = None


class FullConfig(_Strict):
    name: Literal["full"]


MethodConfig = Annotated[
    LoRAMethodConfig | PrefixMethodConfig | IA3MethodConfig | FullConfig,
    Field(discriminator="name"),
]


class PrivacyConfig(_Strict):
    """DP-SGD with Poisson sampling. Give ``target_epsilon`` or ``noise_multiplier``, not both."""

    target_epsilon: float | None = Field(default=None, gt=0)
    noise_multiplier: float | None = Field(default=None, gt=0)
    delta: float = Field(validation_alias=AliasChoices("delta", "target_delta"), gt=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    accountant: str = "prv"
    clipping: Literal["auto", "hooks", "ghost"] = "auto"
    # where DP noise and Poisson sampling draw from: "os" (generators seeded from the operating
    # system's entropy, the default), "seeded" (from the config's seed: a research run whose
    # evidence digests reproduce exactly; never for a release) or "secure" (Opacus's secure_mode
    # CSPRNG, which needs the torchcsprng package)
    randomness: Literal["os", "seeded", "secure"] = "os"

    @field_validator("accountant")
    @classmethod
    def _prv_only(cls, v: str) -> str:
        if v != "prv":
            raise ValueError(
                "the stated epsilon comes from the PRV accountant ('prv'); RDP is always recorded "
                "beside it and GDP is never stated (it under-reports: 0.58 against PLD 0.70 here)"
            )
        return v

    @model_validator(mode="after")
    def _one_noise_source(self) -> PrivacyConfig:
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError("give exactly one of target_epsilon and noise_multiplier")
        return self


class DataConfig(_Strict):
    train: Path
    validation: Path | None = None
    generic: Path | None = None
    generic_fraction: float = Field(default=0.0, ge=0, lt=0.5)
    # text: {"text": ...}; prompt_completion: {"prompt", "completion"}; messages: chat turns
    format: Literal["text", "prompt_completion", "messages"] = "text"
    # prompt_completion and messages: the loss on the completion / assistant tokens (unset:
    # completion), or on all; text: always all
    loss_on: Literal["completion", "all"] | None = None
    text_field: str = Field(default="text", min_length=1)
    max_length: int = Field(default=128, ge=4, le=32768)
    unregistered: Literal["refuse", "flag"] = "refuse"

    @model_validator(mode="after")
    def _generic_needed(self) -> DataConfig:
        if self.generic_fraction > 0 and self.generic is None:
            raise ValueError("generic_fraction > 0 needs data.generic (the public corpus)")
        if self.format == "text" and self.loss_on == "completion":
            raise ValueError(
                "loss_on: completion needs format: prompt_completion or messages (plain text "
                "has no completion)"
            )
        return self

    @property
    def loss_tokens(self) -> Literal["completion", "all"]:
        """Where the loss is taken: ``all`` for text, else ``loss_on`` (default completion)."""
        return "all" if self.format == "text" else (self.loss_on or "completion")


class EarlyStoppingConfig(_Strict):
    patience: int = Field(default=3, ge=1)
    min_delta: float = Field(default=0.0, ge=0)
    restore_best: bool = True


class EWCConfig(_Strict):
    strength: float = Field(gt=0)
    fisher_samples: int = Field(default=64, ge=1, le=100_000)


class OptimConfig(_Strict):
    batch_size: int = Field(ge=1)  # the expected (Poisson) batch size, over all processes
    epochs: float | None = Field(default=None, gt=0)
    steps: int | None = Field(default=None, ge=1)
    learning_rate: float = Field(gt=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = Field(default=0.0, ge=0)
    eval_every: int | None = Field(default=None, ge=1)  # steps; default: once per epoch
    early_stopping: EarlyStoppingConfig | None = None
    ewc: EWCConfig | None = None
    # gradient accumulation: each sampled (logical) batch is processed in chunks of at most this
    # many records; the optimizer steps, and the accountant counts, once per logical batch
    # (DP runs: Opacus's BatchMemoryManager). Unset: the whole batch at once.
    physical_batch_size: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("physical_batch_size", "max_physical_batch_size"),
    )
    # activation (gradient) checkpointing, non-reentrant (transformers'
    # gradient_checkpointing_enable with use_reentrant=False); runs without DP only (see
    # TrainConfig._cross_checks)
    gradient_checkpointing: bool = False
    # mixed precision: autocast of the forward pass and loss on CUDA (the weights stay in
    # ``dtype``); fp32 (no autocast) on every device. fp16 is refused (see _no_fp16).
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"

    @model_validator(mode="after")
    def _one_length(self) -> OptimConfig:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("give exactly one of epochs and steps")
        return self

    @field_validator("precision")
    @classmethod
    def _no_fp16(cls, v: str) -> str:
        if v == "fp16":
            raise ValueError(
                "fp16 needs loss scaling (a GradScaler), which finetrail does not implement: "
                "under DP it would scale the per-sample gradients Opacus clips, so the clipping "
                "bound would not be the one the accountant assumes; use bf16 (CUDA) or fp32"
            )
        return v


class TrackingConfig(_Strict):
    mlflow: bool = True
    experiment: str | None = None  # default: the workspace's model name
    registered_model: str | None = None  # default: the workspace's model name


class SaveConfig(_Strict):
    # full fine-tunes: the largest safetensors shard transformers' save_pretrained writes ("2GB",
    # "500MB", "4GiB"); unset: transformers' default. PEFT adapters are always one file (peft
    # does not shard them).
    max_shard_size: str | None = Field(
        default=None, pattern=r"^[1-9][0-9]*(GB|MB|KB|GiB|MiB|KiB)$", max_length=16
    )


class CostConfig(_Strict):
    price_per_device_hour: float | None = Field(default=None, ge=0)
    currency: str = Field(default="USD", min_length=1, max_length=8)


class TrainConfig(_Strict):
    base_model: BaseModelConfig
    method: MethodConfig
    privacy: PrivacyConfig | Literal["none"]
    data: DataConfig
    optim: OptimConfig
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    seed: int = 0
    tracking: TrackingConfig = TrackingConfig()
    cost: CostConfig = CostConfig()
    save: SaveConfig = SaveConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> TrainConfig:
        if self.optim.early_stopping is not None and self.data.validation is None:
            raise ValueError("optim.early_stopping needs data.validation")
        if self.optim.ewc is not None and self.data.generic is None:
            raise ValueError("optim.ewc needs data.generic (Fisher information is estimated on it)")
        if self.optim.gradient_checkpointing and isinstance(self.privacy, PrivacyConfig):
            raise ValueError(
                "optim.gradient_checkpointing is refused under DP (privacy.clipping "
                f"{self.privacy.clipping!r}, method {self.method.name!r}): with checkpointing "
                "Opacus's per-sample hooks see the recomputed forward pass, so clipping: hooks "
                "gets no per-sample gradient for most layers and clipping: ghost counts every "
                "layer twice (measured with opacus 1.6 for lora, ia3 and full); use "
                "optim.physical_batch_size to bound memory under DP, or train the non-private "
                "control (privacy: none) with checkpointing"
            )
        return self

    @property
    def dp_enabled(self) -> bool:
        return isinstance(self.privacy, PrivacyConfig)

    def resolved(self, base: Path) -> TrainConfig:
        """A copy whose relative paths are made absolute against ``base`` (the config's folder)."""

        def fix(p: Path | None) -> Path | None:
            if p is None:
                return None
            p = Path(os.path.expanduser(p))
            return p if p.is_absolute() else (base / p).resolve()

        bm = self.base_model.model_copy(
            update={"path": fix(self.base_model.path), "tokenizer": fix(self.base_model.tokenizer)}
        )
        data = self.data.model_copy(
            update={k: fix(getattr(self.data, k)) for k in ("train", "validation", "generic")}
        )
        return self.model_copy(update={"base_model": bm, "data": data})


class LoadedConfig(BaseModel):
    """A validated config, where it came from, and the SHA-256 of the file's bytes."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: TrainConfig
    path: Path | None
    sha256: str


# ---- YAML with line numbers ------------------------------------------------------------------


def _key_lines(
    node: yaml.Node,
    prefix: tuple[Any, ...],
    out: dict[tuple[Any, ...], int],
    dups: list[tuple[str, int]],
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            path = (*prefix, key)
            if key in seen:
                dups.append((".".join(map(str, path)), key_node.start_mark.line + 1))
            seen.add(key)
            out[path] = key_node.start_mark.line + 1
            _key_lines(value_node, path, out, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*prefix, i)] = item.start_mark.line + 1
            _key_lines(item, (*prefix, i), out, dups)


_UNION_TAGS = {"PrivacyConfig", "literal['none']", "lora", "prefix", "ia3", "full"}


def _keys(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The YAML keys of a pydantic error location (union tags such as 'lora' removed)."""
    return tuple(
        part
        for i, part in enumerate(loc)
        if not (
            i == 1
            and loc[0] in ("method", "privacy")
            and (part in _UNION_TAGS or str(part).startswith("function-"))
        )
    )


def _under(loc: Any, tag: str) -> bool:
    return (
        len(loc) >= 2
        and loc[0] == "privacy"
        and (loc[1] == tag or (tag == "PrivacyConfig" and str(loc[1]).startswith("function-")))
    )


def _line_for(keys: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for n in range(len(keys), 0, -1):  # the deepest prefix the YAML has a line for
        if keys[:n] in lines:
            return lines[keys[:n]]
    return None


def _describe(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (not allowed)"
    if err["type"] == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def parse_config(
    data: Any, *, source: str, lines: dict[tuple[Any, ...], int] | None = None
) -> TrainConfig:
    """Validate a mapping; every problem becomes one line of a :class:`ConfigError`."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise ConfigError("the config must be a YAML mapping of keys to values", path=source)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        first: str | None = None
        errors: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
        # "privacy: none" or a mapping: report the errors of the form that was written.
        privacy = data.get("privacy")
        if "privacy" in data and not isinstance(privacy, dict) and privacy != "none":
            errors = [e for e in errors if e["loc"][:1] != ("privacy",)]
            errors.append(
                {
                    "loc": ("privacy",),
                    "type": "value_error",
                    "msg": f"must be 'none' or a mapping of DP settings, not {privacy!r}"
                    + (" (YAML reads off/no/false as false)" if privacy is False else ""),
                }
            )
        else:
            drop = "PrivacyConfig" if isinstance(privacy, str) else "literal['none']"
            errors = [e for e in errors if not _under(e["loc"], drop)]
        for err in errors:
            keys = _keys(tuple(err["loc"]))
            key = ".".join(str(k) for k in keys) or "(root)"
            line = _line_for(keys, lines)
            where = f"{key} (line {line})" if line else key
            problems.append(f"{where}: {_describe(err)}")
            first = first or key
        raise ConfigError(
            "invalid training config:\n  - " + "\n  - ".join(dict.fromkeys(problems)),
            path=source,
            field=first,
            fix="correct the keys listed; unknown keys are rejected (see docs/training.md)",
        ) from exc


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read, validate and resolve a YAML training config. Raises :class:`ConfigError`."""
    p = Path(path)
    text = read_text_strict(p)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"malformed YAML{where}: {getattr(exc, 'problem', exc)}", path=str(p)
        ) from exc
    lines: dict[tuple[Any, ...], int] = {}
    dups: list[tuple[str, int]] = []
    if node is not None:
        _key_lines(node, (), lines, dups)
    if dups:
        raise ConfigError(
            "duplicate keys: " + ", ".join(f"{k} (line {n})" for k, n in dups),
            path=str(p),
            field=dups[0][0],
            why="YAML would silently keep only the last value",
        )
    config = parse_config(data, source=str(p), lines=lines)
    return LoadedConfig(
        config=config.resolved(p.resolve().parent),
        path=p,
        sha256=sha256_bytes(text.encode("utf-8")),
    )
