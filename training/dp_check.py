"""``--check-dp``: Opacus's per-sample gradients against a brute-force per-example loop.

The check builds the model exactly as training would (same method, same DP preparation, same
clipping mode), in float32 and with dropout off (so the two computations see the same function),
and takes a few training records of different lengths, so that padding is exercised.

- hooks mode: each example's ``grad_sample`` is compared with the gradient of that example's loss
  computed alone, unpadded;
- ghost mode (no per-sample gradients are materialised): the per-sample gradient norms, and the
  clipped sum Opacus's second backward pass produces, against the brute-force ones.

The error is ``max_i ||opacus_i - brute_i|| / ||brute_i||``; the check passes at <= 1e-5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from finetrail.governance.evidence.training import DPCheck
from finetrail.training.config import PrivacyConfig, TrainConfig
from finetrail.training.data import encode, tokenize
from finetrail.training.dp_guards import (
    SequenceLoss,
    choose_clipping_mode,
    model_inputs,
    quiet_hook_warning,
    sequence_loss,
)
from finetrail.training.formats import Record
from finetrail.training.model import build_model

__all__ = ["TOLERANCE", "DPCheckReport", "check_per_sample_gradients"]

TOLERANCE = 1e-5


@dataclass(frozen=True)
class DPCheckReport:
    record: DPCheck
    worst: tuple[str, ...]  # the tensors (or quantities) with the largest errors


def _pick(texts: tuple[str, ...] | list[str], tokenizer: Any, k: int) -> list[int]:
    """Indices of ``k`` records of spread-out lengths from the first 64 (so the batch has
    padding)."""
    pool = list(texts[:64])
    lengths = [len(tokenizer(t, verbose=False)["input_ids"]) for t in pool]  # full lengths
    order = sorted(range(len(pool)), key=lambda i: lengths[i])
    if len(order) <= k:
        return order
    return sorted({order[round(j * (len(order) - 1) / (k - 1))] for j in range(k)})


def _dropout_off(model: torch.nn.Module) -> None:
    model.eval()
    for mod in model.modules():  # Opacus only records activations of modules in training mode
        if any(p.requires_grad for p in mod.parameters(recurse=False)):
            mod.train()


def check_per_sample_gradients(
    config: TrainConfig,
    *,
    texts: tuple[str, ...] | list[str],
    records: Sequence[Record] = (),
    examples: int = 4,
    mode: str | None = None,
) -> DPCheckReport:
    """``records`` (prompt/completion, chat) take the loss on the same tokens as training."""
    privacy = config.privacy
    clip = privacy.max_grad_norm if isinstance(privacy, PrivacyConfig) else 1.0
    requested = mode or (privacy.clipping if isinstance(privacy, PrivacyConfig) else "auto")
    built = build_model(config, device=torch.device("cpu"), dp=True, dtype="float32")
    model = built.model
    _dropout_off(model)
    picked = _pick(texts, built.tokenizer, examples)
    ids, mask = tokenize(built.tokenizer, [texts[i] for i in picked], config.data.max_length)
    loss_mask = mask
    if records and any(r.format != "text" for r in records):
        ids, mask, lm, _ = encode(built.tokenizer, [records[i] for i in picked], config.data)
        loss_mask = mask if lm is None else mask * lm
    chosen, _, _ = choose_clipping_mode(model, seq_len=ids.shape[1], requested=requested)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]

    brute: list[list[torch.Tensor]] = []
    for i in range(ids.shape[0]):
        n_tok = int(mask[i].sum())
        one_ids, one_mask = ids[i : i + 1, :n_tok], mask[i : i + 1, :n_tok]
        loss = sequence_loss(
            model(**model_inputs(one_ids, one_mask, built.method)).logits,
            one_ids,
            loss_mask[i : i + 1, :n_tok],
        ).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        brute.append(
            [
                torch.zeros_like(p) if g is None else g.detach()
                for p, g in zip(params, grads, strict=True)
            ]
        )

    from opacus import PrivacyEngine

    model.train()  # Opacus's validator wants the whole model in training mode
    optimizer = torch.optim.SGD(params, lr=0.0)
    loader = DataLoader(TensorDataset(ids, mask), batch_size=ids.shape[0])  # only its size
    out = PrivacyEngine(accountant="prv").make_private(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        criterion=SequenceLoss(),
        noise_multiplier=0.0,
        max_grad_norm=clip,
        poisson_sampling=False,
        grad_sample_mode=chosen,
        wrap_model=False,
    )
    hooks = out[0]
    _dropout_off(model)
    try:
        with quiet_hook_warning():
            logits = model(**model_inputs(ids, mask, built.method)).logits
            if chosen == "ghost":
                criterion = out[2]
                criterion(logits, ids, loss_mask).backward()
                errs, worst = _compare_ghost(hooks, named, brute, clip)
                compared = "per-sample gradient norms and the clipped gradient sum (ghost clipping)"
            else:
                sequence_loss(logits, ids, loss_mask).mean().backward()  # type: ignore[no-untyped-call]
                errs, worst = _compare_hooks(named, brute)
                compared = "per-sample gradients of every trainable tensor (hooks)"
    finally:
        hooks.cleanup()
    max_err = max(errs) if errs else 0.0
    record = DPCheck.model_validate(
        {
            "passed": max_err <= TOLERANCE,
            "max_relative_error": max_err,
            "tolerance": TOLERANCE,
            "examples": ids.shape[0],
            "clipping_mode": chosen,
            "compared": compared,
            "dtype": "float32",
        }
    )
    return DPCheckReport(record=record, worst=worst)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    denom = float(b.norm())
    diff = float((a - b).norm())
    return diff / denom if denom > 0 else diff


def _compare_hooks(
    named: list[tuple[str, torch.Tensor]], brute: list[list[torch.Tensor]]
) -> tuple[list[float], tuple[str, ...]]:
    errs: list[float] = []
    per_tensor: dict[str, float] = {}
    for i, grads in enumerate(brute):
        ours, ref = [], []
        for (name, p), g in zip(named, grads, strict=True):
            gs = getattr(p, "grad_sample", None)
            if gs is None:
                per_tensor[name] = float("inf")
                continue
            gs = gs[-1] if isinstance(gs, list) else gs
            if gs.shape[0] != len(brute):  # e.g. GPT-2's position ids with batch dimension 1
                per_tensor[name] = float("inf")
                continue
            ours.append(gs[i].flatten())
            ref.append(g.flatten())
            per_tensor[name] = max(per_tensor.get(name, 0.0), _rel(gs[i], g))
        errs.append(_rel(torch.cat(ours), torch.cat(ref)) if ours else float("inf"))
    if any(v == float("inf") for v in per_tensor.values()):
        errs.append(float("inf"))
    worst = sorted(per_tensor, key=lambda n: -per_tensor[n])[:5]
    return errs, tuple(f"{n}: {per_tensor[n]:.3g}" for n in worst if per_tensor[n] > TOLERANCE)


def _compare_ghost(
    hooks: Any, named: list[tuple[str, torch.Tensor]], brute: list[list[torch.Tensor]], clip: float
) -> tuple[list[float], tuple[str, ...]]:
    ref_norms = torch.stack([torch.cat([g.flatten() for g in grads]).norm() for grads in brute])
    norms = hooks.per_sample_gradient_norms.detach().to(ref_norms.dtype)
    errs = [abs(float(a - b)) / max(float(b), 1e-30) for a, b in zip(norms, ref_norms, strict=True)]
    coef = (clip / (ref_norms + 1e-6)).clamp(max=1.0)
    ref_sum = [sum(coef[i] * brute[i][j] for i in range(len(brute))) for j in range(len(named))]
    ours = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for _, p in named]
    )
    errs.append(_rel(ours, torch.cat([torch.as_tensor(r).flatten() for r in ref_sum])))
    worst = []
    if max(errs[:-1], default=0.0) > TOLERANCE:
        worst.append(f"per-sample norms: {max(errs[:-1]):.3g}")
    if errs[-1] > TOLERANCE:
        worst.append(f"clipped sum: {errs[-1]:.3g}")
    return errs, tuple(worst)
