"""The dossier's training section states the precision a run trained in, from the evidence:
``compute.precision`` when recorded, else the run's recorded ``config.optim.precision`` (named as
such), else "not recorded" with the command that records it."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from finetrail.governance.workspace import Workspace
from tests.support.evidence import (
    TRAINING_FILE,
    add_adapter,
    evolve,
    standard_records,
    write_records,
)
from tests.support.sample_release import report


def _training_row(tmp_path: Path, changes: dict[str, Any]) -> str:
    root = tmp_path / "ws"
    ws = Workspace.init(root, model="m", version="1", owner="alice", intended_purpose="support")
    adapter = add_adapter(ws, actor="alice")
    records = standard_records(adapter)
    records[TRAINING_FILE] = evolve(records[TRAINING_FILE], changes)
    write_records(ws, records, actor="alice")
    code, _out, err = report(["report", str(root)])
    assert code in (0, 1), err
    page = (root / "dossier" / "index.html").read_text("utf-8")
    section = page[page.index('<section id="training">') :]
    section = section[: section.index("</section>")]
    rows = re.findall(r"<tr><th>compute\.precision</th><td>(.*?)</td></tr>", section, re.S)
    assert len(rows) == 1, rows  # one row, never both the recorded field and a fallback
    return html.unescape(re.sub(r"<[^>]+>", "", rows[0]))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"compute.precision": "fp32"}, "fp32"),
        (
            {"compute.precision": "bf16"},
            "bf16 (bf16 autocast of the forward pass and the loss; weights, gradients and "
            "optimizer state fp32)",
        ),
        (
            {"config": {"method": {"name": "lora"}, "optim": {"precision": "fp32"}}},
            "fp32 (from the run's recorded config, optim.precision; this training.json predates "
            "compute.precision)",
        ),
        (
            {},
            "not recorded: this training.json predates compute.precision and its config names no "
            "optim.precision (re-run finetrail train to record it)",
        ),
    ],
    ids=["fp32", "bf16", "config-only", "not-recorded"],
)
def test_the_training_section_states_the_precision(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    assert _training_row(tmp_path, changes) == expected


def test_the_recorded_precision_is_validated() -> None:
    from finetrail.errors import InputError

    records = standard_records("0" * 64)
    with pytest.raises(InputError, match=r"field 'compute\.precision'"):
        evolve(records[TRAINING_FILE], {"compute.precision": "int8"})
