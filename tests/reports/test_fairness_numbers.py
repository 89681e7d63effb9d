"""Fairness figures read by people: a few significant digits, floating-point noise (|x| < 1e-9)
as 0, "no difference" and "no change" said in words; the evidence keeps the exact values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from finetrail.governance.workspace import Workspace
from finetrail.reports.model import fair, fair_effect, fair_value
from tests.support.evidence import bias_audit_evidence, write_records
from tests.support.sample_release import ACTOR, build_fixed, report

ADAPTER_A = "a" * 64


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-16, "0"),
        (-2.7755575615628914e-17, "0"),
        (0.0, "0"),
        (0.0412345, "0.0412"),
        (-0.1999999999, "-0.2"),
        (0.9999999999999998, "1"),
        (2e-6, "2e-06"),  # small but real: kept
        (None, "n/a"),
    ],
)
def test_fair_rounds_and_zeroes_noise(value: float | None, text: str) -> None:
    assert fair(value) == text


def test_a_zero_difference_reads_no_difference_a_ratio_stays_a_number() -> None:
    assert fair_value(1e-16, "demographic_parity_difference") == "0 (no difference)"
    assert fair_value(0.04, "demographic_parity_difference") == "0.04"
    assert fair_value(1e-17, "demographic_parity_ratio") == "0"  # a ratio of 0 is no parity


@pytest.mark.parametrize(
    ("effect", "text"),
    [
        ({"delta": 1e-16, "ci_low": -2e-16, "ci_high": 3e-16}, "no change"),
        ({"delta": 1e-16, "ci_low": -0.02, "ci_high": 0.03}, "0 (-0.02 to 0.03)"),
        ({"delta": 0.0123456, "ci_low": -3e-17, "ci_high": 0.04}, "0.0123 (0 to 0.04)"),
        ({"delta": None, "ci_low": None, "ci_high": None}, "n/a"),
        (None, "n/a"),
    ],
)
def test_fair_effect(effect: dict[str, float | None] | None, text: str) -> None:
    assert fair_effect(effect) == text


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fair") / "ws"
    build_fixed(root, kinds=("datasets", "training", "probes"))
    record = bias_audit_evidence(
        adapter_sha256=ADAPTER_A,
        disparities={
            "demographic_parity_difference": (1e-16, -2e-16, 3e-16),
            "equalized_odds_difference": (0.0623456, 0.0201, 0.1),
        },
        finetune_effect={
            "demographic_parity_difference": (1e-16, -1e-16, 2e-16),
            "equalized_odds_difference": (0.0123456, -3e-17, 0.04),
        },
    )
    write_records(Workspace.open(root), {"evidence/bias.json": record}, actor=ACTOR)
    code, _, err = report(["report", str(root), "--format", "html,md"])
    assert code == 0, err
    return root


def test_the_dossier_table_shows_no_float_noise(noisy: Path) -> None:
    page = (noisy / "dossier" / "index.html").read_text()
    section = page[page.index('<section id="fairness">') :]
    table = section[: section.index("</table>")]
    rows = dict(re.findall(r"<tr><td>(\w+)</td>((?:<td class=\"num\">[^<]*</td>){3})</tr>", table))
    cells = {k: re.findall(r'<td class="num">([^<]*)</td>', v) for k, v in rows.items()}
    assert cells["demographic_parity_difference"] == ["0 (no difference)", "0 to 0", "no change"]
    assert cells["equalized_odds_difference"] == ["0.0623", "0.0201 to 0.1", "0.0123 (0 to 0.04)"]
    assert not re.search(r"\de-1\d", table)


def test_the_model_card_shows_no_float_noise(noisy: Path) -> None:
    card = (noisy / "dossier" / "README.md").read_text()
    line = next(x for x in card.splitlines() if "The bias audit measured" in x)
    assert "demographic_parity_difference 0 (no difference) (95% interval 0 to 0)" in line
    assert not re.search(r"\de-1\d", line)


def test_the_evidence_keeps_the_exact_values(noisy: Path) -> None:
    bias = json.loads((noisy / "evidence" / "bias.json").read_text())
    assert bias["disparities"]["demographic_parity_difference"]["value"] == 1e-16
    assert bias["finetune_effect"]["equalized_odds_difference"]["ci_low"] == -3e-17


def test_the_model_card_says_when_prompts_were_framed_as_chat(noisy: Path, tmp_path: Path) -> None:
    """A chat-trained model's audit scored labels as assistant replies: the card says so; an
    audit in the text framing (or one that did not record it) says nothing of chat."""
    card = (noisy / "dossier" / "README.md").read_text()
    assert "framed as chat" not in card
    root = tmp_path / "ws"
    build_fixed(root, kinds=("datasets", "training", "probes"))
    record = bias_audit_evidence(adapter_sha256=ADAPTER_A)
    record = record.model_copy(
        update={"method": record.method.model_copy(update={"prompt_format": "chat"})}
    )
    write_records(Workspace.open(root), {"evidence/bias.json": record}, actor=ACTOR)
    code, _, err = report(["report", str(root), "--format", "md"])
    assert code == 0, err
    line = next(
        x for x in (root / "dossier" / "README.md").read_text().splitlines() if "bias audit" in x
    )
    assert "Prompts were framed as chat conversations" in line
