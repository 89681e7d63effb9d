"""``evidence/training.json``: what one fine-tuning run did, tied by digest to its inputs and output.

Written by :mod:`finetrail.training` only at the end of a run (``completed: true``), or, when a
run is interrupted or fails after it started, as a ``completed: false`` record that names no
adapter. Read by the gate (``training.dp.epsilon``, ``training.method``, ...), the probes (which
compare their ``subject.adapter_sha256`` with ``training.adapter.sha256``) and the reports.

Names describe what was measured: ``dp.epsilon`` is the PRV accountant's epsilon for ``dp.delta``
at the record level (one JSONL record is the privacy unit); ``dp.epsilon_rdp`` is the RDP
accountant's bound for the same run, recorded beside it. GDP is never stated (it under-reports).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from finetrail.governance.evidence.base import EvidenceRecord, Frozen
from finetrail.governance.evidence.workspace import SHA256_PATTERN

Method = Literal["lora", "prefix", "ia3", "full"]
ClippingMode = Literal["hooks", "ghost"]
DatasetRole = Literal["train", "validation", "generic"]
RunStatus = Literal["completed", "interrupted", "failed"]
ThresholdBasis = Literal[
    "one_third_of_base_model_training_compute",
    "fallback_one_third_of_gpai_threshold",
    "fallback_one_third_of_systemic_risk_threshold",
]

GPAI_THRESHOLD_FLOPS = 1e23  # Commission GPAI guidelines: indicative GPAI criterion
SYSTEMIC_RISK_THRESHOLD_FLOPS = 1e25  # Art. 51(2) presumption


class BaseModelFingerprint(Frozen):
    """The base model by digest: its config, weight files and tokenizer files."""

    path: str
    model_type: str
    # What the adapter names as its base model (a Hub id or a user-given name, never a local
    # path), for people; identity is the digests. Written into adapter_config.json.
    name: str | None = None
    name_source: str | None = None  # config: base_model.name | config.json _name_or_path | ...
    parameters: int = Field(ge=0)
    config_sha256: str = Field(pattern=SHA256_PATTERN)
    weights_sha256: str = Field(pattern=SHA256_PATTERN)
    weight_files: dict[str, str] = Field(default_factory=dict)
    tokenizer_sha256: str = Field(pattern=SHA256_PATTERN)
    tokenizer_files: dict[str, str] = Field(default_factory=dict)
    training_flops: float | None = Field(default=None, gt=0)
    training_flops_source: str | None = None
    systemic_risk: bool = False


class AdapterRef(Frozen):
    """The trained weights written to the workspace (safetensors)."""

    sha256: str = Field(pattern=SHA256_PATTERN)
    path: str = Field(min_length=1)  # workspace-relative, under artifacts/
    format: Literal["safetensors"] = "safetensors"
    kind: Literal["peft_adapter", "full_weights"]
    files: dict[str, str] = Field(default_factory=dict)  # workspace-relative path -> sha256


class DatasetUse(Frozen):
    """One dataset file the run read, by digest."""

    role: DatasetRole
    sha256: str = Field(pattern=SHA256_PATTERN)
    path: str
    records: int = Field(ge=0)
    records_used: int = Field(ge=0)
    registered: bool
    record: str | None = None  # evidence/datasets/<sha256>.json when registered
    # text | prompt_completion | messages (data.format; the generic corpus is always text)
    format: Literal["text", "prompt_completion", "messages"] = "text"


class EpsilonPoint(Frozen):
    step: int = Field(ge=0)
    epsilon: float = Field(ge=0)  # PRV
    epsilon_rdp: float = Field(ge=0)


class DPCheck(Frozen):
    """``--check-dp``: Opacus's per-sample gradients against a brute-force per-example loop."""

    passed: bool
    max_relative_error: float = Field(ge=0)
    tolerance: float = Field(gt=0)
    examples: int = Field(ge=1)
    clipping_mode: ClippingMode
    compared: str
    dtype: str


class DPRecord(Frozen):
    """The differential-privacy record, or ``enabled: false`` for the non-private control."""

    enabled: bool
    guarantee: str
    epsilon: float | None = Field(default=None, ge=0)
    epsilon_rdp: float | None = Field(default=None, ge=0)
    delta: float | None = Field(default=None, gt=0, lt=1)
    accountant: Literal["prv"] | None = None
    target_epsilon: float | None = Field(default=None, gt=0)
    noise_multiplier: float | None = Field(default=None, gt=0)
    noise_multiplier_source: Literal["target_epsilon", "config"] | None = None
    sample_rate: float | None = Field(default=None, gt=0, le=1)
    steps: int = Field(ge=0)
    max_grad_norm: float | None = Field(default=None, gt=0)
    clipping_mode: ClippingMode | None = None
    clipping_mode_source: Literal["auto", "config"] | None = None
    clipping_mode_reason: str | None = None
    poisson_sampling: bool
    expected_batch_size: float = Field(gt=0)  # global, over all processes
    batch_size_per_process: float = Field(gt=0)
    sampled_records: int = Field(ge=1)  # the dataset Poisson sampling draws from
    private_records: int = Field(ge=1)
    privacy_unit: str
    epsilon_per_step: tuple[EpsilonPoint, ...] = ()
    adjustments: tuple[str, ...] = ()
    check: DPCheck | None = None
    randomness: str | None = None
    # "os", "seeded" (research: reproducible, predictable noise) or "secure" (Opacus secure_mode);
    # None on records made before it was recorded
    randomness_source: Literal["os", "seeded", "secure"] | None = None
    # plan = execution: the optimizer's noise multiplier, clipping norm, expected batch and
    # Opacus's accountant history, compared with the plan after the last step (equal, or the
    # run failed); None on records made before it was checked
    execution: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DPRecord:
        if self.enabled:
            missing = [
                name
                for name in (
                    "epsilon",
                    "epsilon_rdp",
                    "delta",
                    "accountant",
                    "noise_multiplier",
                    "sample_rate",
                    "max_grad_norm",
                    "clipping_mode",
                )
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"dp.enabled is true but {', '.join(missing)} missing")
            # No finite noise gives epsilon 0 once a step has run: 0 is a forgery or a bug.
            if self.steps > 0 and (self.epsilon == 0 or self.epsilon_rdp == 0):
                raise ValueError(
                    f"dp.epsilon is 0 after {self.steps} step(s): no finite noise gives that"
                )
        elif self.epsilon is not None or self.epsilon_rdp is not None:
            raise ValueError("dp.enabled is false but an epsilon is stated")
        return self


class ComputeRecord(Frozen):
    wall_seconds: float = Field(ge=0)
    tokens: int = Field(ge=0)  # training tokens processed (attention mask), all processes
    eval_tokens: int = Field(ge=0)
    flops: float = Field(ge=0)
    flops_method: str
    device: str
    # optim.precision as the run executed it: fp32, or bf16 autocast of the forward pass and the
    # loss on CUDA (weights, gradients and optimizer state stay fp32); None on records made
    # before it was recorded (the run's config may still name it: config.optim.precision)
    precision: Literal["fp32", "bf16", "fp16"] | None = None
    processes: int = Field(ge=1)
    device_hours: float = Field(ge=0)
    rank_parameter_sha256: tuple[str, ...] = ()
    # per rank, SHA-256 of the records it sampled from (canonical JSON of the texts, in order)
    rank_data_sha256: tuple[str, ...] = ()


class EUAIActRecord(Frozen):
    """The downstream-modifier compute test (Commission GPAI guidelines, 18 July 2025, §3.2)."""

    regime_version: str = "eu-ai-act@32024R1689"
    modification_flops: float = Field(ge=0)
    base_model_training_flops: float | None = Field(default=None, gt=0)
    modification_threshold_flops: float = Field(gt=0)
    threshold_basis: ThresholdBasis
    ratio_to_threshold: float = Field(ge=0)
    substantial_modification: bool
    criterion: str


class EarlyStoppingRecord(Frozen):
    enabled: bool
    stopped_early: bool
    patience: int | None = None
    min_delta: float | None = None
    best_step: int | None = None
    best_val_loss: float | None = None
    restored_best: bool = False


class EWCRecord(Frozen):
    enabled: bool
    strength: float | None = None
    fisher_samples: int | None = None
    fisher_dataset_sha256: str | None = None
    applied: str | None = None


class MlflowRecord(Frozen):
    run_id: str | None = None
    experiment_id: str | None = None
    tracking_uri: str | None = None
    registered_model: str | None = None
    model_version: str | None = None


class CostRecord(Frozen):
    device_hours: float = Field(ge=0)
    price_per_device_hour: float | None = Field(default=None, ge=0)
    currency: str = "USD"
    estimate: float | None = Field(default=None, ge=0)


class TrainingEvidence(EvidenceRecord):
    """``evidence/training.json`` (kind ``training``)."""

    SCHEMA_VERSION: ClassVar[int] = 1

    record_type: Literal["training"] = "training"
    completed: bool
    status: RunStatus
    failure: str | None = None
    method: Method
    method_config: dict[str, Any] = Field(default_factory=dict)
    trainable_parameters: int = Field(ge=0)
    total_parameters: int = Field(ge=0)
    base_model: BaseModelFingerprint
    adapter: AdapterRef | None = None
    datasets: tuple[DatasetUse, ...]
    dp: DPRecord
    compute: ComputeRecord
    eu_ai_act: EUAIActRecord
    early_stopping: EarlyStoppingRecord
    val_loss: tuple[float, ...] = ()  # mean per-record validation loss at each evaluation
    val_loss_steps: tuple[int, ...] = ()  # the step of each val_loss value
    train_loss: tuple[float, ...] = ()  # batch loss, thinned to at most 200 values
    train_loss_steps: tuple[int, ...] = ()
    ewc: EWCRecord
    mlflow: MlflowRecord
    cost: CostRecord
    seed: int
    config_sha256: str = Field(pattern=SHA256_PATTERN)
    config: dict[str, Any] = Field(default_factory=dict)
    started: datetime
    finished: datetime
    software: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _completed_has_adapter(self) -> TrainingEvidence:
        if len(self.val_loss) != len(self.val_loss_steps):
            raise ValueError("val_loss and val_loss_steps differ in length")
        if len(self.train_loss) != len(self.train_loss_steps):
            raise ValueError("train_loss and train_loss_steps differ in length")
        if self.completed and (self.adapter is None or self.status != "completed"):
            raise ValueError("a completed run must name its adapter and have status 'completed'")
        if not self.completed and self.status == "completed":
            raise ValueError("status 'completed' requires completed: true")
        return self
