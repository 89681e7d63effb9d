"""The models a probe runs against: the fine-tuned model, its base model and the tokenizer.

Probes take these objects (so they are testable with a model built in the test); the CLI gets them
from ``finetrail.training.loading.load_trained`` (imported lazily). torch is imported inside.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetrail.errors import DependencyMissing, InputError


@dataclass
class TokenizerAdapter:
    """The few tokenizer operations the probes need, over a Hugging Face tokenizer."""

    tokenizer: Any

    def encode(self, text: str, *, special: bool) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=special)["input_ids"]
        return [int(i) for i in ids]

    def prefix_ids(self, text: str, end: int) -> list[int]:
        """Tokens of ``text`` (with special tokens) that lie wholly before character ``end``: the
        training tokenization of a record's beginning, which a fresh encoding of ``text[:end]``
        may not reproduce when a space merges with the next token."""
        try:
            enc = self.tokenizer(
                text,
                add_special_tokens=True,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
            )
        except (NotImplementedError, TypeError, ValueError):
            return self.encode(text[:end], special=True)
        out: list[int] = []
        seen_text = False
        for tid, (_, e), special in zip(
            enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"], strict=True
        ):
            if special:
                if seen_text:
                    break
            elif e > end:
                break
            else:
                seen_text = True
            out.append(int(tid))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    @property
    def pad_id(self) -> int:
        for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
            value = getattr(self.tokenizer, name, None)
            if value is not None:
                return int(value)
        return 0

    @property
    def eos_id(self) -> int | None:
        value = getattr(self.tokenizer, "eos_token_id", None)
        return int(value) if value is not None else None


@dataclass
class ProbeModels:
    """``model`` is the fine-tuned model; ``base_model`` the model before fine-tuning. When
    ``base_model`` is None and ``model`` is a peft model, the base is ``model`` with its adapter
    disabled."""

    model: Any
    tokenizer: Any
    base_model: Any = None

    @property
    def tok(self) -> TokenizerAdapter:
        return TokenizerAdapter(self.tokenizer)

    @property
    def has_base(self) -> bool:
        return self.base_model is not None or hasattr(self.model, "disable_adapter")

    @contextlib.contextmanager
    def base(self) -> Iterator[Any]:
        """Yield the base model (or None when there is none)."""
        if self.base_model is not None:
            yield self.base_model
        elif hasattr(self.model, "disable_adapter"):
            with self.model.disable_adapter():
                yield self.model
        else:
            yield None


def from_loaded(loaded: Any) -> ProbeModels:
    """Adapt what ``load_trained`` returns (fine-tuned model, base model, tokenizer, device)."""
    model = _first_attr(loaded, ("model", "finetuned", "fine_tuned", "fine_tuned_model"))
    tokenizer = _first_attr(loaded, ("tokenizer",))
    base = None
    for name in ("base_model", "base"):
        if getattr(loaded, name, None) is not None:
            base = getattr(loaded, name)
            break
    for m in (model, base):
        if m is not None and hasattr(m, "eval"):
            m.eval()
    return ProbeModels(model=model, tokenizer=tokenizer, base_model=base)


def _first_attr(obj: Any, names: Sequence[str]) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    raise InputError(
        f"the loaded models lack '{names[0]}'",
        why="finetrail.training.loading.load_trained returned an unexpected object",
        fix="upgrade finetrail so training and governance agree",
    )


def weights_sha256(model: Any, *, trainable_only: bool = False) -> str:
    """SHA-256 over a model's tensors in name order (names, dtypes, shapes and bytes).

    For runs without a workspace; a workspace's subject digests come from its training evidence.
    """
    import torch

    h = hashlib.sha256()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if trainable_only and not (name in params and params[name].requires_grad):
                continue
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def trained_model_loader(*, fix: str | None = None) -> Callable[[Path], Any]:
    """The seam between governance and training: ``finetrail.training.loading.load_trained``,
    imported on first use (probes and the bias audit both load the trained model through it).

    Raises :class:`~finetrail.errors.DependencyMissing` naming the extra to install.
    """
    try:
        from finetrail.training.loading import load_trained
    except ImportError as exc:
        raise DependencyMissing(
            "cannot load the trained model: finetrail.training.loading is unavailable",
            why=str(exc),
            fix=fix or "install finetrail with the training extra: pip install 'finetrail[train]'",
        ) from exc
    loader: Callable[[Path], Any] = load_trained
    return loader
