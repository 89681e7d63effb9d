"""The one builder of tiny language models: a byte-level BPE tokenizer and a small causal LM
from a ``transformers`` config, on the CPU, with nothing downloaded.

The demo's base model (:mod:`.base_model`), the tests (``tests/support``) and the benchmarks all
build their tokenizers and models here, so a change of tokenizer or architecture defaults is
made once. torch, tokenizers and transformers are imported inside the functions.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ARCHITECTURES",
    "WORDS",
    "bpe_tokenizer",
    "fast_tokenizer",
    "support_desk_corpus",
    "tiny_causal_lm",
    "word_texts",
]

# The ``model_type`` of every architecture :func:`tiny_causal_lm` builds.
ARCHITECTURES: tuple[str, ...] = (
    "llama",
    "gpt2",
    "gpt_neox",
    "opt",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "phi",
    "phi3",
    "gemma2",
    "gemma3_text",
    "falcon",
    "bloom",
    "gptj",
    "gpt_bigcode",
)

# A small support-desk vocabulary for quick training texts.
WORDS: tuple[str, ...] = (
    "account",
    "order",
    "refund",
    "delivery",
    "invoice",
    "customer",
    "support",
    "ticket",
    "password",
    "address",
    "parcel",
    "payment",
    "card",
    "late",
    "damaged",
    "replace",
    "cancel",
    "upgrade",
    "plan",
    "billing",
    "shipping",
    "warranty",
    "email",
    "phone",
    "update",
    "reset",
    "login",
    "issue",
    "request",
    "thanks",
    "please",
    "kindly",
    "urgent",
    "status",
    "number",
)


def word_texts(
    n: int, *, seed: int, min_words: int = 3, max_words: int = 14, words: Sequence[str] = WORDS
) -> list[str]:
    """``n`` short sentences of :data:`WORDS`, half with a number in them (seeded)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        picked = [rng.choice(words) for _ in range(rng.randint(min_words, max_words))]
        if rng.random() < 0.5:
            picked.insert(rng.randrange(len(picked)), str(rng.randint(100, 99999)))
        out.append(" ".join(picked).capitalize() + ".")
    return out


def support_desk_corpus(n: int, seed: int) -> list[str]:
    """Support-desk style records with identifiers (names, e-mails, phone numbers, numbers),
    from Faker (seeded): the probes' memorisation settings of ``shared/notes``."""
    from faker import Faker

    fake = Faker()
    fake.seed_instance(seed)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randrange(4)
        if k == 0:
            out.append(
                f"Customer {fake.name()} wrote: {fake.sentence(nb_words=10)} "
                f"Call {fake.phone_number()}."
            )
        elif k == 1:
            out.append(
                f"Ticket {rng.randrange(10**6):06d}: {fake.sentence(nb_words=12)} "
                f"Reply to {fake.email()}."
            )
        elif k == 2:
            out.append(
                f"Note: {fake.sentence(nb_words=8)} Reference {rng.randrange(10**6):06d}, "
                f"code {rng.randrange(10**4):04d}."
            )
        else:
            out.append(f"{fake.address()} {fake.sentence(nb_words=6)}".replace("\n", ", "))
    return out


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


def _config_kwargs(
    arch: str, *, hidden: int, layers: int, heads: int, kv_heads: int, inter: int, positions: int
) -> tuple[str, dict[str, Any]]:
    """(config class name, its size keywords) for each architecture of :data:`ARCHITECTURES`."""
    head_dim = hidden // heads
    common = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "max_position_embeddings": positions,
    }
    decoder = {**common, "intermediate_size": inter, "num_key_value_heads": kv_heads}
    table: dict[str, tuple[str, dict[str, Any]]] = {
        "llama": ("LlamaConfig", decoder),
        "mistral": ("MistralConfig", {**decoder, "sliding_window": None}),
        "mixtral": (
            "MixtralConfig",
            {**decoder, "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": None},
        ),
        "qwen2": ("Qwen2Config", decoder),
        "qwen3": ("Qwen3Config", {**decoder, "head_dim": head_dim}),
        "phi3": (
            "Phi3Config",
            {**decoder, "original_max_position_embeddings": positions, "sliding_window": None},
        ),
        "phi": ("PhiConfig", {**decoder}),
        "gemma2": (
            "Gemma2Config",
            {
                **decoder,
                "head_dim": head_dim,
                "query_pre_attn_scalar": head_dim,
                "sliding_window": positions,
            },
        ),
        "gemma3_text": (
            "Gemma3TextConfig",
            {
                **decoder,
                "head_dim": head_dim,
                "query_pre_attn_scalar": head_dim,
                "sliding_window": positions,
            },
        ),
        "gpt_neox": ("GPTNeoXConfig", {**common, "intermediate_size": inter}),
        "falcon": ("FalconConfig", {**common, "ffn_hidden_size": inter}),
        "opt": (
            "OPTConfig",
            {**common, "ffn_dim": inter, "word_embed_proj_dim": hidden},
        ),
        "bloom": ("BloomConfig", {"hidden_size": hidden, "n_layer": layers, "n_head": heads}),
        "gpt2": (
            "GPT2Config",
            {
                "n_embd": hidden,
                "n_layer": layers,
                "n_head": heads,
                "n_positions": positions,
                "n_inner": inter,
            },
        ),
        "gptj": (
            "GPTJConfig",
            {
                "n_embd": hidden,
                "n_layer": layers,
                "n_head": heads,
                "n_positions": positions,
                "n_inner": inter,
                "rotary_dim": head_dim,
            },
        ),
        "gpt_bigcode": (
            "GPTBigCodeConfig",
            {
                "n_embd": hidden,
                "n_layer": layers,
                "n_head": heads,
                "n_positions": positions,
                "n_inner": inter,
            },
        ),
    }
    if arch not in table:
        raise ValueError(
            f"unknown tiny architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}"
        )
    return table[arch]


def tiny_causal_lm(
    arch: str = "llama",
    *,
    vocab_size: int,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate: int | None = None,
    max_positions: int = 128,
    tie_embeddings: bool = True,
    token_ids: Mapping[str, int | None] | None = None,
    seed: int = 0,
    init_range: float | None = None,
) -> Any:
    """A randomly initialised causal LM of a real ``transformers`` architecture (one of
    :data:`ARCHITECTURES`, by its ``model_type``), built from its config class on the CPU.

    ``token_ids`` sets ``pad_token_id``/``bos_token_id``/``eos_token_id`` (unset ones are None,
    never a config default outside the tiny vocabulary); ``kv_heads`` (grouped-query attention)
    defaults to ``heads``; ``intermediate`` to 4x ``hidden``; ``init_range`` overrides
    ``initializer_range`` (``init_std`` for OPT).
    """
    import torch
    import transformers

    name, sizes = _config_kwargs(
        arch,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads or heads,
        inter=intermediate or hidden * 4,
        positions=max_positions,
    )
    ids = {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}
    ids.update(token_ids or {})
    extra: dict[str, Any] = {}
    if init_range is not None:
        extra["init_std" if arch == "opt" else "initializer_range"] = init_range
    config = getattr(transformers, name)(
        vocab_size=vocab_size, tie_word_embeddings=tie_embeddings, **sizes, **ids, **extra
    )
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config)
