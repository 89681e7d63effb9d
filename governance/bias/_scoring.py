"""Task evaluation by the language model: the log-likelihood of each label's verbaliser.

For every prompt and every label, the model scores the label's continuation (e.g. ``" yes"``)
after the prompt: the sum of the log-probabilities of its tokens. The prediction is the best
label; the probability of the positive label, normalised over the labels, is kept for AUC.

Scoring is the one LM scoring kernel of :mod:`finetrail.governance.probes.scoring` (padding
masked, position ids kept, so a prompt scores the same alone and in a batch with longer prompts).
torch is imported inside the functions: this module is light to import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from finetrail.errors import InputError

# A scorer maps prompts to an (n_prompts, n_labels) array of log-likelihoods.
Scorer = Callable[[Sequence[str]], npt.NDArray[np.float64]]
# A framing renders (prompt, reply) as the model was trained to read them: the whole text, the
# character offset where the reply starts in it, and whether the tokenizer adds special tokens
# (a chat template writes its own). See ``chat_framing``.
Framing = Callable[[str, str], tuple[str, int, bool]]


def chat_framing(tokenizer: Any) -> Framing:
    """The chat rendering training used (``finetrail.training.formats``): the prompt as the
    user's turn, the label as the assistant's reply. Imported lazily (it needs the train extra,
    which loading the trained model needed already)."""
    from finetrail.training.formats import Record, render

    def frame(prompt: str, reply: str) -> tuple[str, int, bool]:
        full, spans, special = render(
            tokenizer, Record("messages", messages=(("user", prompt), ("assistant", reply)))
        )
        start = full.find(reply, spans[0][0]) if reply else -1
        if start < 0:
            raise InputError(
                "the chat template does not write the assistant's reply verbatim, so the "
                "labels cannot be scored as replies",
                field="prompt_format",
                fix="audit with --prompt-format text",
            )
        return full, start, special

    return frame


def framed_pairs(
    tokenizer: Any, frame: Framing, prompts: Sequence[str], reply: str
) -> list[tuple[list[int], list[int]]]:
    """(prompt tokens, reply tokens) per prompt, cut from one tokenisation of the framed text:
    the reply's tokens are those overlapping it (a token joining the space before it counts as
    the reply's, as it does in training), the template's closing tokens are not scored."""
    out = []
    for prompt in prompts:
        full, start, special = frame(prompt, reply)
        end = start + len(reply)
        enc = tokenizer(full, add_special_tokens=special, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        cut = next((i for i, (_, e) in enumerate(offsets) if e > start), len(ids))
        stop = cut
        while stop < len(ids) and offsets[stop][0] < end and offsets[stop][1] > offsets[stop][0]:
            stop += 1
        if cut == 0 or stop == cut:
            raise InputError(
                "a framed prompt or its reply tokenizes to nothing", field="prompt_format"
            )
        out.append((ids[:cut], ids[cut:stop]))
    return out


def lm_scorer(
    model: Any,
    tokenizer: Any,
    verbalisers: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    frame: Framing | None = None,
) -> Scorer:
    """A :data:`Scorer` backed by a causal LM and its tokenizer. With ``frame`` (e.g.
    :func:`chat_framing`), each prompt and label are rendered as the model was trained to read
    them, and each label (its verbaliser without surrounding spaces) is scored as the reply."""
    verb_ids = [list(tokenizer(v, add_special_tokens=False)["input_ids"]) for v in verbalisers]
    for v, ids in zip(verbalisers, verb_ids, strict=True):
        if not ids:
            raise InputError(f"verbaliser {v!r} tokenizes to nothing", field="labels")
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    limit = max_length or int(getattr(model.config, "max_position_embeddings", 0) or 0) or 1024

    def score_framed(prompts: Sequence[str]) -> npt.NDArray[np.float64]:
        from finetrail.governance.probes.scoring import continuation_logprobs

        assert frame is not None
        out = np.zeros((len(prompts), len(verbalisers)), dtype=np.float64)
        was_training = model.training
        model.eval()
        try:
            for j, verb in enumerate(verbalisers):
                pairs = framed_pairs(tokenizer, frame, prompts, verb.strip())
                pairs = [(p[-max(1, limit - len(c)) :], c) for p, c in pairs]
                out[:, j] = continuation_logprobs(model, pairs, pad_id=int(pad_id))
        finally:
            if was_training:
                model.train()
        return out

    if frame is not None:
        return score_framed

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
    """``out[i, j]`` = log P(verbaliser j | prompt i) under ``model`` (token ids in, no text).

    Scored by the one LM scoring kernel (:mod:`finetrail.governance.probes.scoring`): one pass in
    all when every verbaliser is one token, else log p(continuation | prompt) per label. A prompt
    longer than the model allows keeps its last tokens.
    """
    from finetrail.governance.probes.scoring import continuation_logprobs, next_token_logprobs

    del batch_size  # the kernel packs batches by a token budget
    n, n_labels = len(prompt_ids), len(verb_ids)
    out = np.zeros((n, n_labels), dtype=np.float64)

    def cut(ids: Sequence[int], cont: int) -> list[int]:
        keep = max_length - cont
        kept = list(ids)[-keep:] if keep > 0 else []
        if not kept:
            raise InputError("a prompt is empty after tokenization", field="prompt")
        return kept

    was_training = model.training
    model.eval()
    try:
        if all(len(v) == 1 for v in verb_ids):
            scores = next_token_logprobs(
                model, [cut(p, 1) for p in prompt_ids], [v[0] for v in verb_ids], pad_id=pad_id
            )
            out[:, :] = np.asarray(scores, dtype=np.float64).reshape(n, n_labels)
        else:
            for j, cont in enumerate(verb_ids):
                pairs = [(cut(p, len(cont)), list(cont)) for p in prompt_ids]
                out[:, j] = continuation_logprobs(model, pairs, pad_id=pad_id)
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
