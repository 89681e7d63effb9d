"""benchmarks/seed_claim.py: its smallest run end to end (pretraining, the control and the DP run
through finetrail, the extraction probe, task F1), and the arithmetic of what it reports."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "seed_claim.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seed_claim", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("truth", "pred", "expected"),
    [
        (["billing", "delivery", "login", "refund"], ["billing", "delivery", "login", "refund"], 1),
        (["billing"] * 4, ["delivery"] * 4, 0.0),
        # billing: tp 1, fp 1, fn 1 -> 0.5; delivery, login: no tp -> 0; refund absent -> 0
        (["billing", "billing", "delivery", "delivery"],
         ["billing", "delivery", "billing", "login"], 0.5 / 4),
    ],
    ids=["perfect", "all-wrong", "mixed"],
)  # fmt: skip
def test_macro_f1(truth: list[str], pred: list[str], expected: float) -> None:
    assert _module().macro_f1(truth, pred) == pytest.approx(expected)


def test_removed_is_undefined_when_the_control_memorised_nothing() -> None:
    mod = _module()
    control = {"memorized_identifiers": 0, "task_f1": 0.5}
    dp = {"memorized_identifiers": 0, "task_f1": 0.4}
    assert mod.summarise(control, dp) == {"removed_fraction": None, "kept_fraction": 0.8}
    control = {"memorized_identifiers": 40, "task_f1": 0.0}
    dp = {"memorized_identifiers": 2, "task_f1": 0.4}
    assert mod.summarise(control, dp) == {"removed_fraction": 0.95, "kept_fraction": None}


def test_every_planted_identifier_is_one_the_probe_finds() -> None:
    from finetrail.governance.pii import patterns

    mod = _module()
    data = mod.make_data(mod.SCALES["smoke"], seed=3)
    ssns = {t["head"].split("(SSN ")[1].split(")")[0] for t in data["train"]}
    assert len(ssns) == data["identifiers"] == mod.SCALES["smoke"].customers
    found = {
        m.value(t["head"])
        for t in data["train"]
        for m in patterns.find(t["head"])
        if m.entity == "US_SSN"
    }
    assert found == ssns
    held = {t["head"].split("(SSN ")[1].split(")")[0] for t in data["heldout"]}
    assert not held & ssns  # F1 is measured on other customers


@pytest.mark.slow
def test_the_smoke_run_writes_a_table_json_and_the_doc_block(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# T\n\nbefore\n<!-- seed-claim:start -->\nold\n<!-- seed-claim:end -->\nafter\n"
    )
    out = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out), "--write-doc", str(doc)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "seed_claim.json").read_text())
    control, dp, summary = result["control"], result["dp"], result["summary"]
    for run in (control, dp):
        assert run["identifiers_in_training"] == 8  # the smoke scale's customers
        assert 0 <= run["memorized_identifiers"] <= run["identifiers_in_training"]
        assert run["memorized_rate"] == pytest.approx(
            run["memorized_identifiers"] / run["identifiers_in_training"]
        )
        assert 0.0 <= run["task_f1"] <= 1.0 and 0.0 <= run["base_task_f1"] <= 1.0
        assert run["steps"] > 0
    assert control["epsilon"] is None and control["noise_multiplier"] is None
    assert 0 < dp["epsilon"] <= 0.5 + 1e-6 and dp["noise_multiplier"] > 0
    # the two runs are finetrail workspaces with their own evidence
    for name, run in (("control", control), ("dp", dp)):
        training = json.loads((out / "runs" / name / "evidence/training.json").read_text())
        assert training["dp"]["steps"] == run["steps"]
        assert training["dp"]["epsilon"] == run["epsilon"]
        probe = json.loads((out / "runs" / name / "evidence/probes/extraction.json").read_text())
        assert probe["memorized_identifiers"] == run["memorized_identifiers"]
    if control["memorized_identifiers"]:
        assert summary["removed_fraction"] == pytest.approx(
            1 - dp["memorized_identifiers"] / control["memorized_identifiers"]
        )
    else:
        assert summary["removed_fraction"] is None
    if control["task_f1"]:
        assert summary["kept_fraction"] == pytest.approx(dp["task_f1"] / control["task_f1"])
    else:
        assert summary["kept_fraction"] is None
    assert result["meta"]["base_parameters"] > 0
    assert (
        "| non-private control |" in proc.stdout and "| DP-SGD, target epsilon 0.5 |" in proc.stdout
    )
    text = doc.read_text()
    assert text.startswith("# T\n\nbefore\n<!-- seed-claim:start -->\n") and text.endswith(
        "<!-- seed-claim:end -->\nafter\n"
    )
    assert "old" not in text and "| non-private control |" in text


def test_write_doc_fills_only_its_named_block(tmp_path: Path) -> None:
    mod = _module()
    doc = tmp_path / "d.md"
    doc.write_text("a\n<!-- seed-claim:start -->\nkeep\n<!-- seed-claim:end -->\nb\n")
    mod.write_doc(doc, "new", "seed-claim-large")
    assert doc.read_text() == (
        "a\n<!-- seed-claim:start -->\nkeep\n<!-- seed-claim:end -->\nb\n"
        "\n<!-- seed-claim-large:start -->\nnew\n<!-- seed-claim-large:end -->\n"
    )
    mod.write_doc(doc, "newer", "seed-claim-large")
    assert doc.read_text().count("newer") == 1 and "keep" in doc.read_text()
    assert "new\n" not in doc.read_text().replace("newer\n", "")
