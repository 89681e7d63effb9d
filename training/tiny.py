"""The one builder of tiny language models: a byte-level BPE tokenizer and a small causal LM
from a ``transformers`` config, on the CPU, with nothing downloaded.

The demo's base model (:mod:`.base_model`), the tests (``tests/support``) and the benchmarks all
build their tokenizers and models here, so a change of tokenizer or architecture defaults is
made once. torch, tokenizers and transformers are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ARCHITECTURES", "bpe_tokenizer", "fast_tokenizer", "tiny_causal_lm"]

ARCHITECTURES: tuple[str, ...] = ("llama", "gpt2")


def bpe_tokenizer(
    texts: Sequence[str],
    *,
    vocab_size: int,
    special_tokens: Sequence[str] = ("<pad>", "<s>", "</s>"),
    split_digits: bool = True,
    template: str | None = None,
) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts``.

    ``split_digits`` puts each digit in its own token (so an identifier's digits are scored one
    by one, as the memorisation probes assume). ``template`` (e.g. ``"<s> $A"``) adds special
    tokens around every encoded text.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    unk = "<unk>" if "<unk>" in special_tokens else None
    tok = Tokenizer(models.BPE(unk_token=unk) if unk else models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if split_digits
        else byte_level
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    if template is not None:
        used = [t for t in special_tokens if t in template.split()]
        tok.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(t, tok.token_to_id(t)) for t in used]
        )
    return tok


def fast_tokenizer(tok: Any, **special: str) -> Any:
    """``transformers.PreTrainedTokenizerFast`` around a trained ``tokenizers.Tokenizer``."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


def tiny_causal_lm(
    arch: str = "llama",
    *,
    vocab_size: int,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    intermediate: int | None = None,
    max_positions: int = 128,
    tie_embeddings: bool = True,
    token_ids: Mapping[str, int | None] | None = None,
    seed: int = 0,
    init_range: float | None = None,
) -> Any:
    """A randomly initialised causal LM of a real ``transformers`` architecture.

    ``token_ids`` sets ``pad_token_id``/``bos_token_id``/``eos_token_id``; ``intermediate``
    defaults to 4x ``hidden`` (Llama); ``init_range`` overrides ``initializer_range``.
    """
    import torch

    ids = dict(token_ids or {})
    extra: dict[str, Any] = {}
    if init_range is not None:
        extra["initializer_range"] = init_range
    torch.manual_seed(seed)
    if arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        return LlamaForCausalLM(
            LlamaConfig(
                vocab_size=vocab_size,
                hidden_size=hidden,
                intermediate_size=intermediate or hidden * 4,
                num_hidden_layers=layers,
                num_attention_heads=heads,
                num_key_value_heads=heads,
                max_position_embeddings=max_positions,
                tie_word_embeddings=tie_embeddings,
                **ids,
                **extra,
            )
        )
    if arch == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        return GPT2LMHeadModel(
            GPT2Config(
                vocab_size=vocab_size,
                n_embd=hidden,
                n_layer=layers,
                n_head=heads,
                n_positions=max_positions,
                tie_word_embeddings=tie_embeddings,
                **ids,
                **extra,
            )
        )
    raise ValueError(f"unknown tiny architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
