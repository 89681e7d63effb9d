"""Record formats (text, prompt/completion, chat messages) and the loss on completion tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from finetrail.errors import ConfigError, InputError
from finetrail.governance.workspace import Workspace
from finetrail.training import train
from finetrail.training.config import parse_config
from finetrail.training.data import read_jsonl_records
from finetrail.training.dp_guards import model_inputs, sequence_loss
from finetrail.training.formats import Record, encode_records, parse_record
from tests.support.tiny_training import base_config, tiny_model, write_config

TEMPLATE = (
    "{% for m in messages %}<bos>{{ m['role'] }}\n{{ m['content'] }}<eos>{% endfor %}"
    "{% if add_generation_prompt %}<bos>assistant\n{% endif %}"
)
CHAT = (("user", "Order 123 is late?"), ("assistant", "Refund sent."), ("user", "Thanks"))


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


@pytest.fixture
def tokenizer(tiny_llama: Path) -> Any:
    from finetrail.training.model import load_tokenizer

    return load_tokenizer(tiny_llama)[0]


@pytest.mark.parametrize(
    ("obj", "fmt", "want"),
    [
        ({"text": "hi"}, "text", Record("text", text="hi")),
        ({"text": " "}, "text", "field 'text' is missing or not a non-empty string"),
        (
            {"prompt": "Q", "completion": "A"},
            "prompt_completion",
            Record("prompt_completion", "Q", "A"),
        ),
        (
            {"prompt": "Q"},
            "prompt_completion",
            "field 'completion' is missing or not a non-empty string",
        ),
        ({"completion": "A"}, "prompt_completion", "field 'prompt' is missing or not a string"),
        (
            {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
            "messages",
            Record("messages", messages=(("user", "Q"), ("assistant", "A"))),
        ),
        ({"messages": []}, "messages", "field 'messages' is missing or not a non-empty list"),
        (
            {"messages": [{"role": "robot", "content": "A"}]},
            "messages",
            "messages[0] must be an object with 'role' (system, user, assistant, tool) and a "
            "string 'content'",
        ),
        (
            {"messages": [{"role": "user", "content": "Q"}]},
            "messages",
            "no assistant message with content (nothing to learn)",
        ),
        (["not", "an", "object"], "messages", "expected a JSON object"),
    ],
)
def test_records_are_parsed_or_the_problem_named(obj: Any, fmt: str, want: Any) -> None:
    assert parse_record(obj, fmt, "text") == want


def test_a_bad_file_names_its_lines(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_jsonl_records(f, "prompt_completion")
    assert err.value.what == (
        "invalid dataset: line 2: field 'completion' is missing or not a non-empty string"
    )


def test_loss_on_completion_needs_a_format_with_one(tmp_path: Path, tiny_llama: Path) -> None:
    with pytest.raises(ConfigError, match="loss_on: completion needs format: prompt_completion"):
        parse_config(base_config(tiny_llama, tmp_path, data={"loss_on": "completion"}), source="t")


def _flags(tok: Any, record: Record, loss_on: str = "completion") -> list[tuple[str, int]]:
    ids, mask, loss, _ = encode_records(tok, [record], 128, loss_on=loss_on)
    keep = mask[0].bool()
    return list(zip(tok.convert_ids_to_tokens(ids[0][keep]), loss[0][keep].tolist(), strict=True))


def test_the_loss_is_on_the_completion_and_its_end_token(tokenizer: Any) -> None:
    flags = _flags(tokenizer, Record("prompt_completion", "Order 12?", " Refund."))
    assert "".join(t for t, f in flags if f) == "ĠRefund.<eos>"
    assert "".join(t for t, f in flags if not f) == "<bos>OrderĠ12?"
    assert all(f == 1 for _, f in _flags(tokenizer, Record("prompt_completion", "Q", "A"), "all"))


@pytest.mark.parametrize("template", [None, TEMPLATE], ids=["plain", "chat-template"])
def test_chat_loss_is_on_the_assistant_turns_only(tokenizer: Any, template: str | None) -> None:
    tokenizer.chat_template = template
    record = Record("messages", messages=(*CHAT, ("assistant", "Please.")))
    flags = _flags(tokenizer, record)
    loss = "".join(t for t, f in flags if f).replace("Ġ", " ")
    if template is None:  # finetrail's plain template: "role: content\n"
        assert loss == "Refund sent.ĊPlease.Ċ<eos>"
    else:  # the generation prompt "<bos>assistant\n" is not the model's to learn; <eos> is
        assert loss == "Refund sent.<eos>Please.<eos>"
        assert [t for t, _ in flags][:2] == ["<bos>", "u"]  # no second <bos> from the tokenizer


def test_the_training_loss_is_the_mean_over_completion_tokens(
    tiny_llama: Path, tmp_path: Path, tokenizer: Any
) -> None:
    from tests.support.tiny_training import tiny_engine

    data = tmp_path / "data"
    data.mkdir()
    cfg = parse_config(
        base_config(tiny_llama, data, data={"format": "prompt_completion"}), source="t"
    )
    rows = [
        Record("prompt_completion", "Order 12 late?", " Refund it."),
        Record("prompt_completion", "Hi", " Bye."),
    ]
    ids, mask, loss_mask, _ = encode_records(tokenizer, rows, 64, loss_on="completion")
    cfg = cfg.model_copy(update={"privacy": "none"})
    built, _, engine = tiny_engine(cfg, dp=False)
    engine.stepper.loss_mask = loss_mask
    with torch.no_grad():
        logits = built.model(**model_inputs(ids, mask, "lora")).logits
        got = engine.stepper.loss(logits, ids, mask)
        want = sequence_loss(logits, ids, mask * loss_mask).mean()
        everything = sequence_loss(logits, ids, mask).mean()
    assert torch.equal(got, want) and not torch.isclose(got, everything)


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _chat_rows(n: int, seed: int) -> list[dict[str, Any]]:
    from finetrail.training.tiny import word_texts

    q = word_texts(n, seed=seed, min_words=2, max_words=4)
    a = word_texts(n, seed=seed + 100, min_words=2, max_words=4)
    return [
        {"messages": [{"role": "user", "content": x}, {"role": "assistant", "content": y}]}
        for x, y in zip(q, a, strict=True)
    ]


def test_a_chat_dataset_trains_under_dp_with_completion_only_loss(
    tiny_llama: Path, tmp_path: Path
) -> None:
    from finetrail.governance.evidence.training import TrainingEvidence

    train_file = _write(tmp_path / "chat-train.jsonl", _chat_rows(48, 1))
    val_file = _write(tmp_path / "chat-val.jsonl", _chat_rows(8, 2))
    cfg = base_config(
        tiny_llama, tmp_path, data={"format": "messages", "max_length": 96}, optim={"steps": 3}
    )
    cfg["data"].update(train=str(train_file), validation=str(val_file))
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    rec = train(config=write_config(tmp_path / "t.yaml", cfg), workspace=ws, check_dp=True)
    assert rec.completed and rec.dp.epsilon and rec.dp.epsilon > 0
    assert rec.dp.check is not None and rec.dp.check.passed  # brute force on the same tokens
    assert [d.format for d in rec.datasets] == ["messages", "messages"]
    assert (
        "chat messages rendered with finetrail's plain template (one line '{role}: {content}' "
        "per message; the generation prompt is 'assistant: '); loss on the assistant turns' "
        "tokens only" in rec.dp.adjustments
    )
    assert not any("zero gradient" in a for a in rec.dp.adjustments)
    assert rec.dp.private_records == 48
    assert TrainingEvidence.read(ws.root / "evidence/training.json") == rec


def test_records_truncated_before_their_completion_are_stated(tokenizer: Any) -> None:
    from types import SimpleNamespace

    from finetrail.training.data import encode

    rows = [Record("prompt_completion", "Order 123 was late", " Refund."), Record("text", "Hi")]
    _, _, loss, notes = encode(
        tokenizer, rows, SimpleNamespace(max_length=6, loss_tokens="completion")
    )
    assert loss is not None and int(loss[0].sum()) == 0 and int(loss[1].sum()) > 0
    assert notes == [
        "prompt/completion records, the completion appended to the prompt; loss on the "
        "completion tokens only",
        "1 of 2 record(s) exceed data.max_length 6 tokens (the longest has 28) and were "
        "truncated to it: their later tokens are never trained on",
        "1 record(s) keep no loss token within data.max_length 6: they are sampled and "
        "accounted but contribute a zero gradient",
    ]
