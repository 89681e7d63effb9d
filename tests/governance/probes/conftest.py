"""Tiny language models for the probe tests, built and trained in the test session.

A byte-level BPE tokenizer that splits digits (so a 6-digit secret is 6 tokens), a 2-layer Llama of
width 64, pretrained for a few hundred steps on generic Faker text, then fine-tuned by the tests:
plainly (the non-private control) or with Opacus + LoRA (the DP run). Losses are per-sequence
means, then the mean over the batch (see shared/notes/dp-pitfalls.md).
"""

from __future__ import annotations

import contextlib
import copy
import sys
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

SEQ_LEN = 48


def corpus(n: int, seed: int) -> list[str]:
    """Support-desk style records with identifiers (names, e-mails, phone numbers, numbers)."""
    from finetrail.training.tiny import support_desk_corpus

    return support_desk_corpus(n, seed)


def build_tokenizer(texts: list[str], vocab: int = 800, split_digits: bool = True) -> Any:
    from finetrail.training.tiny import bpe_tokenizer, fast_tokenizer

    tok = bpe_tokenizer(texts, vocab_size=vocab, split_digits=split_digits, template="<s> $A")
    return fast_tokenizer(tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_model(
    vocab: int, hidden: int = 64, layers: int = 2, seed: int = 0, init_range: float = 0.02
) -> Any:
    from finetrail.training.tiny import tiny_causal_lm

    ids = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    return tiny_causal_lm(
        vocab_size=vocab,
        hidden=hidden,
        layers=layers,
        token_ids=ids,
        seed=seed,
        init_range=init_range,
    )


def encode(tok: Any, texts: list[str], seq_len: int = SEQ_LEN) -> tuple[Any, Any]:
    """Right-padded ids and attention mask: BOS + text (+ EOS), truncated to ``seq_len``."""
    import torch

    x = torch.zeros((len(texts), seq_len), dtype=torch.long)
    m = torch.zeros((len(texts), seq_len), dtype=torch.long)
    for i, t in enumerate(texts):
        ids = (tok(t)["input_ids"] + [tok.eos_token_id])[:seq_len]
        x[i, : len(ids)] = torch.tensor(ids)
        m[i, : len(ids)] = 1
    return x, m


def sequence_loss(model: Any, x: Any, m: Any) -> Any:
    """Mean over the batch of each sequence's mean token loss."""
    import torch

    logits = model(input_ids=x, attention_mask=m).logits[:, :-1].float()
    tgt, mask = x[:, 1:], m[:, 1:].float()
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none"
    ).view_as(mask)
    return ((nll * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def train_plain(
    model: Any, x: Any, m: Any, *, steps: int, batch: int = 32, lr: float = 2e-3, seed: int = 0
) -> float:
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        loss = sequence_loss(model, x[idx], m[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def train_dp_lora(
    base: Any,
    x: Any,
    m: Any,
    *,
    epsilon: float,
    delta: float = 1e-5,
    epochs: int = 4,
    batch: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> tuple[Any, float]:
    """LoRA (peft) under Opacus: Poisson sampling, hooks, PRV accountant. Returns the peft model
    (unwrapped from Opacus) and the epsilon spent."""
    import torch
    from opacus import PrivacyEngine
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = copy.deepcopy(base)
    model.train()
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=16,
            lora_dropout=0.0,
            target_modules=[
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
        ),
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, m), batch_size=batch)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    engine = PrivacyEngine(accountant="prv")
    private, opt, loader = engine.make_private_with_epsilon(
        module=model,
        optimizer=opt,
        data_loader=loader,
        target_epsilon=epsilon,
        target_delta=delta,
        epochs=epochs,
        max_grad_norm=1.0,
        poisson_sampling=True,
        grad_sample_mode="hooks",
    )
    with warnings.catch_warnings():
        # Opacus's hooks on LoRA layers whose inputs need no gradient (frozen embeddings): benign
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        _dp_epochs(private, opt, loader, epochs)
    moved = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and not torch.equal(p.detach(), before[n])
    ]
    assert moved, "the LoRA weights never moved (opacus#820)"
    model.eval()
    return model, float(engine.get_epsilon(delta))


def _dp_epochs(private: Any, opt: Any, loader: Any, epochs: int) -> None:
    for _ in range(epochs):
        for xb, mb in loader:
            if len(xb) == 0:  # Poisson sampling can draw an empty batch
                continue
            loss = sequence_loss(private, xb, mb)
            opt.zero_grad()
            loss.backward()
            opt.step()


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    """A digit-splitting byte-level BPE tokenizer (vocabulary 800) trained on generic text."""
    return build_tokenizer(corpus(4000, seed=1) + corpus(500, seed=2))


def make_tinylm(tok: Any) -> SimpleNamespace:
    """The tokenizer and a base model pretrained on generic text (250 steps)."""
    import torch

    torch.manual_seed(0)
    base = build_model(len(tok))
    x, m = encode(tok, corpus(4000, seed=1))
    train_plain(base, x, m, steps=250, lr=3e-3, seed=0)
    return SimpleNamespace(
        tokenizer=tok,
        base=base,
        corpus=corpus,
        encode=encode,
        train_plain=train_plain,
        train_dp_lora=train_dp_lora,
        build_model=build_model,
        build_tokenizer=build_tokenizer,
        finetune=lambda texts, steps, seed=1, lr=2e-3: _finetune(base, tok, texts, steps, seed, lr),
        one_thread=one_thread,
    )


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine run several times faster on one intra-op thread
    (measured: 50 steps in 2.1 s against 15.4 s with two threads under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tinylm(tiny_tokenizer: Any) -> SimpleNamespace:
    with one_thread():
        return make_tinylm(tiny_tokenizer)


def _finetune(base: Any, tok: Any, texts: list[str], steps: int, seed: int, lr: float) -> Any:
    model = copy.deepcopy(base)
    x, m = encode(tok, texts)
    train_plain(model, x, m, steps=steps, seed=seed, lr=lr)
    return model


@pytest.fixture(scope="session")
def random_lm(tiny_tokenizer: Any) -> Any:
    """An untrained (random) model over the tiny tokenizer: enough to check scoring arithmetic."""
    return build_model(len(tiny_tokenizer), hidden=32, seed=3).eval()


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    return SimpleNamespace(
        corpus=corpus,
        build_model=build_model,
        build_tokenizer=build_tokenizer,
        encode=encode,
        train_plain=train_plain,
        train_dp_lora=train_dp_lora,
    )


def make_study(tinylm: SimpleNamespace, steps: int = 200, lr: float = 3e-3) -> SimpleNamespace:
    """The canary study at test scale: 300 private support records, 300 held out, 120 six-digit
    pin canaries (each included with probability 1/2, included ones repeated 1, 4 or 16 times),
    and the non-private control: full fine-tuning of the base model (200 steps, lr 3e-3)."""
    from finetrail.governance.probes.canaries import augment, build_canary_set, draw_canaries
    from finetrail.governance.probes.formats import PIN6

    private = corpus(300, seed=3)
    heldout = corpus(300, seed=4)
    canaries = draw_canaries(formats=[PIN6], m=120, repetitions=(1, 4, 16), seed=5, avoid=private)
    records = [{"text": t} for t in private]
    augmented = augment(records, canaries, text_field="text", seed=6)
    texts = [r["text"] for r in augmented]
    control = tinylm.finetune(texts, steps=steps, seed=1, lr=lr)
    return SimpleNamespace(
        private=private,
        heldout=heldout,
        canaries=canaries,
        records=records,
        augmented=augmented,
        texts=texts,
        canary_set=build_canary_set(canaries, repetitions=(1, 4, 16)),
        control=control,
    )


@pytest.fixture(scope="session")
def study(tinylm: SimpleNamespace) -> SimpleNamespace:
    with one_thread():
        return make_study(tinylm)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Every probe test runs torch on one intra-op thread (see :func:`one_thread`)."""
    if "torch" not in sys.modules:  # tests that never touch torch stay free of it
        yield
        return
    with one_thread():
        yield
