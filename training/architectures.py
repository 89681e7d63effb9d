"""What finetrail knows about particular model architectures (by ``config.model_type``).

Data plus small hooks, in one place:

- :data:`TARGET_DEFAULTS`: finetrail's target modules for LoRA and IA3 where peft has none
  (Phi-3 IA3) or where peft's would train modules whose inputs are flattened to
  ``(batch x positions, hidden)`` (OPT's ``fc1``/``fc2``, Mixtral's router and experts), which
  DP-SGD would clip per token instead of per example. Used only when the config leaves
  ``method.target_modules`` unset, for DP runs and the non-private control alike (so the two
  differ by DP only); each use is stated in the evidence's adjustments.
- :func:`prefix_dimensions`: the key/value shape of a prefix for architectures peft sizes wrong
  (Falcon's multi-query attention keeps one key/value head).
- :func:`prepare_architecture`: the changes DP needs on particular layers, made before Opacus
  attaches: a per-sample gradient rule for Falcon's ``FalconLinear`` (a ``nn.Linear`` whose
  forward is a plain matmul), Gemma's scaled word embedding (its constant scale is a buffer,
  which Opacus refuses on a trainable layer), and a copy of a hooked layer's output where a
  parent adds to it in place (Falcon: ``mlp_output += attention_output``), which autograd
  forbids on the view Opacus's backward hook returns. Each is stated in the adjustments.

Per-architecture results of every method with and without DP: ``docs/models.md`` (generated
by ``tests/training/test_architectures.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "TARGET_DEFAULTS",
    "model_type",
    "prefix_dimensions",
    "prepare_architecture",
    "release_architecture",
    "target_defaults",
]

ATTENTION_ONLY = (
    "its feed-forward layers see hidden states flattened to (batch x positions, hidden), "
    "which DP-SGD would clip per token, not per example"
)

# model_type -> method -> (target_modules, feedforward_modules (IA3), why)
TARGET_DEFAULTS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...], str]]] = {
    "phi3": {
        "ia3": (("qkv_proj", "down_proj"), ("down_proj",), "peft has no IA3 default for phi3"),
    },
    "opt": {
        "lora": (("q_proj", "k_proj", "v_proj", "out_proj"), (), ATTENTION_ONLY),
        "ia3": (("k_proj", "v_proj"), (), ATTENTION_ONLY),
    },
    "mixtral": {
        "lora": (
            ("q_proj", "k_proj", "v_proj", "o_proj"),
            (),
            "its router and experts see hidden states flattened to (batch x positions, hidden), "
            "which DP-SGD would clip per token, not per example",
        ),
        "ia3": (("k_proj", "v_proj"), (), "peft's default names Mixtral's former w2 experts"),
    },
}


def model_type(model: Any) -> str:
    """The ``config.model_type`` of a transformers model or a peft model around one."""
    cfg = getattr(model, "config", None)
    return str(getattr(cfg, "model_type", None) or type(model).__name__)


def target_defaults(arch: str, method: str) -> tuple[list[str], list[str], str] | None:
    """(target modules, feed-forward modules, why) where finetrail has its own default."""
    found = TARGET_DEFAULTS.get(arch, {}).get(method)
    if found is None:
        return None
    targets, feedforward, why = found
    return list(targets), list(feedforward), why


def prefix_dimensions(config: Any) -> dict[str, int]:
    """``num_attention_heads``/``token_dim`` for peft's prefix where peft would size it wrong."""
    if getattr(config, "model_type", None) != "falcon":
        return {}
    heads = int(config.num_attention_heads)
    head_dim = int(config.hidden_size) // heads
    if config.new_decoder_architecture:
        kv = int(config.num_kv_heads)
    else:
        kv = 1 if config.multi_query else heads
    return {"num_attention_heads": kv, "token_dim": kv * head_dim}


# ---- layers that need a rule under DP -----------------------------------------------------------


def _scaled_embedding_grad_sample(
    layer: nn.Embedding, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[nn.Parameter, torch.Tensor]:
    from opacus.grad_sample.embedding import compute_embedding_grad_sample

    scale: torch.Tensor = getattr(layer, "embed_scale").to(backprops.dtype)  # noqa: B009
    out: dict[nn.Parameter, torch.Tensor] = compute_embedding_grad_sample(
        layer, activations, backprops * scale
    )
    return out


def _scaled_embedding_norm_sample(
    layer: nn.Embedding, activations: list[torch.Tensor], backprops: torch.Tensor
) -> dict[nn.Parameter, torch.Tensor]:
    from opacus.grad_sample.embedding import compute_embedding_norm_sample

    scale: torch.Tensor = getattr(layer, "embed_scale").to(backprops.dtype)  # noqa: B009
    out: dict[nn.Parameter, torch.Tensor] = compute_embedding_norm_sample(
        layer, activations, backprops * scale
    )
    return out


def _linear_like(mod: nn.Module) -> bool:
    """A ``nn.Linear`` subclass whose forward is ``x @ W.T + b`` (Falcon's ``FalconLinear``)."""
    return type(mod).__name__ == "FalconLinear" and isinstance(mod, nn.Linear)


def _register(cls: type, grad: Any, norm: Any) -> None:
    from opacus.grad_sample import GradSampleModule
    from opacus.grad_sample.utils import register_grad_sampler, register_norm_sampler

    if cls not in GradSampleModule.GRAD_SAMPLERS:
        register_grad_sampler(cls)(grad)
        register_norm_sampler(cls)(norm)


SCALE_ATTR = "_finetrail_embed_scale_buffer"


def _scaled_embeddings(model: nn.Module) -> list[str]:
    found = []
    for name, mod in model.named_modules():
        if (
            isinstance(mod, nn.Embedding)
            and mod.weight.requires_grad
            and isinstance(mod._buffers.get("embed_scale"), torch.Tensor)
        ):
            _register(type(mod), _scaled_embedding_grad_sample, _scaled_embedding_norm_sample)
            scale = mod._buffers.pop("embed_scale")
            setattr(mod, SCALE_ATTR, True)
            object.__setattr__(mod, "embed_scale", scale)  # a constant, no longer a buffer
            found.append(name)
    if not found:
        return []
    return [
        f"scaled word embedding {', '.join(found)}: its constant scale is kept as a plain "
        "tensor instead of a buffer (Opacus refuses buffers on trainable layers) and its "
        "per-sample gradient is the embedding rule applied to the scaled backprop"
    ]


def _linear_subclasses(model: nn.Module) -> list[str]:
    from opacus.grad_sample.linear import compute_linear_grad_sample, compute_linear_norm_sample

    types = sorted(
        {
            type(m).__name__
            for m in model.modules()
            if _linear_like(m) and any(p.requires_grad for p in m.parameters(recurse=False))
        }
    )
    for mod in model.modules():
        if _linear_like(mod):
            _register(type(mod), compute_linear_grad_sample, compute_linear_norm_sample)
    if not types:
        return []
    return [
        f"{', '.join(types)} (x @ W.T + b) uses Opacus's nn.Linear per-sample gradient rule "
        "(else Opacus falls back to functorch)"
    ]


def _copy_hooked_output(module: nn.Module, args: Any, output: Any) -> Any:
    """A parent that hands on a hooked child's output unchanged: return a copy, so that an
    in-place update by the grandparent touches the copy, not the backward hook's view."""
    if (
        isinstance(output, torch.Tensor)
        and output.grad_fn is not None
        and type(output.grad_fn).__name__ == "BackwardHookFunctionBackward"
    ):
        return output.clone()
    return None


INPLACE_PARENTS: dict[str, tuple[str, ...]] = {"falcon": ("FalconMLP",)}


def _inplace_parents(model: nn.Module, arch: str) -> list[str]:
    names = INPLACE_PARENTS.get(arch, ())
    hooked = [
        m
        for m in model.modules()
        if type(m).__name__ in names and any(p.requires_grad for p in m.parameters())
    ]
    for mod in hooked:
        mod.register_forward_hook(_copy_hooked_output)
    if not hooked:
        return []
    return [
        f"{len(hooked)} {'/'.join(names)} output(s) copied when they come straight from a "
        "layer Opacus hooks: the decoder layer adds to them in place, which autograd forbids "
        "on the view a backward hook returns (same values)"
    ]


def prepare_architecture(model: nn.Module) -> list[str]:
    """The per-architecture changes DP needs (see the module docstring); what was changed."""
    arch = model_type(model)
    return [*_linear_subclasses(model), *_scaled_embeddings(model), *_inplace_parents(model, arch)]


def release_architecture(model: nn.Module) -> None:
    """Put back what :func:`prepare_architecture` moved (before saving)."""
    for mod in model.modules():
        if getattr(mod, SCALE_ATTR, False):
            scale = mod.__dict__.pop("embed_scale")
            delattr(mod, SCALE_ATTR)
            mod.register_buffer("embed_scale", scale, persistent=False)
