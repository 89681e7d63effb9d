"""A model that answers everyone alike: the dossier and the model card say its disparities are no
evidence of fairness (the gate fails it too: task-predictions-not-constant)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from finetrail.reports.release import degenerate_model

GROUPS = [
    {"feature": "gender", "group": "female", "too_small": False, "selection_rate": {"value": 0.4}},
    {"feature": "gender", "group": "male", "too_small": False, "selection_rate": {"value": 0.5}},
    {"feature": "age_band", "group": "65+", "too_small": True, "selection_rate": {"value": 1.0}},
]


def bias(rate: Any = 0.41, groups: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "task": {"selection_rate": rate},
        "groups": copy.deepcopy(GROUPS if groups is None else groups),
    }


def test_an_informative_model_is_not_flagged() -> None:
    # a too-small group with a constant answer is not judged, so it does not flag the model
    assert degenerate_model(bias()) is None
    assert degenerate_model(None) is None


@pytest.mark.parametrize(("rate", "answer"), [(0.0, "'no'"), (1.0, "'yes'"), (0, "'no'")])
def test_a_constant_model_is_flagged(rate: float, answer: str) -> None:
    text = degenerate_model(bias(rate))
    assert text is not None and answer in text and "not evidence of fairness" in text


def test_a_constant_judged_group_is_flagged() -> None:
    groups = copy.deepcopy(GROUPS)
    groups[0]["selection_rate"]["value"] = 0.0
    text = degenerate_model(bias(groups=groups))
    assert text is not None and "gender=female" in text and "65+" not in text


@pytest.mark.parametrize("rate", [0.0, 0.41])
def test_the_dossier_and_card_state_it(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str], rate: float
) -> None:
    from finetrail.cli import main
    from tests.support.workspaces import build_workspace

    ws = build_workspace(tmp_path / "ws", override={"bias": {"task.selection_rate": rate}}).root
    assert main(["report", str(ws), "--format", "md,html"]) in (0, 1)
    capsys.readouterr()
    html = (ws / "dossier" / "index.html").read_text()
    card = (ws / "dossier" / "README.md").read_text()
    flagged = rate == 0.0
    assert ("Not evidence of fairness" in html) is flagged
    assert ("Not evidence of fairness" in card) is flagged
    if flagged:
        assert "answers 'no' to every applicant" in html.replace("&#39;", "'")
