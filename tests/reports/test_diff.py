"""`finetrail diff`: what changed between two releases, as text, JSON and a dossier section."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from finetrail.reports.diff import diff
from finetrail.reports.loader import Evidence, load_evidence
from finetrail.reports.model import build_model
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


def test_diff_names_the_adapter_and_the_datasets_the_run_read(
    releases: tuple[Path, Path],
) -> None:
    a, b = releases
    code, out, err = report(["diff", str(a), str(b)])
    assert code == 0, err
    assert "[release]" in out and "~ adapter sha256: " in out
    assert re.search(r"\+ support-tickets-2025h2 \([0-9a-f]{12}\) read by the run as: train", out)
    assert "~ gate.warnings" not in out and "[approvals]" not in out  # unchanged: not listed


def _changed(ev: Evidence, *, training: dict[str, Any], gate: dict[str, Any]) -> Evidence:
    return dataclasses.replace(ev, training=training, gates=(*ev.gates[:-1], gate))


def test_diff_covers_method_hyperparameters_policy_and_approvals(
    releases: tuple[Path, Path],
) -> None:
    a, _ = releases
    before = load_evidence(a)
    assert before.training is not None and before.gates
    t = copy.deepcopy(before.training)
    t["method"] = "prefix"
    t["method_config"] = {"name": "prefix", "num_virtual_tokens": 8}
    t["config"] = {**t["config"], "optim": {"learning_rate": 0.001, "batch_size": 16}}
    t["seed"] = 7
    t["adapter"] = {**t["adapter"], "sha256": "f" * 64}
    g = copy.deepcopy(before.gates[-1])
    g["policy_version"] = "2.0.0"
    g["policy_sha256"] = "e" * 64
    g["approvals"] = {"required": True, "satisfied": True, "approvers": ["dpo (privacy)"]}
    g["approved"] = True
    after = _changed(before, training=t, gate=g)
    d = diff(build_model(before), build_model(after))
    got = {(c.area, c.item): (c.before, c.after, c.kind) for c in d.changes}
    assert got[("training", "method")] == ("LoRA adapter", "prefix-tuning adapter", "changed")
    assert got[("training", "method_config.name")] == ("lora", "prefix", "changed")
    assert got[("training", "method_config.rank")] == ("16", "", "removed")
    assert got[("training", "method_config.num_virtual_tokens")] == ("", "8", "added")
    assert got[("training", "config.optim.learning_rate")] == ("", "0.001", "added")
    assert got[("training", "seed")] == ("0", "7", "changed")
    assert got[("release", "adapter sha256")][1] == "f" * 64
    assert got[("policy", "policy version")] == ("1.0.0", "2.0.0", "changed")
    assert got[("policy", "policy sha256")][2] == "changed"
    assert got[("approvals", "sign-off")] == ("not required", "complete", "changed")
    assert got[("approvals", "approvers counted by the gate")] == ("", "dpo (privacy)", "added")
    assert got[("approvals", "approved (gate)")] == ("no", "yes", "changed")
    text = d.render_text()
    for area in ("[release]", "[training]", "[policy]", "[approvals]"):
        assert area in text
