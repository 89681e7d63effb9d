"""Tiny language models for the probe benchmarks (the demo model of
shared/notes/tiny-model-memorisation.md: Llama, hidden 128, 2 layers, vocabulary about 3,000,
digits split into single tokens). Support-desk text from Faker; losses are per-sequence means."""

from __future__ import annotations

import copy
import platform
import warnings
from typing import Any


def corpus(n: int, seed: int) -> list[str]:
    """Support-desk style records with identifiers (names, e-mails, phone numbers, numbers)."""
    from finetrail.training.tiny import support_desk_corpus

    return support_desk_corpus(n, seed)


def tokenizer(texts: list[str], vocab: int = 3000) -> Any:
    from finetrail.training.tiny import bpe_tokenizer, fast_tokenizer

    tok = bpe_tokenizer(texts, vocab_size=vocab, template="<s> $A")
    return fast_tokenizer(tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def model(vocab: int, *, hidden: int = 128, layers: int = 2, seed: int = 0) -> Any:
    from finetrail.training.tiny import tiny_causal_lm

    ids = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    return tiny_causal_lm(
        vocab_size=vocab, hidden=hidden, layers=layers, max_positions=256, token_ids=ids, seed=seed
    ).eval()


def encode(tok: Any, texts: list[str], seq_len: int = 64) -> tuple[Any, Any]:
    import torch

    x = torch.zeros((len(texts), seq_len), dtype=torch.long)
    m = torch.zeros((len(texts), seq_len), dtype=torch.long)
    for i, t in enumerate(texts):
        ids = (tok(t)["input_ids"] + [tok.eos_token_id])[:seq_len]
        x[i, : len(ids)] = torch.tensor(ids)
        m[i, : len(ids)] = 1
    return x, m


def sequence_loss(net: Any, x: Any, m: Any) -> Any:
    import torch

    logits = net(input_ids=x, attention_mask=m).logits[:, :-1].float()
    tgt, mask = x[:, 1:], m[:, 1:].float()
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none"
    ).view_as(mask)
    return ((nll * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()


def train_plain(
    net: Any, x: Any, m: Any, *, steps: int, batch: int = 16, lr: float = 3e-3, seed: int = 0
) -> float:
    """Shuffled epochs, per-sequence mean loss."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr)
    net.train()
    done, loss = 0, torch.tensor(0.0)
    while done < steps:
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            loss = sequence_loss(net, x[idx], m[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done >= steps:
                break
    net.eval()
    return float(loss.detach())


def lora(base: Any, r: int = 16) -> Any:
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        copy.deepcopy(base),
        LoraConfig(
            r=r,
            lora_alpha=r,
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


def train_dp(
    base: Any,
    x: Any,
    m: Any,
    *,
    epsilon: float,
    delta: float,
    epochs: int,
    batch: int,
    lr: float,
    seed: int = 0,
) -> tuple[Any, float, int]:
    """LoRA under Opacus (hooks, Poisson sampling, PRV). Returns (model, epsilon spent, steps)."""
    import torch
    from opacus import PrivacyEngine

    torch.manual_seed(seed)
    net = lora(base)
    net.train()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, m), batch_size=batch)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr)
    engine = PrivacyEngine(accountant="prv")
    private, opt, loader = engine.make_private_with_epsilon(
        module=net,
        optimizer=opt,
        data_loader=loader,
        target_epsilon=epsilon,
        target_delta=delta,
        epochs=epochs,
        max_grad_norm=1.0,
        poisson_sampling=True,
        grad_sample_mode="hooks",
    )
    steps = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            for xb, mb in loader:
                if len(xb) == 0:
                    continue
                loss = sequence_loss(private, xb, mb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
    net.eval()
    return net, float(engine.get_epsilon(delta)), steps


def machine() -> str:
    import os

    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}, load average {load[0]:.1f}"
    )
