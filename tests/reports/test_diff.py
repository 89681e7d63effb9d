"""`finetrail diff`: what changed between two releases, as text, JSON and a dossier section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.sample_release import build_fixed, report


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("diff")
    build_fixed(base / "a", variant="a")
    build_fixed(base / "b", variant="b")
    return base / "a", base / "b"


def test_diff_text_names_each_kind_of_change(releases: tuple[Path, Path]) -> None:
    a, b = releases
    code, out, err = report(["diff", str(a), str(b)])
    assert code == 0, err
    assert out.startswith("compliance diff: support-assistant 1.0.0 -> support-assistant 1.1.0")
    assert "+ support-tickets-2025h2 (" in out  # the added dataset
    assert "~ training.dp.epsilon: 8 -> 3" in out
    assert "~ training.dp.noise_multiplier: 0.6689 -> 1.1" in out
    assert "~ probes.membership.max_auc: 0.52 -> 0.55" in out
    assert "~ bias.disparities.equalized_odds_difference: 0.06 -> 0.11" in out
    assert "~ verdict: passed -> blocked" in out
    assert "~ rule bias-eod-max passed: yes -> no" in out
    for area in ("[datasets]", "[dp]", "[probes]", "[audit]", "[gate]"):
        assert area in out


def test_diff_of_a_release_with_itself_is_empty(releases: tuple[Path, Path]) -> None:
    a, _ = releases
    code, out, _ = report(["diff", str(a), str(a)])
    assert code == 0
    assert "no changes" in out


def test_diff_json_and_coverage_changes(releases: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = releases
    bare = tmp_path / "bare"
    build_fixed(bare, kinds=("datasets",))
    code, out, _ = report(["diff", str(bare), str(a), "--json"])
    assert code == 0
    changes = json.loads(out)["changes"]
    cov = [c for c in changes if c["area"] == "coverage"]
    assert {
        "area": "coverage",
        "item": "eu-ai-act-annex-iv 2(g)",
        "before": "needs input",
        "after": "evidence",
        "kind": "changed",
    } in cov
    assert any(c["item"] == "training.dp.epsilon" and c["kind"] == "added" for c in changes)


def test_report_compare_adds_the_diff_section_and_diff_md(
    releases: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = releases
    out = tmp_path / "out"
    code, _, err = report(
        ["report", str(b), "--compare", str(a), "--out", str(out), "--format", "html,md"]
    )
    assert code == 0, err
    html = (out / "index.html").read_text()
    assert 'id="diff"' in html and "Changes since support-assistant 1.0.0" in html
    md = (out / "diff.md").read_text()
    assert "| training.dp.epsilon | 8 | 3 | changed |" in md
