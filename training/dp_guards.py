"""Guards that make the silent DP failures measured here impossible (../shared/notes/dp-pitfalls.md).

- :func:`sequence_loss`: each example's loss is the mean over *its own* tokens; the batch loss is
  the mean of those (HF's loss divides by the whole batch's token count, so one example's gradient
  would depend on the others' lengths).
- :class:`Stepper`: in ghost-clipping mode only the criterion returned by ``make_private`` may be
  backpropagated, and an optimizer step without Opacus's clipping pass is refused.
- :func:`check_optimizer_params`, :class:`MovedCheck`: the optimizer holds the model's own
  tensors, and every trainable tensor changed after the first step (opacus#820).
- :func:`model_inputs`: ``position_ids`` expanded to the batch (opacus#841, GPT-2).
- :func:`choose_clipping_mode`: hooks or ghost from the trainable size and sequence length;
  ghost with tied trainable parameters is refused.
- :func:`prepare_for_dp`: ``padding_idx`` cleared on trainable embeddings (Opacus's embedding
  grad sampler ignores it) and IA3 vectors made visible to Opacus (peft keeps them in a
  ``ParameterDict`` that is never called, so no hook would see them); the per-architecture
  changes of :mod:`.architectures`.
- :mod:`.dp_shapes` (called from :func:`.engine.plan_run` and :meth:`Stepper.step`): every
  hooked layer is per-example before training, and the first step's per-sample gradients have
  the batch's leading dimension and are clipped once per example.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from finetrail.errors import DPGuardError

__all__ = [
    "MovedCheck",
    "SequenceLoss",
    "Stepper",
    "check_optimizer_params",
    "choose_clipping_mode",
    "model_inputs",
    "prepare_for_dp",
    "quiet_hook_warning",
    "release_for_saving",
    "sequence_loss",
    "tied_trainable_parameters",
]

IA3_DIRECT_PREFIX = "_dp_scale_"


@contextlib.contextmanager
def quiet_hook_warning() -> Iterator[None]:
    """Silence torch's notice that a full backward hook fires with no input requiring grad (the
    normal case for the first adapter layer: the frozen embeddings produce its input)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Full backward hook is firing", category=UserWarning
        )
        yield


# ---- the loss ---------------------------------------------------------------------------------


def sequence_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Per-example loss, shape ``(B,)``: the mean next-token cross-entropy over that example's
    own (unpadded) target tokens. Computed in float32."""
    if logits.shape[1] > input_ids.shape[1]:  # prefix tuning may return virtual positions
        logits = logits[:, -input_ids.shape[1] :]
    pred = logits[:, :-1].float()
    target = input_ids[:, 1:]
    mask = attention_mask[:, 1:].to(pred.dtype)
    tok = nn.functional.cross_entropy(
        pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="none"
    ).view(target.shape)
    return (tok * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class SequenceLoss(nn.Module):
    """:func:`sequence_loss` as a criterion with a ``reduction`` (what Opacus's ghost wrapper sets
    to ``"none"`` to get per-example losses)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(
        self, logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        per_example = sequence_loss(logits, input_ids, attention_mask)
        if self.reduction == "none":
            return per_example
        if self.reduction == "sum":
            return per_example.sum()
        return per_example.mean()


def model_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, method: str
) -> dict[str, torch.Tensor]:
    """Forward kwargs. ``position_ids`` are expanded to ``(B, T)``: GPT-2 builds them with batch
    dimension 1, which breaks Opacus's per-sample gradient of the position embedding (opacus#841).
    Prefix tuning is left to peft, which offsets positions by the virtual tokens."""
    kw = {"input_ids": input_ids, "attention_mask": attention_mask}
    if method != "prefix":
        b, t = input_ids.shape
        kw["position_ids"] = torch.arange(t, device=input_ids.device).unsqueeze(0).expand(b, t)
    return kw


# ---- preparing a model for Opacus -------------------------------------------------------------


def _register_ia3_grad_sampler() -> type | None:
    try:
        from peft.tuners.ia3 import layer as ia3_layer
    except ImportError:  # pragma: no cover - peft is a training dependency
        return None
    from opacus.grad_sample import GradSampleHooks, register_grad_sampler

    cls = ia3_layer.Linear
    if cls not in GradSampleHooks.GRAD_SAMPLERS:
        register_grad_sampler(cls)(_ia3_grad_sample)
    return cls


def _ia3_grad_sample(
    module: Any, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[torch.Tensor, torch.Tensor]:
    """Per-sample gradients of peft's IA3 scaling vectors.

    Non-feed-forward layers compute ``base(x) * s``: the gradient is ``sum_t base(x)_t * g_t``.
    Feed-forward layers compute ``base(x * s)``: the gradient is ``sum_t x_t * (dbase^T g)_t``.
    """
    x = activations[0]
    out: dict[torch.Tensor, torch.Tensor] = {}
    for name in module.active_adapters:
        if name not in module.ia3_l:
            continue
        p = module.ia3_l[name]
        if not p.requires_grad:
            continue
        if module.is_feedforward:
            with torch.enable_grad():
                h = (x * p.detach().flatten()).detach().requires_grad_(True)
                (dh,) = torch.autograd.grad(module.base_layer(h), h, grad_outputs=backprops)
            g = x * dh
        else:
            with torch.no_grad():
                g = module.base_layer(x) * backprops
        g = g.reshape(g.shape[0], -1, g.shape[-1]).sum(1)
        out[p] = g.reshape(g.shape[0], *p.shape).to(p.dtype)
    return out


def clear_padding_idx(model: nn.Module) -> list[str]:
    """Opacus's embedding grad sampler ignores ``padding_idx``; autograd leaves that row's
    gradient at zero. Where the pad id is also a real token (pad = eos is common) the per-sample
    gradients then disagree with the real ones (relative error 0.5-7 measured here). Clearing
    ``padding_idx`` on trainable embeddings changes no forward value and makes them agree."""
    cleared = []
    for name, mod in model.named_modules():
        if (
            isinstance(mod, nn.Embedding)
            and mod.padding_idx is not None
            and mod.weight.requires_grad
        ):
            cleared.append(f"{name} (padding_idx {mod.padding_idx})")
            mod.padding_idx = None
    if not cleared:
        return []
    return [
        "cleared padding_idx on trainable embeddings " + ", ".join(cleared) + ": Opacus's "
        "embedding grad sampler ignores it, so per-sample gradients disagreed with autograd "
        "wherever the pad id is also a real token; the forward pass is unchanged"
    ]


def expose_ia3(model: nn.Module) -> list[str]:
    """Register each trainable IA3 vector also on its IA3 layer (the module whose forward uses
    it) and give Opacus a per-sample gradient rule for that layer."""
    ia3_cls = _register_ia3_grad_sampler()
    exposed = 0
    if ia3_cls is not None:
        for mod in model.modules():
            if isinstance(mod, ia3_cls):
                vectors: Any = mod.ia3_l
                for adapter, p in vectors.items():
                    if p.requires_grad:
                        mod.register_parameter(IA3_DIRECT_PREFIX + adapter, p)
                        exposed += 1
    if not exposed:
        return []
    return [
        f"registered {exposed} IA3 scaling vectors on their IA3 layers with a per-sample "
        "gradient rule (peft keeps them in a ParameterDict that Opacus's hooks never see)"
    ]


def _contiguous_inputs(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


def contiguous_embedding_inputs(model: nn.Module) -> list[str]:
    """Opacus's ghost-clipping norm sampler for embeddings calls ``.view`` on the input ids,
    which fails on the expanded (non-contiguous) prefix tokens peft feeds its prefix encoder;
    a forward pre-hook hands every trainable embedding contiguous ids (same values)."""
    for mod in model.modules():
        if isinstance(mod, nn.Embedding) and mod.weight.requires_grad:
            mod.register_forward_pre_hook(_contiguous_inputs)
    return []  # no change to any value: nothing to report


def prepare_for_dp(model: nn.Module) -> list[str]:
    """Make the model's trainable tensors correct under Opacus; return what was changed."""
    from finetrail.training.architectures import prepare_architecture

    return [
        *clear_padding_idx(model),
        *expose_ia3(model),
        *contiguous_embedding_inputs(model),
        *prepare_architecture(model),
    ]


def release_for_saving(model: nn.Module) -> None:
    """Undo the IA3 double registration so peft saves the adapter under its own names (and the
    per-architecture changes of :func:`prepare_for_dp`)."""
    from finetrail.training.architectures import release_architecture

    release_architecture(model)
    for mod in model.modules():
        for name in [n for n in mod._parameters if n.startswith(IA3_DIRECT_PREFIX)]:
            del mod._parameters[name]


def tied_trainable_parameters(model: nn.Module) -> list[str]:
    """Names of trainable parameters owned by more than one module (e.g. GPT-2 wte / lm_head)."""
    owners: dict[int, list[str]] = {}
    for mname, mod in model.named_modules(remove_duplicate=False):
        if isinstance(mod, nn.ParameterDict | nn.ParameterList):
            continue  # containers are never called: holding a tensor there is not a second use
        for pname, p in mod.named_parameters(recurse=False):
            if p.requires_grad:
                owners.setdefault(id(p), []).append(f"{mname}.{pname}" if mname else pname)
    return sorted({", ".join(sorted(set(v))) for v in owners.values() if len(set(v)) > 1})


def choose_clipping_mode(model: nn.Module, *, seq_len: int, requested: str) -> tuple[str, str, str]:
    """(mode, source, reason). Hooks store a per-sample gradient (size of the layer's trainable
    tensors per example); ghost clipping builds two ``T x T`` Gram matrices per layer instead and
    runs a second backward pass. Ghost pays off when ``2 T^2`` is below the layer's size."""
    tied = tied_trainable_parameters(model)
    if requested == "ghost" and tied:
        from finetrail.training.architectures import model_type

        raise DPGuardError(
            f"ghost clipping cannot be used with tied trainable parameters (architecture "
            f"{model_type(model)}): " + "; ".join(tied),
            why="Opacus computes one norm per module in ghost mode; a tensor shared by two modules "
            "would be clipped twice (Opacus raises 'Parameter tying is not supported')",
            field="privacy.clipping",
            fix="set privacy.clipping: hooks (or auto), or use a PEFT method",
        )
    hooks_cost = 0
    ghost_cost = 0
    for mod in model.modules():
        own = [p for p in mod.parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        size = sum(p.numel() for p in own)
        hooks_cost += size
        linear_like = isinstance(mod, nn.Linear | nn.Embedding) or type(mod).__name__ == "Conv1D"
        ghost_cost += 2 * seq_len * seq_len if linear_like else size
    if requested != "auto":
        return requested, "config", f"set in the config (privacy.clipping: {requested})"
    if tied:
        return "hooks", "auto", "tied trainable parameters rule out ghost clipping"
    if ghost_cost < hooks_cost:
        return (
            "ghost",
            "auto",
            f"per-example Gram matrices ({ghost_cost:,} values at sequence length {seq_len}) "
            f"are smaller than per-sample gradients ({hooks_cost:,} values)",
        )
    return (
        "hooks",
        "auto",
        f"per-sample gradients ({hooks_cost:,} values per example) are smaller than ghost "
        f"clipping's Gram matrices ({ghost_cost:,} at sequence length {seq_len})",
    )


# ---- step-time guards -------------------------------------------------------------------------


def check_optimizer_params(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """The optimizer must update exactly the model's trainable tensors (opacus#820 pattern)."""
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    missing = [n for i, n in names.items() if i not in held]
    foreign = len(held - set(names))
    if missing or foreign:
        raise DPGuardError(
            f"the optimizer does not hold the model's trainable tensors ({len(missing)} missing"
            f"{', e.g. ' + missing[0] if missing else ''}; {foreign} foreign)",
            why="the update would go to tensors the model does not use, while epsilon accrues "
            "(opacus#820: device placement after get_peft_model)",
            fix="build the optimizer after the model is on its device and wrapped",
        )


class MovedCheck:
    """Snapshot the trainable tensors; after the first step(s) every one must have changed."""

    def __init__(self, model: nn.Module, *, after_step: int) -> None:
        self.after_step = after_step
        self.snapshot = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }

    def check(self, model: nn.Module, step: int) -> bool:
        """Run the check at ``after_step``; returns True once it has run."""
        if step != self.after_step:
            return False
        params = dict(model.named_parameters())
        still = [
            n
            for n, old in self.snapshot.items()
            if n not in params or torch.equal(params[n].detach(), old)
        ]
        self.snapshot = {}
        if still:
            raise DPGuardError(
                f"{len(still)} of the trainable tensors did not change after step {step}: "
                + ", ".join(still[:5])
                + (" ..." if len(still) > 5 else ""),
                why="an update that never reaches the model's tensors voids the run while epsilon "
                "accrues (opacus#820)",
                fix="check that the model is on its device before PEFT wraps it and that nothing "
                "replaces parameters after the optimizer is built",
            )
        return True


class Stepper:
    """One training step's backward and update, with the ghost-clipping guard.

    In ghost mode Opacus clips inside the loss object returned by ``make_private``
    (``DPTensorFastGradientClipping.backward``). A plain ``loss.backward()`` raises nothing, the
    accountant counts the step and the gradient is *unclipped*. So here: ghost mode accepts only
    that loss type, and :meth:`step` refuses an update when the clipping pass did not run.
    """

    def __init__(
        self, *, optimizer: Any, mode: str | None, criterion: Any = None, hooks: Any = None
    ) -> None:
        self.optimizer = optimizer
        self.mode = mode  # "hooks", "ghost" or None (no DP)
        self.criterion = criterion
        self.before_update: Any = None  # non-DP runs: called between backward and update (EWC)
        self._clipped = False
        self._batch = 0  # examples in the current batch
        # the tokens the loss is taken on (prompt/completion, chat data), set per batch by the
        # engine's loader; None: every attended token
        self.loss_mask: torch.Tensor | None = None
        self._first_checked = mode is None  # the first-step check (dp_shapes) is still due
        self._coef: torch.Tensor | None = None
        self._norms: torch.Tensor | None = None
        self.hooks = hooks
        if mode == "ghost":
            if hooks is None or criterion is None:
                raise DPGuardError(
                    "ghost clipping needs the criterion and hooks that make_private returned"
                )
            original = hooks.get_clipping_coef

            def _tracked() -> torch.Tensor:
                self._clipped = True
                coef: torch.Tensor = original()
                if not self._first_checked:
                    self._coef = coef.detach()
                    self._norms = hooks.per_sample_gradient_norms.detach()
                return coef

            hooks.get_clipping_coef = _tracked

    def loss(
        self, logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> Any:
        self._batch = int(input_ids.shape[0])
        if self.loss_mask is not None:
            lm = self.loss_mask[:, : input_ids.shape[1]].to(attention_mask.device)
            attention_mask = attention_mask * lm.to(attention_mask.dtype)
        if self.mode == "ghost":
            return self.criterion(logits, input_ids, attention_mask)
        return sequence_loss(logits, input_ids, attention_mask).mean()

    def backward(self, loss: Any) -> None:
        if self.mode == "ghost":
            from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

            if not isinstance(loss, DPTensorFastGradientClipping):
                raise DPGuardError(
                    f"in ghost-clipping mode only the criterion returned by Opacus may be "
                    f"backpropagated; got {type(loss).__name__}",
                    why="ghost clipping happens inside that loss object's backward(); any other "
                    "loss gives an unclipped gradient while the accountant still counts the step",
                    fix="compute the loss with Stepper.loss (Opacus's criterion)",
                )
        with quiet_hook_warning():
            loss.backward()

    def step(self) -> None:
        if self.mode == "ghost" and not self._clipped:
            raise DPGuardError(
                "refusing an optimizer step: Opacus's ghost-clipping pass did not run for this batch",
                why="the gradient was computed by a plain backward() and is unclipped; the DP "
                "claim would be void",
                fix="backpropagate only the loss returned by Opacus's criterion",
            )
        if self.mode is None and self.before_update is not None:
            self.before_update()
        if not self._first_checked and self._batch > 0:
            self._first_step()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._clipped = False

    def _first_step(self) -> None:
        """The first non-empty step, checked before its update (:func:`.dp_shapes.check_first_step`)."""
        from finetrail.training.dp_shapes import check_first_step

        self._first_checked = True
        names = {}
        module = getattr(self.hooks, "_module", None)
        if isinstance(module, nn.Module):
            names = {id(p): n for n, p in module.named_parameters()}
        assert self.mode is not None
        after = check_first_step(
            mode=self.mode,
            optimizer=self.optimizer,
            batch=self._batch,
            names=names,
            norms=self._norms,
            coef=self._coef,
        )
        if after is None:
            self.optimizer.step()
            return
        clip_and_accumulate = self.optimizer.clip_and_accumulate

        def checked() -> None:
            clip_and_accumulate()
            after()

        self.optimizer.clip_and_accumulate = checked
        try:
            self.optimizer.step()
        finally:
            del self.optimizer.clip_and_accumulate  # the class's method again

    def empty_step(self, params: list[torch.Tensor]) -> None:
        """A Poisson batch with no example: the step still adds noise and is accounted."""
        for p in params:
            if self.mode == "hooks":
                empty = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
                setattr(p, "grad_sample", empty)  # Opacus's per-sample gradient slot  # noqa: B010
            else:
                p.grad = torch.zeros_like(p)
        self._clipped = True
        self.step()
