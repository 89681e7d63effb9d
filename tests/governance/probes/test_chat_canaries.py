"""Chat canaries: each included canary's copies go into chat-format data as their own
conversation, the canary in the assistant's turn, so the completion-only loss trains on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetrail.errors import InputError
from finetrail.governance.probes.canaries import augment_chat, draw_canaries
from finetrail.governance.probes.formats import PIN6
from tests.support.tiny_training import tiny_model

CHATS: list[dict[str, Any]] = [
    {
        "messages": [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    }
    for i in range(6)
]


def test_canaries_go_into_the_assistant_turn_of_their_own_conversation() -> None:
    canaries = draw_canaries(formats=[PIN6], m=6, repetitions=(1, 4), seed=5)
    out = augment_chat(CHATS, canaries, seed=1)
    assert len(out) == len(CHATS) + sum(c.copies for c in canaries)
    assert [r for r in out if r in CHATS] == CHATS  # the data is kept, in order
    planted = [r["messages"] for r in out if r not in CHATS]
    by_text = {c.text: c for c in canaries}
    for turns in planted:
        assert [t["role"] for t in turns] == ["user", "assistant"]
        assert turns[0]["content"] in {f"question {i}" for i in range(6)}
        assert by_text[turns[1]["content"]].included
    for c in canaries:
        assert sum(t[1]["content"] == c.text for t in planted) == c.copies
    assert augment_chat(CHATS, canaries, seed=1) == out  # seeded


def test_the_training_loss_covers_a_chat_canarys_secret(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from finetrail.training.data import read_jsonl_records
    from finetrail.training.formats import encode_records
    from finetrail.training.model import load_tokenizer

    tok = load_tokenizer(tiny_model("llama", tmp_path_factory))[0]
    (canary,) = [
        c for c in draw_canaries(formats=[PIN6], m=2, repetitions=(1,), seed=2) if c.included
    ] or pytest.skip("no canary included with this seed")
    out = augment_chat(CHATS[:1], [canary], seed=0)
    path = Path(tmp_path_factory.mktemp("chat")) / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    _, records = read_jsonl_records(path, "messages", "text")  # valid training records
    (record,) = [r for r in records if any(canary.text == c for _, c in r.messages)]
    _, _, loss, _ = encode_records(tok, [record], 96, loss_on="completion")
    text = "".join(f"{r}: {c}\n" for r, c in record.messages)  # the plain template
    enc = tok(text, return_offsets_mapping=True)
    start = text.index(canary.secret)
    secret_tokens = [
        i
        for i, (s, e) in enumerate(enc["offset_mapping"])
        if s < start + len(canary.secret) and e > start
    ]
    assert secret_tokens and all(int(loss[0, i]) == 1 for i in secret_tokens)
    user_end = text.index("\n")
    user_tokens = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if s < e <= user_end]
    assert user_tokens and all(int(loss[0, i]) == 0 for i in user_tokens)


@pytest.mark.parametrize(
    ("records", "want"),
    [
        ([{"text": "plain"}], "field 'messages': record 1 has no list of message objects"),
        (
            [{"messages": [{"role": "assistant", "content": "hi"}]}],
            "field 'messages': the data has no user turn to put before a canary",
        ),
    ],
)
def test_chat_canaries_need_chat_data(records: list[dict[str, Any]], want: str) -> None:
    canaries = draw_canaries(formats=[PIN6], m=2, seed=1)
    with pytest.raises(InputError) as caught:
        augment_chat(records, canaries, seed=0)
    assert caught.value.diagnostics().splitlines()[0] == f"error: {want}"
