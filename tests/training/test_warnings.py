"""Third-party warnings: the ones from our own calls are gone, the rest are filtered narrowly
(one message, category and module each) around a CLI command, listed with their reasons in
docs/training.md; anything else still shows."""

from __future__ import annotations

import builtins
import gc
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetrail.third_party import LOGGERS, WARNINGS, quieted
from tests.support.tiny_training import (
    base_config,
    make_texts,
    tiny_model,
    write_config,
    write_jsonl,
)

ROOT = Path(__file__).resolve().parents[2]
# what our own calls used to make transformers log; fixed at the call, never filtered
FIXED_LOG_LINES = ("Token indices sequence length is longer", "`past_key_values`/`cache_params`")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


@pytest.fixture
def transformers_log() -> Iterator[_Lines]:
    from transformers.utils import logging as hf_logging

    handler = _Lines()
    hf_logging.add_handler(handler)
    try:
        yield handler
    finally:
        hf_logging.remove_handler(handler)


def test_every_filter_is_listed_in_the_docs_with_its_module() -> None:
    doc = (ROOT / "docs/training.md").read_text(encoding="utf-8")
    section = doc.split("## Warnings finetrail filters", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) == len(WARNINGS) + len(LOGGERS)
    for w in WARNINGS:
        assert any(w.message in row and w.category in row and w.module in row for row in rows), w
    for lg in LOGGERS:
        assert any(lg.logger in row for row in rows), lg


def test_quieted_drops_only_the_listed_warnings_and_restores_the_filters() -> None:
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quieted():
            for w in WARNINGS:
                cat = getattr(builtins, w.category)
                text = w.message.replace("\\", "") + " (as the library words it)"
                module = w.module.replace("\\", "")
                warnings.warn_explicit(text, cat, "lib.py", 1, module=module)  # filtered
                warnings.warn_explicit(text, cat, "ours.py", 1, module="finetrail.x")  # shown
                warnings.warn_explicit("another message", cat, "lib.py", 1, module=module)
            assert logging.getLogger(LOGGERS[0].logger).level == LOGGERS[0].level
    shown = [(str(s.message), s.filename) for s in seen]
    assert len(shown) == 2 * len(WARNINGS)
    assert all(f == "ours.py" or m == "another message" for m, f in shown)
    assert warnings.filters == before
    assert logging.getLogger(LOGGERS[0].logger).level == logging.NOTSET


def test_record_lengths_are_counted_without_a_transformers_warning(
    tmp_path_factory: pytest.TempPathFactory, transformers_log: _Lines
) -> None:
    from finetrail.training.data import truncated_records
    from finetrail.training.dp_check import _pick
    from finetrail.training.formats import Record
    from finetrail.training.model import load_tokenizer

    tok, _ = load_tokenizer(tiny_model("llama", tmp_path_factory))
    tok.model_max_length = 8  # what a real base model's tokenizer declares
    texts = make_texts(20, seed=5, min_words=20, max_words=30)
    records = [Record("text", text=t) for t in texts]
    over, longest = truncated_records(tok, records, 8)
    assert over == 20 and longest > 8  # the full lengths are still counted
    assert len(_pick(texts, tok, 4)) == 4
    assert not [line for line in transformers_log.lines if FIXED_LOG_LINES[0] in line]


@pytest.mark.slow
def test_dp_train_and_probe_print_no_unfiltered_third_party_warning(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    run_cli,  # type: ignore[no-untyped-def]
    transformers_log: _Lines,
) -> None:
    from finetrail.governance.workspace import Workspace

    base = tiny_model("llama", tmp_path_factory)
    data = tmp_path / "data"
    data.mkdir()
    cfg = base_config(
        base,
        data,
        privacy={"target_epsilon": 8.0, "delta": 1e-3, "max_grad_norm": 1.0},
        optim={"steps": 3},
        tracking={"mlflow": True},
    )
    del cfg["privacy"]["noise_multiplier"]
    path = write_config(tmp_path / "train.yaml", cfg)
    heldout = write_jsonl(data / "heldout.jsonl", make_texts(48, seed=7))
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    gc.collect()  # what earlier tests in this process left is finalised outside the capture
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # every warning, even those Python hides by default
        code, _out, err = run_cli("train", str(ws.root), str(path), "--no-progress")
        assert code == 0, err[-3000:]
        code, _out, err2 = run_cli(
            "probe",
            str(ws.root),
            "--only",
            "mia",
            "--train-data",
            str(data / "train.jsonl"),
            "--heldout-data",
            str(heldout),
            "--no-progress",
        )
        assert code == 0, err2[-3000:]
    third_party = [
        f"{s.category.__name__}: {s.message} ({s.filename}:{s.lineno})"
        for s in seen
        if "site-packages" in s.filename
    ]
    assert third_party == []
    logged = [x for x in transformers_log.lines if any(f in x for f in FIXED_LOG_LINES)]
    assert logged == []
    for text in (err, err2):
        assert not re.search(r"Secure RNG turned off|Optimal order is the largest alpha", text)
        assert "Creating initial MLflow database tables" not in text
