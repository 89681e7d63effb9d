"""The training loop: steps, validation, early stopping, the step-1 guard and the progress bar.

:class:`RunState` is updated as the loop runs, so an interrupted run can still be described
truthfully (steps taken, tokens, epsilon spent so far) in a ``completed: false`` record.

DP runs are audited by default: :class:`~.mechanism_audit.MechanismAudit` instruments the
Opacus optimizer for the whole loop and its judgement lands in ``RunState.mechanism`` (the
facade writes it as ``evidence/mechanism.json``). The claim it tests is ``mechanism_claim``
(the evidence's values); without one it falls back to the plan and the optimizer's clipping norm,
and says so in ``claim.source``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from finetrail.errors import CheckFailed
from finetrail.governance.evidence.mechanism import MechanismClaim, MechanismEvidence
from finetrail.training.config import EarlyStoppingConfig
from finetrail.training.dp_guards import MovedCheck, model_inputs, sequence_loss
from finetrail.training.engine import Engine, Plan

__all__ = ["RunState", "evaluate", "mechanism_claim", "run_loop"]


@dataclass
class RunState:
    started: float = field(default_factory=time.perf_counter)
    step: int = 0
    tokens: int = 0
    eval_tokens: int = 0
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    val_loss: list[tuple[int, float]] = field(default_factory=list)
    best_step: int | None = None
    best_val: float | None = None
    stopped_early: bool = False
    restored_best: bool = False
    wall_seconds: float = 0.0
    mechanism: MechanismEvidence | None = None  # DP runs: the white-box mechanism audit

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def evaluate(
    model: Any,
    method: str,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    loss_mask: torch.Tensor | None = None,
    *,
    batch_size: int,
    device: Any,
) -> tuple[float, int]:
    """Mean over records of the per-record mean token loss; and the tokens processed.

    With ``loss_mask`` (prompt/completion and chat data) the loss is on the same tokens as the
    training loss (completion / assistant tokens), and the mean is over the records that keep
    such a token."""
    was_training = model.training
    model.eval()
    total, tokens, n, counted = 0.0, 0, input_ids.shape[0], 0
    with torch.no_grad():
        for i in range(0, n, batch_size):
            ids, mask = input_ids[i : i + batch_size], attention_mask[i : i + batch_size]
            length = int(mask.sum(1).max())
            ids, mask = ids[:, :length].to(device), mask[:, :length].to(device)
            logits = model(**model_inputs(ids, mask, method)).logits
            target = mask
            if loss_mask is not None:
                target = mask * loss_mask[i : i + batch_size, :length].to(device, mask.dtype)
            per_record = sequence_loss(logits, ids, target)
            keep = target[:, 1:].sum(1) > 0
            total += float(per_record[keep].sum())
            counted += int(keep.sum()) if loss_mask is not None else ids.shape[0]
            tokens += int(mask.sum())
    model.train(was_training)
    return (total / counted if counted else math.nan), tokens


def _broadcast(values: list[float], world_size: int, device: Any) -> list[float]:
    if world_size == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return [float(v) for v in t.tolist()]


def mechanism_claim(
    plan: Plan,
    *,
    max_grad_norm: float,
    delta: float | None,
    source: str = "the plan and the config (privacy.max_grad_norm)",
) -> MechanismClaim:
    """The mechanism the evidence states: what the audit tests the optimizer against."""
    assert plan.noise_multiplier is not None
    return MechanismClaim(
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=max_grad_norm,
        expected_batch_size=plan.expected_batch_size / plan.world_size,
        sample_rate=plan.sample_rate,
        delta=delta,
        source=source,
    )


def _start_audit(
    engine: Engine,
    plan: Plan,
    claim: MechanismClaim | None,
    settings: Any,
    post_processing: str | None,
    state: RunState,
) -> Any:
    from finetrail.training.mechanism_audit import MechanismAudit, not_run

    if plan.world_size > 1:
        state.mechanism = not_run(
            "the mechanism audit observes one process's optimizer; Opacus DPDDP (more than one "
            "process) is not audited"
        )
        return None
    if claim is None:
        claim = mechanism_claim(
            plan,
            max_grad_norm=float(engine.optimizer.max_grad_norm),
            delta=None,
            source="the plan; the clipping norm from the optimizer (the caller passed no claim)",
        )
    audit = MechanismAudit(
        optimizer=engine.optimizer,
        claim=claim,
        mode=plan.clipping_mode or "hooks",
        hooks=engine.hooks,
        names={id(p): n for n, p in engine.inner.named_parameters()},
        settings=settings,
        post_processing=post_processing,
    )
    audit.attach()
    return audit


class _LogicalLoss:
    """The loss of one logical batch, over its physical chunks (weighted by their records)."""

    def __init__(self) -> None:
        self.total, self.records = 0.0, 0

    def add(self, loss: float, records: int) -> None:
        self.total += loss * records
        self.records += records

    def pop(self) -> float:
        value = self.total / self.records if self.records else float("nan")
        self.total, self.records = 0.0, 0
        return value


def _physical_step(
    engine: Engine, batch: Any, method: str, device: Any, state: RunState, pending: _LogicalLoss
) -> None:
    """Forward and backward of one batch from the loader, in :meth:`Engine.chunks` (without DP,
    chunk losses are weighted so their gradients sum to the batch's mean-loss gradient)."""
    stepper = engine.stepper
    ids_all, mask_all = batch[0], batch[1]
    n = int(ids_all.shape[0])
    loss_mask = stepper.loss_mask
    try:
        for lo, hi in engine.chunks(n):
            ids, mask = ids_all[lo:hi], mask_all[lo:hi]
            if loss_mask is not None and (lo, hi) != (0, n):
                stepper.loss_mask = loss_mask[lo:hi]
            length = int(mask.sum(1).max())
            ids, mask = ids[:, :length].to(device), mask[:, :length].to(device)
            with engine.autocast():
                logits = engine.model(**model_inputs(ids, mask, method)).logits
                loss = stepper.loss(logits, ids, mask)
            loss_value = float(loss.item())
            if not math.isfinite(loss_value):
                raise CheckFailed(
                    f"the training loss became non-finite at step {state.step + 1}",
                    fix="lower optim.learning_rate or check the data",
                )
            if (lo, hi) != (0, n):
                loss = loss * ((hi - lo) / n)
            stepper.backward(loss)
            pending.add(loss_value, hi - lo)
            state.tokens += int(mask.sum())
    finally:
        stepper.loss_mask = loss_mask


def run_loop(
    *,
    engine: Engine,
    plan: Plan,
    method: str,
    device: Any,
    state: RunState,
    validation: tuple[torch.Tensor, ...] | None,  # ids, attention mask[, loss mask]
    eval_every: int,
    early_stopping: EarlyStoppingConfig | None,
    rank: int,
    dp: bool,
    progress: bool,
    on_step: Callable[[int, float], None] | None = None,
    on_eval: Callable[[int, float], None] | None = None,
    epsilon_at: Callable[[int], float] | None = None,
    audit_mechanism: bool = True,
    mechanism: MechanismClaim | None = None,
    mechanism_settings: Any = None,
    post_processing: str | None = None,
) -> None:
    """Train for ``plan.total_steps`` steps (fewer if early stopping fires).

    DP runs (``engine.privacy_engine`` set) are audited unless ``audit_mechanism`` is false:
    ``mechanism`` is the claim to test (:func:`mechanism_claim`), ``mechanism_settings`` an
    :class:`~.mechanism_audit.AuditSettings`, ``post_processing`` names a declared change to the
    released gradient before the update (``"ewc"``)."""
    from tqdm import tqdm

    model, inner, stepper = engine.model, engine.inner, engine.stepper
    model.train()
    # DP: noise moves every tensor at step 1. Without noise, LoRA's A matrices get an exactly
    # zero gradient at step 1 (B starts at zero), so the check waits for step 2 (a one-step
    # non-private run is not checked).
    moved = MovedCheck(inner, after_step=1 if dp else 2)
    trainable = [(n, p) for n, p in inner.named_parameters() if p.requires_grad]
    best_state: dict[str, torch.Tensor] | None = None
    bad_evals = 0
    pending = _LogicalLoss()
    audit = None
    if dp and audit_mechanism and engine.privacy_engine is not None:
        audit = _start_audit(engine, plan, mechanism, mechanism_settings, post_processing, state)
    loop_started = time.perf_counter()
    bar = tqdm(
        total=plan.total_steps,
        desc="train",
        unit="step",
        file=sys.stderr,
        disable=not (progress and rank == 0),
        dynamic_ncols=True,
        leave=True,
    )
    try:
        while state.step < plan.total_steps and not state.stopped_early:
            for batch in engine.loader:
                if state.step >= plan.total_steps or state.stopped_early:
                    break
                if batch[0].shape[0] == 0:
                    stepper.empty_step(engine.params)  # Poisson sampled no record: noise only
                else:
                    _physical_step(engine, batch, method, device, state, pending)
                    stepper.step()
                if not engine.logical_step_done():
                    continue  # a physical chunk of a logical batch: clipped and accumulated
                loss_value = pending.pop()
                state.step += 1
                moved.check(inner, state.step)
                if not math.isnan(loss_value):
                    state.train_loss.append((state.step, loss_value))
                if on_step is not None:
                    on_step(state.step, loss_value)
                post: dict[str, str] = {}
                if not math.isnan(loss_value):
                    post["loss"] = f"{loss_value:.4f}"
                if epsilon_at is not None:
                    post["eps(rdp)"] = f"{epsilon_at(state.step):.3f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)

                if validation is not None and (
                    state.step % eval_every == 0 or state.step == plan.total_steps
                ):
                    val, improved, stop = math.nan, 0.0, 0.0
                    if rank == 0:
                        val, tok = evaluate(
                            inner,
                            method,
                            *validation,
                            batch_size=max(1, int(plan.expected_batch_size)),
                            device=device,
                        )
                        state.eval_tokens += tok
                        if not math.isfinite(val):
                            raise CheckFailed(
                                f"the validation loss became non-finite at step {state.step}",
                                fix="lower optim.learning_rate or check the data",
                            )
                        if state.best_val is None or val < state.best_val - (
                            early_stopping.min_delta if early_stopping else 0.0
                        ):
                            improved, bad_evals = 1.0, 0
                        else:
                            bad_evals += 1
                        stop = float(
                            early_stopping is not None and bad_evals >= early_stopping.patience
                        )
                    val, improved, stop = _broadcast([val, improved, stop], plan.world_size, device)
                    state.val_loss.append((state.step, val))
                    if on_eval is not None:
                        on_eval(state.step, val)
                    if improved:
                        state.best_val, state.best_step = val, state.step
                        if early_stopping is not None and early_stopping.restore_best:
                            best_state = {n: p.detach().clone() for n, p in trainable}
                    if stop and state.step < plan.total_steps:
                        state.stopped_early = True
    finally:
        bar.close()
        state.wall_seconds = state.elapsed()
        if audit is not None:
            audit.detach()
            try:
                state.mechanism = audit.evidence(
                    steps=state.step, loop_seconds=time.perf_counter() - loop_started
                )
            except Exception as exc:  # recorded as not run (fails closed); never masks the loop's
                from finetrail.training.mechanism_audit import not_run

                state.mechanism = not_run(f"the audit's judgement failed: {exc}", steps=state.step)
    if (
        state.stopped_early
        and best_state is not None
        and state.best_step is not None
        and state.best_step != state.step
    ):
        with torch.no_grad():
            for n, p in trainable:
                p.copy_(best_state[n])
        state.restored_best = True
