"""Chat (and prompt/completion) data: the validation loss is taken on the same tokens as the
training loss (the assistant's / completion's), per record, then over records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from finetrail.governance.workspace import Workspace
from finetrail.training import train
from finetrail.training.dp_guards import model_inputs, sequence_loss
from finetrail.training.formats import Record, encode_records
from finetrail.training.loop import evaluate
from tests.support.tiny_training import base_config, tiny_model, write_config

CHATS = [
    Record("messages", messages=(("user", "Order 123 is late?"), ("assistant", "Refund sent."))),
    Record("messages", messages=(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"))),
    Record(
        "messages",
        messages=(("user", "Where is it"), ("assistant", "On its way"), ("user", "Thanks")),
    ),
]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


def _by_hand(model: Any, ids: Any, mask: Any, loss_mask: Any | None) -> float:
    with torch.no_grad():
        logits = model(**model_inputs(ids, mask, "full")).logits
        target = mask if loss_mask is None else mask * loss_mask
        return float(sequence_loss(logits, ids, target).mean())


def test_evaluate_takes_the_loss_on_the_assistant_tokens(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    from finetrail.training.model import load_tokenizer

    tok = load_tokenizer(tiny_llama)[0]
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama), use_safetensors=True).eval()
    ids, mask, loss_mask, empty = encode_records(tok, CHATS, 64, loss_on="completion")
    assert empty == 0 and 0 < int(loss_mask.sum()) < int(mask.sum())
    got, tokens = evaluate(model, "full", ids, mask, loss_mask, batch_size=2, device="cpu")
    assert got == pytest.approx(_by_hand(model, ids, mask, loss_mask), rel=1e-6)
    assert tokens == int(mask.sum())
    everything, _ = evaluate(model, "full", ids, mask, batch_size=2, device="cpu")
    assert everything == pytest.approx(_by_hand(model, ids, mask, None), rel=1e-6)
    assert abs(got - everything) > 1e-3  # the two are told apart

    # a record truncated before its assistant turn has no loss token: left out of the mean
    longest = int(mask.sum(1).max())
    long_user = Record("messages", messages=(("user", "where " * 40), ("assistant", "here")))
    short, smask, sloss, sempty = encode_records(
        tok, [*CHATS, long_user], longest, loss_on="completion"
    )
    assert sempty == 1
    kept = sloss[:, 1:].sum(1) > 0
    got, _ = evaluate(model, "full", short, smask, sloss, batch_size=3, device="cpu")
    want = _by_hand(model, short[kept], smask[kept], sloss[kept])
    assert got == pytest.approx(want, rel=1e-6)


def test_a_chat_runs_validation_loss_is_on_the_assistant_tokens(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """The recorded val_loss of a chat run is the masked loss of the model it released."""
    from finetrail.training.data import encode, read_jsonl_records
    from finetrail.training.loading import load_trained

    def rows(n: int, seed: int) -> list[dict[str, Any]]:
        from finetrail.training.tiny import word_texts

        q = word_texts(n, seed=seed, min_words=2, max_words=5)
        a = word_texts(n, seed=seed + 100, min_words=2, max_words=5)
        return [
            {"messages": [{"role": "user", "content": x}, {"role": "assistant", "content": y}]}
            for x, y in zip(q, a, strict=True)
        ]

    train_file = tmp_path / "chat-train.jsonl"
    val_file = tmp_path / "chat-val.jsonl"
    for path, data in ((train_file, rows(32, 1)), (val_file, rows(8, 2))):
        path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    cfg = base_config(
        tiny_llama, tmp_path, data={"format": "messages", "max_length": 64}, optim={"steps": 2}
    )
    cfg["data"].update(train=str(train_file), validation=str(val_file))
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    rec = train(config=write_config(tmp_path / "t.yaml", cfg), workspace=ws)
    assert rec.completed and rec.val_loss_steps[-1] == 2

    loaded = load_trained(ws.root, device="cpu")
    _, records = read_jsonl_records(val_file, "messages", "text")
    ids, mask, loss_mask, _ = encode(loaded.tokenizer, list(records), _Data())
    assert loss_mask is not None
    masked, _ = evaluate(loaded.model, "lora", ids, mask, loss_mask, batch_size=4, device="cpu")
    unmasked, _ = evaluate(loaded.model, "lora", ids, mask, batch_size=4, device="cpu")
    assert rec.val_loss[-1] == pytest.approx(masked, rel=1e-4)
    assert abs(rec.val_loss[-1] - unmasked) > 1e-3


class _Data:
    max_length = 64
    loss_tokens = "completion"
