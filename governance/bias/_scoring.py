"""Task evaluation by the language model: the log-likelihood of each label's verbaliser.

For every prompt and every label, the model scores the label's continuation (e.g. ``" yes"``)
after the prompt: the sum of the log-probabilities of its tokens. The prediction is the best
label; the probability of the positive label, normalised over the labels, is kept for AUC.

Batches are right-padded with an attention mask, so a prompt scores the same alone and in a
batch with longer prompts (the padding comes after the tokens being scored). torch is imported
inside the functions: this module is light to import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from finetrail.errors import InputError

# A scorer maps prompts to an (n_prompts, n_labels) array of log-likelihoods.
Scorer = Callable[[Sequence[str]], npt.NDArray[np.float64]]


def lm_scorer(
    model: Any,
    tokenizer: Any,
    verbalisers: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int | None = None,
) -> Scorer:
    """A :data:`Scorer` backed by a causal LM and its tokenizer."""
    verb_ids = [list(tokenizer(v, add_special_tokens=False)["input_ids"]) for v in verbalisers]
    for v, ids in zip(verbalisers, verb_ids, strict=True):
        if not ids:
            raise InputError(f"verbaliser {v!r} tokenizes to nothing", field="labels")
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    limit = max_length or int(getattr(model.config, "max_position_embeddings", 0) or 0) or 1024

    def score(prompts: Sequence[str]) -> npt.NDArray[np.float64]:
        prompt_ids = [
            list(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        ]
        return verbaliser_log_likelihoods(
            model, prompt_ids, verb_ids, pad_id=int(pad_id), batch_size=batch_size, max_length=limit
        )

    return score


def verbaliser_log_likelihoods(
    model: Any,
    prompt_ids: Sequence[list[int]],
    verb_ids: Sequence[list[int]],
    *,
    pad_id: int,
    batch_size: int = 32,
    max_length: int = 1024,
) -> npt.NDArray[np.float64]:
    """``out[i, j]`` = log P(verbaliser j | prompt i) under ``model`` (token ids in, no text)."""
    import torch

    n, n_labels = len(prompt_ids), len(verb_ids)
    out = np.zeros((n, n_labels), dtype=np.float64)
    device = next(model.parameters()).device
    single = all(len(v) == 1 for v in verb_ids)
    # one pass per label (one pass in all when every verbaliser is one token)
    passes = [[]] if single else [list(v) for v in verb_ids]
    order = sorted(range(n), key=lambda i: len(prompt_ids[i]))  # similar lengths per batch
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for p, cont in enumerate(passes):
                for start in range(0, n, batch_size):
                    idx = order[start : start + batch_size]
                    seqs, prompt_lens = [], []
                    for i in idx:
                        keep = max_length - len(cont)
                        ids = list(prompt_ids[i])[-keep:] if keep > 0 else []
                        if not ids:
                            raise InputError("a prompt is empty after tokenization", field="prompt")
                        seqs.append(ids + cont)
                        prompt_lens.append(len(ids))
                    width = max(len(s) for s in seqs)
                    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
                    mask = torch.zeros((len(seqs), width), dtype=torch.long)
                    for r, s in enumerate(seqs):
                        input_ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
                        mask[r, : len(s)] = 1
                    logits = model(
                        input_ids=input_ids.to(device), attention_mask=mask.to(device)
                    ).logits
                    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
                    for r, i in enumerate(idx):
                        last = prompt_lens[r] - 1  # the position that predicts the next token
                        if single:
                            for j, v in enumerate(verb_ids):
                                out[i, j] = float(logp[r, last, v[0]])
                        else:
                            pos = torch.arange(last, last + len(cont))
                            tok = torch.tensor(cont, dtype=torch.long)
                            out[i, p] = float(logp[r, pos, tok].sum())
    finally:
        if was_training:
            model.train()
    return out


def label_probabilities(loglik: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Softmax over the labels: P(label | prompt) normalised over the verbalisers."""
    shifted = loglik - loglik.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def predict(
    scorer: Scorer, prompts: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """(prediction 1 = positive label, P(positive)) for each prompt; label 0 is the positive one."""
    probs = label_probabilities(scorer(prompts))
    p_pos = probs[:, 0]
    y_pred = (np.argmax(probs, axis=1) == 0).astype(np.int64)
    return y_pred, p_pos
