"""Building the :class:`TrainingEvidence` record from what a run did (completed or not)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from finetrail.governance.evidence.training import (
    GPAI_THRESHOLD_FLOPS,
    SYSTEMIC_RISK_THRESHOLD_FLOPS,
    AdapterRef,
    BaseModelFingerprint,
    ComputeRecord,
    CostRecord,
    DatasetUse,
    DPCheck,
    DPRecord,
    EarlyStoppingRecord,
    EUAIActRecord,
    EWCRecord,
    MlflowRecord,
    RunStatus,
    ThresholdBasis,
    TrainingEvidence,
)
from finetrail.training.accounting import Accounting
from finetrail.training.config import LoadedConfig, PrivacyConfig
from finetrail.training.data import Datasets
from finetrail.training.engine import Plan
from finetrail.training.loop import RunState

__all__ = ["RunFacts", "build_evidence", "eu_ai_act_record", "training_flops"]

FLOPS_METHOD = (
    "6 x total parameters x training tokens + 2 x total parameters x validation tokens (the "
    "architecture-based estimate of the Commission's GPAI guidelines; it counts the backward "
    "pass through frozen weights, so it errs high for adapters)"
)
MAX_LOSS_POINTS = 200


def training_flops(total_parameters: int, tokens: int, eval_tokens: int) -> float:
    return 6.0 * total_parameters * tokens + 2.0 * total_parameters * eval_tokens


def eu_ai_act_record(*, flops: float, base: BaseModelFingerprint) -> EUAIActRecord:
    """The one-third test: the modification's compute against a third of the base model's
    training compute when stated, else a third of the GPAI (1e23) or systemic-risk (1e25)
    threshold (Commission GPAI guidelines, 18 July 2025, section 3.2)."""
    basis: ThresholdBasis
    if base.training_flops is not None:
        threshold = base.training_flops / 3.0
        basis = "one_third_of_base_model_training_compute"
    elif base.systemic_risk:
        threshold = SYSTEMIC_RISK_THRESHOLD_FLOPS / 3.0
        basis = "fallback_one_third_of_systemic_risk_threshold"
    else:
        threshold = GPAI_THRESHOLD_FLOPS / 3.0
        basis = "fallback_one_third_of_gpai_threshold"
    return EUAIActRecord(
        modification_flops=flops,
        base_model_training_flops=base.training_flops,
        modification_threshold_flops=threshold,
        threshold_basis=basis,
        ratio_to_threshold=flops / threshold,
        substantial_modification=flops > threshold,
        criterion="indicative one-third criterion for downstream modifiers (Commission "
        "guidelines on GPAI obligations, 18 July 2025, section 3.2); non-binding, forward-looking",
    )


def _thin(
    points: list[tuple[int, float]], limit: int = MAX_LOSS_POINTS
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """(values, steps): the finite points, every k-th one when there are more than ``limit``."""
    finite = [(s, v) for s, v in points if math.isfinite(v)]
    if len(finite) > limit:
        stride = math.ceil(len(finite) / limit)
        finite = finite[::stride] + ([finite[-1]] if (len(finite) - 1) % stride else [])
    return tuple(v for _, v in finite), tuple(s for s, _ in finite)


@dataclass
class RunFacts:
    """Everything the record states, gathered by the facade."""

    loaded: LoadedConfig
    base: BaseModelFingerprint
    datasets: Datasets
    method_config: dict[str, Any]
    trainable_parameters: int
    total_parameters: int  # base model and adapter together (the FLOPs estimate's count)
    base_parameters: int  # the base model alone
    plan: Plan
    state: RunState
    adjustments: list[str]
    device: str
    started: datetime
    finished: datetime
    software: dict[str, str]
    accounting: Accounting | None = None
    dp_check: DPCheck | None = None
    adapter: AdapterRef | None = None
    mlflow: MlflowRecord | None = None
    ewc_fisher_sha256: str | None = None
    rank_digests: tuple[str, ...] = ()
    rank_data_digests: tuple[str, ...] = ()
    execution: dict[str, Any] | None = None  # training/execution.py: what ran, as compared
    status: RunStatus = "completed"
    failure: str | None = None


def _datasets(d: Datasets) -> tuple[DatasetUse, ...]:
    return tuple(
        DatasetUse.model_validate(
            {
                "role": f.role,
                "sha256": f.sha256,
                "path": str(f.path),
                "records": len(f.texts),
                "records_used": len(f.texts) if f.role != "generic" else len(d.generic_mixed),
                "registered": f.registered,
                "record": f.record,
                "format": f.format,
            }
        )
        for f in d.all()
    )


RANDOMNESS = {
    "os": "noise and Poisson sampling drawn from generators seeded by the operating system "
    "(not Opacus's secure_mode CSPRNG); the config's seed covers initialisation, dropout and data "
    "mixing only",
    "seeded": "noise and Poisson sampling drawn from generators seeded by the config's seed: a "
    "research run whose evidence reproduces exactly, and whose noise anyone holding the config "
    "can recompute, so it is no release's privacy guarantee",
    "secure": "noise and Poisson sampling drawn from Opacus's secure_mode CSPRNG (torchcsprng)",
}


def _dp(facts: RunFacts) -> DPRecord:
    config = facts.loaded.config
    plan = facts.plan
    fields: dict[str, Any] = {
        "steps": facts.state.step,
        "poisson_sampling": isinstance(config.privacy, PrivacyConfig),
        "expected_batch_size": plan.expected_batch_size,
        "batch_size_per_process": plan.expected_batch_size / plan.world_size,
        "sampled_records": plan.sampled_records,
        "private_records": plan.private_records,
        "privacy_unit": "one record (one JSONL line) of the training dataset",
        "adjustments": tuple(facts.adjustments),
        "check": facts.dp_check,
    }
    privacy = config.privacy
    if not isinstance(privacy, PrivacyConfig):
        fields.update(
            enabled=False,
            guarantee="none: no differential-privacy guarantee (non-private control run)",
        )
        return DPRecord.model_validate(fields)
    acc = facts.accounting
    assert acc is not None
    fields.update(
        enabled=True,
        guarantee=f"({acc.epsilon:.4g}, {privacy.delta:g})-DP at the record level, PRV accountant "
        "(Poisson-subsampled Gaussian mechanism, DP-SGD)",
        epsilon=acc.epsilon,
        epsilon_rdp=acc.epsilon_rdp,
        delta=privacy.delta,
        accountant="prv",
        target_epsilon=privacy.target_epsilon,
        noise_multiplier=plan.noise_multiplier,
        noise_multiplier_source=plan.noise_source,
        sample_rate=plan.sample_rate,
        max_grad_norm=privacy.max_grad_norm,
        clipping_mode=plan.clipping_mode,
        clipping_mode_source=plan.clipping_source,
        clipping_mode_reason=plan.clipping_reason,
        epsilon_per_step=acc.epsilon_per_step,
        randomness=RANDOMNESS[privacy.randomness],
        randomness_source=privacy.randomness,
        execution=facts.execution,
    )
    return DPRecord.model_validate(fields)


def build_evidence(facts: RunFacts) -> TrainingEvidence:
    config = facts.loaded.config
    state = facts.state
    flops = training_flops(facts.total_parameters, state.tokens, state.eval_tokens)
    device_hours = state.wall_seconds / 3600.0 * facts.plan.world_size
    price = config.cost.price_per_device_hour
    es = config.optim.early_stopping
    ewc = config.optim.ewc
    val_loss, val_steps = _thin(state.val_loss)
    train_loss, train_steps = _thin(state.train_loss)
    return TrainingEvidence(
        completed=facts.status == "completed",
        status=facts.status,
        failure=facts.failure,
        method=config.method.name,
        method_config=facts.method_config,
        trainable_parameters=facts.trainable_parameters,
        total_parameters=facts.total_parameters,
        # the base model's own count: the adapter's parameters are trainable_parameters
        base_model=facts.base.model_copy(update={"parameters": facts.base_parameters}),
        adapter=facts.adapter,
        datasets=_datasets(facts.datasets),
        dp=_dp(facts),
        compute=ComputeRecord(
            wall_seconds=state.wall_seconds,
            tokens=state.tokens,
            eval_tokens=state.eval_tokens,
            flops=flops,
            flops_method=FLOPS_METHOD,
            device=facts.device,
            precision=config.optim.precision,
            processes=facts.plan.world_size,
            device_hours=device_hours,
            rank_parameter_sha256=facts.rank_digests,
            rank_data_sha256=facts.rank_data_digests,
        ),
        eu_ai_act=eu_ai_act_record(flops=flops, base=facts.base),
        early_stopping=EarlyStoppingRecord(
            enabled=es is not None,
            stopped_early=state.stopped_early,
            patience=es.patience if es else None,
            min_delta=es.min_delta if es else None,
            best_step=state.best_step,
            best_val_loss=state.best_val,
            restored_best=state.restored_best,
        ),
        val_loss=val_loss,
        val_loss_steps=val_steps,
        train_loss=train_loss,
        train_loss_steps=train_steps,
        ewc=EWCRecord(
            enabled=ewc is not None,
            strength=ewc.strength if ewc else None,
            fisher_samples=ewc.fisher_samples if ewc else None,
            fisher_dataset_sha256=facts.ewc_fisher_sha256,
            applied="penalty gradient added after Opacus clipped and noised the batch gradient "
            "(post-processing of public data and DP outputs)"
            if ewc
            else None,
        ),
        mlflow=facts.mlflow or MlflowRecord(),
        cost=CostRecord(
            device_hours=device_hours,
            price_per_device_hour=price,
            currency=config.cost.currency,
            estimate=None if price is None else device_hours * price,
        ),
        seed=config.seed,
        config_sha256=facts.loaded.sha256,
        config=config.model_dump(mode="json"),
        started=facts.started,
        finished=facts.finished,
        software=facts.software,
    )
