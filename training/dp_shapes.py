"""Per-example structure of a DP run, checked twice, on by default (no setting turns it off).

DP-SGD bounds each *example's* gradient. Opacus takes the leading dimension of every hooked
layer's input as the batch, so a layer that sees its input flattened to
``(batch x positions, hidden)`` (OPT's ``fc1``/``fc2``, a mixture-of-experts router) has its
gradient clipped per token: each example's contribution can reach ``T x max_grad_norm`` while
the accountant assumes ``max_grad_norm``, and training would run to the end with an epsilon
that does not hold.

- Before training, :func:`check_per_example_structure` runs one forward and backward pass on a
  synthetic batch (2 sequences of 3 token ids; no training data) with hooks on exactly the layers
  Opacus will hook, and refuses the run if any of them sees a leading dimension other than the
  batch, has a positional input that is not a tensor, owns a trainable tensor it never uses, or
  holds a buffer, or if the backward pass fails under a full backward hook. Every problem is
  listed, with the architecture, the method and what to do.
- At the first step, :func:`check_first_step` looks at the real batch before the update: every
  trainable tensor's per-sample gradient has the batch's leading dimension (hooks), or the
  per-example norms do (ghost), and the clipped per-example gradients Opacus accumulates respect
  ``max_grad_norm``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from finetrail.errors import DPGuardError

__all__ = ["check_first_step", "check_per_example_structure", "hooked_modules"]

BATCH, POSITIONS = 2, 3  # distinct, so a flattened (batch x positions) dimension shows
TOLERANCE = 1e-4


def _own_trainable(mod: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in mod.named_parameters(recurse=False) if p.requires_grad]


def hooked_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers Opacus attaches per-sample gradient hooks to (its ``iterate_submodules``):
    every module owning a trainable tensor; below one without a registered rule, none."""
    from opacus.grad_sample import GradSampleModule

    out: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, mod: nn.Module) -> None:
        own = bool(_own_trainable(mod))
        if own:
            out.append((prefix, mod))
            if type(mod) not in GradSampleModule.GRAD_SAMPLERS:
                return  # functorch computes the whole module's per-sample gradient
        for name, child in mod.named_children():
            walk(f"{prefix}.{name}" if prefix else name, child)

    walk("", model)
    return out


def _architecture(model: nn.Module) -> str:
    from finetrail.training.architectures import model_type

    inner = getattr(getattr(model, "base_model", None), "model", None)
    cls = type(inner if isinstance(inner, nn.Module) else model).__name__
    return f"{model_type(model)} ({cls})"


def _short(names: list[str], limit: int = 4) -> str:
    return ", ".join(_display(n) for n in names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )


def _display(name: str) -> str:
    return name.removeprefix("base_model.model.")


def _leaf_names(names: list[str]) -> list[str]:
    """``fc1`` of ``model.decoder.layers.0.fc1.lora_A.default``: the name a config targets."""
    out = []
    for n in names:
        parts = [p for p in n.split(".") if p not in {"default", "base_layer"}]
        while parts and parts[-1] in {"lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B"}:
            parts.pop()
        out.append(parts[-1] if parts else n)
    return sorted(set(out))


def _batch_first_linears(model: nn.Module, seen: dict[str, int]) -> list[str]:
    leaves = [n for n, d in seen.items() if d == BATCH]
    return [n for n in _leaf_names(leaves) if n not in {"lm_head", "embed_tokens", "wte"}]


def check_per_example_structure(model: nn.Module, *, method: str, clipping: str) -> None:
    """Refuse, before training, a model whose hooked layers are not per-example (see above)."""
    from finetrail.training.dp_guards import model_inputs, quiet_hook_warning, sequence_loss

    hooked = hooked_modules(model)
    leading: dict[str, int] = {}
    every_linear: dict[str, int] = {}
    non_tensor: dict[str, str] = {}
    grad_leading: dict[str, int] = {}
    ran: set[str] = set()
    handles = []

    def forward_hook(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            ran.add(name)
            bad = [type(a).__name__ for a in args if not isinstance(a, torch.Tensor)]
            if bad:
                non_tensor[name] = ", ".join(bad)
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if first is not None and first.dim() > 0:
                leading.setdefault(name, int(first.shape[0]))

        return hook

    def backward_hook(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, grad_in: Any, grad_out: tuple[Any, ...]) -> None:
            g = grad_out[0] if grad_out else None
            if isinstance(g, torch.Tensor) and g.dim() > 0:
                grad_leading.setdefault(name, int(g.shape[0]))

        return hook

    def linear_hook(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if args and isinstance(args[0], torch.Tensor) and args[0].dim() > 1:
                every_linear.setdefault(name, int(args[0].shape[0]))

        return hook

    for name, mod in hooked:
        handles.append(mod.register_forward_hook(forward_hook(name)))
        handles.append(mod.register_full_backward_hook(backward_hook(name)))
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook(name)))
    vocab = int(model.get_input_embeddings().num_embeddings)  # type: ignore[operator]
    device = next(model.parameters()).device
    ids = (torch.arange(BATCH * POSITIONS, device=device).view(BATCH, POSITIONS) + 3) % vocab
    mask = torch.ones_like(ids)
    failure: str | None = None
    was_training = model.training
    model.eval()  # dropout off; the shapes are those of training
    try:
        rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
        with rng, torch.enable_grad(), quiet_hook_warning():
            logits = model(**model_inputs(ids, mask, method)).logits
            sequence_loss(logits, ids, mask).sum().backward()  # type: ignore[no-untyped-call]
    except Exception as exc:  # reported below with the architecture and method
        failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    finally:
        for h in handles:
            h.remove()
        for p in model.parameters():
            p.grad = None
        model.train(was_training)

    problems: list[str] = []
    fixes: list[str] = []
    flat = sorted(
        n
        for n, _ in hooked
        if leading.get(n, BATCH) != BATCH or grad_leading.get(n, BATCH) != BATCH
    )
    if flat:
        got = leading.get(flat[0]) or grad_leading.get(flat[0])
        problems.append(
            f"layers {', '.join(_leaf_names(flat))} ({len(flat)} hooked modules, e.g. "
            f"{_display(flat[0])}) see a leading dimension of {got} for a batch of {BATCH} sequences "
            f"of {POSITIONS} tokens: the architecture flattens hidden states to (batch x "
            "positions, hidden) before them, so Opacus would clip each token's gradient, not "
            "each example's (each example could contribute up to sequence length x "
            "max_grad_norm while the accountant assumes max_grad_norm)"
        )
        per_example = _batch_first_linears(model, every_linear)
        if method in {"lora", "ia3"}:
            fixes.append(
                f"set method.target_modules to layers that see (batch, positions, hidden), e.g. "
                f"{per_example[:6]}, and leave out {_leaf_names(flat)}"
                + (" (with method.feedforward_modules: [])" if method == "ia3" else "")
            )
        fixes.append("use method: prefix, or train the non-private control (privacy: none)")
    if non_tensor:
        names = sorted(non_tensor)
        problems.append(
            f"{_short(names)} take non-tensor positional inputs ({non_tensor[names[0]]}), which "
            "Opacus's activation hooks cannot record"
        )
        fixes.append("freeze those layers (a PEFT method) or train without DP")
    used = {id(p) for n, mod in hooked if n in ran for _, p in _own_trainable(mod)}
    unused = sorted(
        f"{n}.{pn}" if n else pn
        for n, mod in hooked
        for pn, p in _own_trainable(mod)
        if id(p) not in used
    )
    if unused:
        problems.append(
            f"{_short(unused)}: trainable tensors of no layer that ran in the forward pass, "
            "so Opacus gets no per-sample gradient for them (e.g. experts the router skipped)"
        )
        fixes.append("train modules that run on every example (set method.target_modules)")
    buffers = sorted(n for n, mod in hooked if list(mod.buffers(recurse=False)))
    if buffers:
        problems.append(f"{_short(buffers)} hold buffers, which Opacus refuses on trainable layers")
        fixes.append("freeze those layers (a PEFT method) or train without DP")
    if failure is not None:
        problems.append(f"a forward and backward pass with Opacus-style hooks failed: {failure}")
        fixes.append("use another method (docs/models.md lists what works) or privacy: none")
    if problems:
        raise DPGuardError(
            f"DP training refused before it started: architecture {_architecture(model)}, "
            f"method {method}, clipping {clipping}: " + "; ".join(problems),
            why="the per-example gradient bound the epsilon rests on would not hold, or the run "
            "would fail at its first step",
            field="method",
            fix="; or ".join(dict.fromkeys(fixes)),
        )


# ---- the first step ----------------------------------------------------------------------------


def _flat_grad_sample(p: torch.Tensor) -> torch.Tensor | None:
    gs = getattr(p, "grad_sample", None)
    if isinstance(gs, list):
        return torch.cat(gs, dim=0) if gs else None
    return gs if isinstance(gs, torch.Tensor) else None


def check_first_step(
    *,
    mode: str,
    optimizer: Any,
    batch: int,
    names: dict[int, str],
    norms: torch.Tensor | None = None,
    coef: torch.Tensor | None = None,
) -> Callable[[], None] | None:
    """Check the first real step before its update. Hooks mode: every trainable tensor's
    per-sample gradient has ``batch`` rows; returns a check to run right after Opacus clipped
    and summed them. Ghost mode: the per-example norms and clipping coefficients have ``batch``
    entries and the clipped norms respect ``max_grad_norm``."""
    clip = float(optimizer.max_grad_norm)
    params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
    if mode == "ghost":
        if norms is None or coef is None:
            raise DPGuardError("ghost clipping produced no per-example norms at the first step")
        if norms.shape != (batch,) or coef.shape != (batch,):
            raise DPGuardError(
                f"the first step's per-example gradient norms have shape {tuple(norms.shape)} "
                f"for a batch of {batch} examples",
                why="Opacus would clip something other than one gradient per example",
                fix="report the model and method; try privacy.clipping: hooks",
            )
        clipped = coef.to(norms.dtype) * norms
        if float(clipped.max()) > clip * (1 + TOLERANCE):
            raise DPGuardError(
                f"a clipped per-example gradient norm is {float(clipped.max()):.4g} > "
                f"max_grad_norm {clip:g} at the first step"
            )
        return None
    wrong = []
    samples = []
    for p in params:
        gs = _flat_grad_sample(p)
        name = names.get(id(p), "?")
        if gs is None:
            wrong.append(f"{name}: no per-sample gradient")
        elif gs.shape[0] != batch or tuple(gs.shape[1:]) != tuple(p.shape):
            wrong.append(f"{name}: {tuple(gs.shape)}")
        else:
            samples.append((p, gs))
    if wrong:
        raise DPGuardError(
            f"refusing the first step: {len(wrong)} trainable tensor(s) have per-sample gradients "
            f"whose leading dimension is not the batch ({batch} examples): {_short(wrong)}",
            why="Opacus clips along that dimension; the per-example bound the epsilon assumes "
            "would not hold",
            fix="report the architecture and method (docs/models.md); set method.target_modules "
            "to layers that see (batch, positions, hidden)",
        )
    sq = torch.zeros(batch, dtype=torch.float32, device=samples[0][1].device if samples else None)
    for _, gs in samples:
        sq += gs.reshape(batch, -1).float().pow(2).sum(1)
    per_example = sq.sqrt()
    factor = (clip / (per_example + 1e-6)).clamp(max=1.0)

    def after_clipping() -> None:
        """Opacus's accumulated sum against one clip per example (one tensor at a time)."""
        err_sq, ref_sq = 0.0, 0.0
        for p, gs in samples:
            summed = getattr(p, "summed_grad", None)
            if summed is None:
                raise DPGuardError(
                    f"Opacus accumulated no clipped gradient for {names.get(id(p), '?')} at the "
                    "first step"
                )
            want = torch.einsum("i,i...->...", factor.to(gs.dtype), gs).float()
            err_sq += float((summed.float() - want).pow(2).sum())
            ref_sq += float(want.pow(2).sum())
        err = (err_sq**0.5) / max(ref_sq**0.5, 1e-12)
        clipped = factor * per_example
        if float(clipped.max()) > clip * (1 + TOLERANCE) or err > 1e-3:
            raise DPGuardError(
                f"the first step's clipped gradient sum disagrees with one clip per example "
                f"(relative error {err:.3g}; largest clipped norm {float(clipped.max()):.4g}, "
                f"max_grad_norm {clip:g})",
                why="the per-example bound the epsilon assumes would not hold",
                fix="report the architecture and method",
            )

    return after_clipping
