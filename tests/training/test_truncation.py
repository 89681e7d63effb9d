"""Sequence length limits: records longer than ``data.max_length`` are truncated, and the run's
evidence states how many (``dp.adjustments``), counted on the tokens training uses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from finetrail.governance.workspace import Workspace
from finetrail.training import train
from finetrail.training.data import encode, truncated_records
from finetrail.training.formats import Record
from tests.support.tiny_training import base_config, tiny_model, write_config, write_jsonl


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


def test_truncated_records_are_counted_on_training_tokens(tiny_llama: Path) -> None:
    from finetrail.training.model import load_tokenizer

    tok = load_tokenizer(tiny_llama)[0]
    records = [Record("text", text="the " * n) for n in (2, 10, 40)]
    lengths = [len(tok(r.text)["input_ids"]) for r in records]
    limit = lengths[1]  # the second fits exactly, the third does not
    assert truncated_records(tok, records, limit) == (1, lengths[2])
    ids, mask, _, notes = encode(tok, records, SimpleNamespace(max_length=limit))
    assert ids.shape[1] == limit and int(mask[2].sum()) == limit
    assert notes == [
        f"1 of 3 record(s) exceed data.max_length {limit} tokens (the longest has "
        f"{lengths[2]}) and were truncated to it: their later tokens are never trained on"
    ]
    assert encode(tok, records, SimpleNamespace(max_length=lengths[2]))[3] == []


def test_the_run_states_the_truncation(tiny_llama: Path, tmp_path: Path) -> None:
    texts = ["short text"] * 20 + ["a much longer record " * 20] * 4
    cfg = base_config(tiny_llama, tmp_path, data={"max_length": 16}, optim={"steps": 1})
    cfg["data"]["train"] = str(write_jsonl(tmp_path / "long.jsonl", texts))
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    rec = train(config=write_config(tmp_path / "t.yaml", cfg), workspace=ws)
    (note,) = [a for a in rec.dp.adjustments if "exceed data.max_length" in a]
    assert note.startswith("4 of 24 record(s) exceed data.max_length 16 tokens (the longest has ")
