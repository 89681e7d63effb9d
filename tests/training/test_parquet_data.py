"""Parquet datasets: ``data register`` and training read the same rows as JSONL of the same
records (record counts, Merkle root, the records parsed); training binds a Parquet file to its
registration by digest; a malformed Parquet file is refused naming the file (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from finetrail.cli import main
from finetrail.governance.io import canonical_json
from finetrail.governance.provenance.api import register_dataset
from finetrail.governance.workspace import Workspace
from finetrail.training import train
from finetrail.training.data import read_jsonl_records
from tests.support.tiny_training import base_config, make_texts, tiny_model, write_config

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

META = {
    "license": "MIT",
    "source": "https://data.example.test/t",
    "collection": "exported",
    "legal_basis": "GDPR Art. 6(1)(f)",
    "purpose": "fine-tune",
}


def _chat_rows(n: int, seed: int) -> list[dict[str, Any]]:
    q = make_texts(n, seed=seed, min_words=2, max_words=5)
    a = make_texts(n, seed=seed + 100, min_words=2, max_words=5)
    return [
        {"messages": [{"content": x, "role": "user"}, {"content": y, "role": "assistant"}]}
        for x, y in zip(q, a, strict=True)
    ]


def _both(tmp: Path, rows: list[dict[str, Any]], name: str) -> tuple[Path, Path]:
    """The same rows as canonical JSONL and as Parquet."""
    jsonl = tmp / f"{name}.jsonl"
    jsonl.write_bytes(b"".join(canonical_json(r) + b"\n" for r in rows))
    parquet = tmp / f"{name}.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return jsonl, parquet


@pytest.mark.parametrize(
    ("fmt", "rows"),
    [
        ("text", [{"text": t} for t in make_texts(12, seed=4)]),
        ("prompt_completion", [{"completion": " yes", "prompt": t} for t in make_texts(5, seed=5)]),
        ("messages", _chat_rows(6, 6)),
    ],
)
def test_parquet_and_jsonl_of_the_same_rows_agree(
    tmp_path: Path, fmt: str, rows: list[dict[str, Any]]
) -> None:
    jsonl, parquet = _both(tmp_path, rows, "d")
    j_sha, j_records = read_jsonl_records(jsonl, fmt)
    p_sha, p_records = read_jsonl_records(parquet, fmt)
    assert p_records == j_records and len(p_records) == len(rows)
    assert p_sha != j_sha  # each file is identified by its own bytes
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    rec_j = register_dataset(workspace=ws.root, path=jsonl, name="j", **META)
    rec_p = register_dataset(workspace=ws.root, path=parquet, name="p", **META)
    assert (rec_p.records, rec_p.merkle_root) == (rec_j.records, rec_j.merkle_root)
    assert rec_p.sha256 == p_sha  # what training looks the registration up by


def test_a_registered_parquet_chat_dataset_trains(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, parquet = _both(tmp_path, _chat_rows(24, 1), "train")
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    register_dataset(workspace=ws.root, path=parquet, name="train", **META)
    cfg = base_config(
        tiny_model("llama", tmp_path_factory),
        tmp_path,
        data={"format": "messages", "max_length": 64, "unregistered": "refuse"},
        optim={"steps": 2},
    )
    cfg["data"]["train"] = str(parquet)
    del cfg["data"]["validation"]
    rec = train(config=write_config(tmp_path / "t.yaml", cfg), workspace=ws)
    assert rec.completed and rec.dp.private_records == 24
    (ds,) = rec.datasets
    assert (ds.format, ds.registered, ds.sha256) == (
        "messages",
        True,
        read_jsonl_records(parquet, "messages")[0],
    )


def test_a_malformed_parquet_file_is_refused_naming_the_file(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    cfg = base_config(tiny_model("llama", tmp_path_factory), tmp_path)
    cfg["data"]["train"] = str(bad)
    config = write_config(tmp_path / "t.yaml", cfg)

    assert main(["train", str(config), "--workspace", str(ws.root)]) == 2
    err = capsys.readouterr().err
    assert f"  - data.train: {bad}: not a readable Parquet file (" in err
    assert "Traceback" not in err

    register = ["data", "register", str(bad), "--workspace", str(ws.root), "--name", "b"]
    for key, value in META.items():
        register += [f"--{key.replace('_', '-')}", value]
    assert main(register) == 2
    err = capsys.readouterr().err
    assert f"\nerror: {bad}: not a readable Parquet file (" in f"\n{err}"
    assert "Traceback" not in err


def test_a_parquet_row_that_is_not_a_record_is_named(tmp_path: Path) -> None:
    rows = [{"text": "fine"}, {"text": ""}, {"text": "also fine"}]
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    from finetrail.errors import InputError

    with pytest.raises(InputError) as caught:
        read_jsonl_records(parquet, "text")
    assert caught.value.what == (
        "invalid dataset: row 2: field 'text' is missing or not a non-empty string"
    )
    assert caught.value.path == str(parquet)
