"""Assembling one run's optimisation: data loader, optimizer, Opacus privacy engine, stepper.

DP runs use Opacus's ``make_private`` with Poisson sampling (``poisson_sampling=True``) and
``wrap_model=False`` (hooks attach to the HF/peft model itself, which keeps its attribute access).
The noise and the Poisson sampler draw from generators seeded from the operating system, not from
the config's seed: a published seed would let anyone recompute the noise (and the batches), which
would void the guarantee. The config's seed covers initialisation, dropout and data order only.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from finetrail.errors import ConfigError
from finetrail.training.config import PrivacyConfig, TrainConfig
from finetrail.training.dp_guards import (
    SequenceLoss,
    Stepper,
    check_optimizer_params,
    choose_clipping_mode,
)
from finetrail.training.dp_shapes import check_per_example_structure

__all__ = ["Engine", "Plan", "build_engine", "check_precision", "plan_run"]


@dataclass(frozen=True)
class Plan:
    """Steps, sampling and noise, fixed before training starts."""

    sampled_records: int
    private_records: int
    steps_per_epoch: int
    total_steps: int
    expected_batch_size: float  # global
    world_size: int
    sample_rate: float | None = None
    noise_multiplier: float | None = None
    noise_source: str | None = None
    clipping_mode: str | None = None
    clipping_source: str | None = None
    clipping_reason: str | None = None


def plan_run(
    config: TrainConfig,
    *,
    sampled_records: int,
    private_records: int,
    world_size: int,
    seq_len: int,
    model: Any,
) -> Plan:
    from finetrail.training.accounting import calibrate_noise

    b = config.optim.batch_size
    if b > sampled_records:
        raise ConfigError(
            f"optim.batch_size {b} exceeds the {sampled_records} training records",
            field="optim.batch_size",
        )
    spe = math.ceil(sampled_records / b)  # len(DataLoader): Opacus's sample rate is 1/spe
    total = config.optim.steps or math.ceil((config.optim.epochs or 1.0) * spe)
    plan = Plan(
        sampled_records=sampled_records,
        private_records=private_records,
        steps_per_epoch=spe,
        total_steps=total,
        expected_batch_size=float(b),
        world_size=world_size,
    )
    privacy = config.privacy
    if not isinstance(privacy, PrivacyConfig):
        return plan
    q = 1.0 / spe
    if privacy.noise_multiplier is not None:
        sigma, source = privacy.noise_multiplier, "config"
    else:
        assert privacy.target_epsilon is not None
        sigma = calibrate_noise(
            target_epsilon=privacy.target_epsilon, delta=privacy.delta, sample_rate=q, steps=total
        )
        source = "target_epsilon"
    mode, msource, reason = choose_clipping_mode(model, seq_len=seq_len, requested=privacy.clipping)
    check_per_example_structure(model, method=config.method.name, clipping=mode)
    return Plan(
        sampled_records=sampled_records,
        private_records=private_records,
        steps_per_epoch=spe,
        total_steps=total,
        expected_batch_size=sampled_records * q,
        world_size=world_size,
        sample_rate=q,
        noise_multiplier=sigma,
        noise_source=source,
        clipping_mode=mode,
        clipping_source=msource,
        clipping_reason=reason,
    )


def check_precision(config: TrainConfig, device: Any) -> None:
    """Refuse mixed precision on a device other than CUDA (before anything is loaded)."""
    precision = config.optim.precision
    if precision != "fp32" and torch.device(device).type != "cuda":
        raise ConfigError(
            f"optim.precision {precision!r} autocasts on CUDA only; this run's device is "
            f"{torch.device(device).type} (device: {config.device})",
            field="optim.precision",
            why="autocast on the CPU is slower than fp32 for these models and is not what the "
            "setting promises",
            fix="set optim.precision: fp32 on the CPU, or train on a CUDA device (device: auto "
            "or cuda)",
        )


def os_generator(device: Any = "cpu") -> torch.Generator:
    """A generator seeded from the operating system's entropy."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int.from_bytes(os.urandom(8), "little") & ((1 << 63) - 1))
    return gen


def dp_generator(
    privacy: PrivacyConfig, seed: int, *, device: Any = "cpu", stream: int = 0
) -> torch.Generator | None:
    """The generator DP sampling (``stream`` 0) or noise (1) draws from, per
    ``privacy.randomness``: OS-seeded, seeded from the config (research), or None (secure: Opacus's
    CSPRNG)."""
    if privacy.randomness == "secure":
        return None
    if privacy.randomness == "seeded":
        gen = torch.Generator(device=device)
        gen.manual_seed((seed * 1_000_003 + 7919 * (stream + 1)) & ((1 << 63) - 1))
        return gen
    return os_generator(device)


def require_csprng() -> None:
    import importlib.util

    if importlib.util.find_spec("torchcsprng") is None:
        raise ConfigError(
            "privacy.randomness 'secure' needs Opacus's secure_mode, which needs the torchcsprng "
            "package, and it is not installed",
            field="privacy.randomness",
            why="torchcsprng is not published for this torch version",
            fix="install torchcsprng built for your torch, or use randomness: os (OS-seeded "
            "generators; the evidence states which ran)",
        )


@dataclass
class Engine:
    model: Any  # what the forward pass goes through (the model, or DPDDP around it)
    inner: Any  # the model itself
    optimizer: Any
    loader: Any
    stepper: Stepper
    privacy_engine: Any = None
    hooks: Any = None
    params: list[torch.Tensor] = field(default_factory=list)
    # gradient accumulation (optim.physical_batch_size): DP runs get Opacus's splitting loader
    # (the optimizer skips the update until a logical batch ends); runs without DP split each
    # batch in the loop (:meth:`chunks`)
    physical_batch_size: int | None = None
    precision: str = "fp32"  # optim.precision: bf16 autocasts forward and loss (CUDA only)

    def autocast(self) -> Any:
        """The context the forward pass and the loss run in (:func:`check_precision` ran)."""
        import contextlib

        if self.precision == "bf16":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def chunks(self, n: int) -> list[tuple[int, int]]:
        """The physical chunks the loop cuts an ``n``-record batch from the loader into: one for DP
        runs (Opacus's loader already yields physical batches), else at most
        ``physical_batch_size`` records each."""
        size = self.physical_batch_size
        if self.privacy_engine is not None or size is None or n <= size:
            return [(0, n)]
        return [(i, min(i + size, n)) for i in range(0, n, size)]

    def logical_step_done(self) -> bool:
        """After ``stepper.step()``: whether that step ended a logical batch (an update, counted
        by the accountant) or only clipped and accumulated a physical chunk (Opacus skipped it)."""
        return not bool(getattr(self.optimizer, "_is_last_step_skipped", False))

    def close(self) -> None:
        if self.hooks is not None and hasattr(self.hooks, "cleanup"):
            self.hooks.cleanup()
            self.hooks = None


class LossMaskLoader:
    """Batches of (ids, attention mask, loss mask): hands each batch's loss mask to the stepper
    (which takes the loss on those tokens only) and yields the batch as the loop expects it."""

    def __init__(self, loader: Any, stepper: Stepper) -> None:
        self.loader, self.stepper = loader, stepper

    def __iter__(self) -> Any:
        for batch in self.loader:
            self.stepper.loss_mask = batch[2]
            yield batch

    def __len__(self) -> int:
        return len(self.loader)


def _with_loss_mask(loader: Any, stepper: Stepper, dataset: TensorDataset) -> Any:
    return LossMaskLoader(loader, stepper) if len(dataset.tensors) > 2 else loader


def _optimizer(config: TrainConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    o = config.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.learning_rate, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.learning_rate, weight_decay=o.weight_decay)


def build_engine(
    config: TrainConfig,
    *,
    model: Any,
    plan: Plan,
    dataset: TensorDataset,
    distributed: bool,
    post_privatise: Any = None,
) -> Engine:
    """Optimizer and loader (plus Opacus for DP runs). ``post_privatise`` is called after Opacus
    has clipped and noised the batch gradient, before the update (used by EWC)."""
    model.train()  # from_pretrained returns eval mode; Opacus's validator wants training mode
    if config.optim.gradient_checkpointing:
        # refused under DP by the config (Opacus's per-sample hooks break with it)
        assert not isinstance(config.privacy, PrivacyConfig)
        # (transformers turns the KV cache off for each training forward pass itself)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(config, params)
    check_optimizer_params(optimizer, model)
    privacy = config.privacy
    b = config.optim.batch_size
    if not isinstance(privacy, PrivacyConfig):
        gen = torch.Generator().manual_seed(config.seed)
        loader = DataLoader(dataset, batch_size=b, shuffle=True, generator=gen)
        stepper = Stepper(optimizer=optimizer, mode=None)
        if post_privatise is not None:
            stepper.before_update = post_privatise
        return Engine(
            model=model,
            inner=model,
            optimizer=optimizer,
            loader=_with_loss_mask(loader, stepper, dataset),
            stepper=stepper,
            params=params,
            physical_batch_size=config.optim.physical_batch_size,
            precision=config.optim.precision,
        )

    from opacus import PrivacyEngine

    forward_model = model
    if distributed:
        from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP

        forward_model = DPDDP(model)
    device = next(iter(params)).device if params else "cpu"
    secure = privacy.randomness == "secure"
    if secure:
        require_csprng()
    loader = DataLoader(dataset, batch_size=b, generator=dp_generator(privacy, config.seed))
    engine = PrivacyEngine(accountant="prv", secure_mode=secure)
    out = engine.make_private(
        module=forward_model,
        optimizer=optimizer,
        data_loader=loader,
        criterion=SequenceLoss(),
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=privacy.max_grad_norm,
        poisson_sampling=True,
        grad_sample_mode=plan.clipping_mode,
        wrap_model=False,
        # secure mode: Opacus draws from its CSPRNG and refuses a generator of ours
        noise_generator=None
        if secure or not params
        else dp_generator(privacy, config.seed, device=device, stream=1),
    )
    if plan.clipping_mode == "ghost":
        hooks, dp_optimizer, criterion, dp_loader = out
    else:
        hooks, dp_optimizer, dp_loader = out
        criterion = None
    if post_privatise is not None:
        accountant_hook = dp_optimizer.step_hook

        def _after_noise(opt: Any) -> None:
            if accountant_hook is not None:
                accountant_hook(opt)
            post_privatise()

        dp_optimizer.step_hook = _after_noise
    stepper = Stepper(
        optimizer=dp_optimizer, mode=plan.clipping_mode, criterion=criterion, hooks=hooks
    )
    physical = config.optim.physical_batch_size
    if physical is not None:
        from opacus.utils.batch_memory_manager import BatchMemoryManager

        # Opacus's splitting loader: each Poisson-sampled batch in chunks of at most ``physical``
        # records; the optimizer clips and accumulates every chunk and adds noise, steps and
        # calls the accountant once, at a logical batch's last chunk
        dp_loader = BatchMemoryManager(
            data_loader=dp_loader, max_physical_batch_size=physical, optimizer=dp_optimizer
        ).__enter__()
    return Engine(
        model=forward_model,
        inner=model,
        optimizer=dp_optimizer,
        loader=_with_loss_mask(dp_loader, stepper, dataset),
        stepper=stepper,
        privacy_engine=engine,
        hooks=hooks,
        params=params,
        physical_batch_size=physical,
        precision=config.optim.precision,
    )
