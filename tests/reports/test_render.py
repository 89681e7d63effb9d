"""`finetrail report`: every pack renders, deterministically, from full, partial and bad evidence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.sample_release import build, build_fixed, report

PACK_FILES = (
    "index.html",
    "annex_iv.md",
    "nist_ai_rmf.md",
    "README.md",
    "coverage.md",
    "coverage.json",
    "bom.cdx.json",
    "spdx.json",
)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full") / "ws"
    build_fixed(root)
    code, _, err = report(["report", str(root)])
    assert code == 0, err
    return root


def test_report_writes_every_pack_and_export(full: Path) -> None:
    dossier = full / "dossier"
    for name in PACK_FILES:
        assert (dossier / name).is_file(), name
    sheets = sorted((dossier / "datasheets").glob("*.md"))
    assert len(sheets) == 3  # raw tickets, sanitised tickets, fairness evaluation set
    html = (dossier / "index.html").read_text()
    order = [
        html.index(f'id="{s}"')
        for s in (
            "verdict",
            "privacy",
            "memorisation",
            "fairness",
            "provenance",
            "training",
            "reviews",
            "integrity",
            "eu",
            "nist",
            "coverage",
        )
    ]
    assert order == sorted(order), "dossier sections out of order"
    assert html.count("<svg") == 5  # epsilon, membership ROC, exposure, bias bars, lineage


def test_same_evidence_and_clock_give_identical_bytes(full: Path, tmp_path: Path) -> None:
    code, _, err = report(["report", str(full), "--out", str(tmp_path / "again")])
    assert code == 0, err
    for name in PACK_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (full / "dossier" / name).read_bytes(), (
            name
        )


def test_annex_iv_has_all_25_entries_and_nist_all_72(full: Path) -> None:
    cov = json.loads((full / "dossier" / "coverage.json").read_text())
    annex = cov["frameworks"]["eu-ai-act-annex-iv"]
    assert [r["id"] for r in annex["requirements"]][:3] == ["1", "1(a)", "1(b)"]
    assert annex["totals"]["total"] == 25 == len(annex["requirements"])
    assert annex["regime_version"] == "eu-ai-act@02024R1689-20260727"
    nist = cov["frameworks"]["nist-ai-rmf"]
    assert nist["totals"]["total"] == 72
    assert {r["group"] for r in nist["requirements"]} == {"GOVERN", "MAP", "MEASURE", "MANAGE"}
    for fw in cov["frameworks"].values():
        t = fw["totals"]
        assert sum(v for k, v in t.items() if k != "total") == t["total"]
        for r in fw["requirements"]:
            if r["status"] in ("needs input", "not addressed"):
                assert r["ask"], r["id"]
                assert not r["evidence"]
            else:
                assert r["evidence"] and all(e["sha256"] for e in r["evidence"]), r["id"]
    by_id = {r["id"]: r for r in annex["requirements"]}
    assert by_id["2(d)"]["status"] == "evidence"
    assert by_id["8"]["status"] == "needs input"  # declaration of conformity: a human's document
    text = (full / "dossier" / "annex_iv.md").read_text()
    assert "Regulation (EU) 2024/1689" in text and "Regulation (EU) 2026/1744" in text
    assert "Fine-tuning compute 1.9e+12 FLOP is below the threshold 3.3e+22 FLOP" in text
    md = (full / "dossier" / "nist_ai_rmf.md").read_text()
    for fn in ("## GOVERN", "## MAP", "## MEASURE", "## MANAGE"):
        assert fn in md
    assert (
        md.count("| GOVERN ") + md.count("| MAP ") + md.count("| MEASURE ") + md.count("| MANAGE ")
        == 72
    )
    assert "| Data Privacy | evidence |" in md


def test_model_card_parses_with_huggingface_hub(full: Path) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard((full / "dossier" / "README.md").read_text())
    assert card.data.library_name == "peft"
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert metrics["accuracy"] == 0.81
    assert metrics["membership_inference_auc"] == 0.52
    audit = json.loads((full / "evidence" / "probes" / "dp_audit.json").read_text())
    assert metrics["dp_audit_epsilon_lower_bound"] == audit["empirical_epsilon_lower_bound"]
    text = card.text
    assert "epsilon=8 (prv accountant), delta=1e-05" in text
    lowered = (full / "dossier" / "README.md").read_text().lower()
    for promise in (" private model", "is private", " fair model", "is fair", "guarantees privacy"):
        assert promise not in lowered


@pytest.mark.parametrize(
    ("name", "shown", "hub_id"),
    [
        (None, "llama model 'base-model'", None),
        ("finetrail-demo-tiny-llama", "finetrail-demo-tiny-llama", None),
        ("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B"),
    ],
)
def test_base_model_is_named_on_the_card_bom_and_spdx(
    tmp_path: Path, name: str | None, shown: str, hub_id: str | None
) -> None:
    from huggingface_hub import ModelCard

    build(tmp_path / "ws", base_model_name=name)
    code, _, err = report(["report", str(tmp_path / "ws"), "--format", "md,cyclonedx,spdx"])
    assert code == 0, err
    out = tmp_path / "ws" / "dossier"
    card = ModelCard((out / "README.md").read_text())
    assert f"**Finetuned from model:** {shown} (weights sha256" in card.text
    # The metadata's base_model links to the Hub: only a Hub-shaped id goes there.
    assert card.data.base_model == hub_id
    assert f"{shown}, weights sha256" in (out / "annex_iv.md").read_text()
    bom = json.loads((out / "bom.cdx.json").read_text())
    assert [c["name"] for c in bom["components"] if c["bom-ref"] == "model-base"] == [shown]
    spdx_names = {n.get("name") for n in json.loads((out / "spdx.json").read_text())["@graph"]}
    assert shown in spdx_names


def test_absent_evidence_renders_needs_input_not_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    build_fixed(root, kinds=())
    code, out, err = report(["report", str(root), "--format", "html,md,cyclonedx,spdx"])
    assert code == 0, err
    assert "verdict: not gated" in out
    annex = (root / "dossier" / "annex_iv.md").read_text()
    assert "needs input: no training evidence (ask: ML engineer)" in annex
    cov = json.loads((root / "dossier" / "coverage.json").read_text())
    statuses = {r["status"] for r in cov["frameworks"]["nist-ai-rmf"]["requirements"]}
    assert statuses <= {"not addressed", "partial"}
    html = (root / "dossier" / "index.html").read_text()
    assert "Needs input: no gate decision has been recorded" in html
    assert html.count("<svg") == 0


def test_tampered_workspace_exits_1_and_the_dossier_says_so(tmp_path: Path) -> None:
    root = tmp_path / "tampered"
    build_fixed(root)
    bias = root / "evidence" / "bias.json"
    bias.write_text(bias.read_text().replace("0.81", "0.99"))
    code, _, err = report(["report", str(root), "--format", "html"])
    assert code == 1
    assert "failed `finetrail verify`" in err
    html = (root / "dossier" / "index.html").read_text()
    assert "Integrity check failed (1 problem)" in html
    assert "evidence/bias.json" in html and str(tmp_path) not in html


def test_malformed_evidence_is_bad_input_naming_the_file(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    ws = build_fixed(root, kinds=()).ws
    ws.write_bytes("evidence/training.json", b"{not json", event="x", actor="t")
    code, _, err = report(["report", str(root)])
    assert code == 2
    assert "evidence/training.json" in err and "malformed JSON at line 1" in err


def test_unknown_format_is_bad_input(full: Path) -> None:
    code, _, err = report(["report", str(full), "--format", "html,docx"])
    assert code == 2
    assert "unknown format(s): docx" in err


def test_user_templates_override_and_extend_in_a_sandbox(full: Path, tmp_path: Path) -> None:
    tdir = tmp_path / "tpl"
    tdir.mkdir()
    (tdir / "coverage.md.j2").write_text(
        "custom {{ m.ev.workspace.model }} {{ m.verdict.status }}\n"
    )
    (tdir / "summary.md.j2").write_text("{{ m.dp_statement }}\n")
    out = tmp_path / "out"
    code, _, err = report(
        ["report", str(full), "--format", "md", "--templates", str(tdir), "--out", str(out)]
    )
    assert code == 0, err
    assert (out / "coverage.md").read_text() == "custom support-assistant passed\n"
    assert (out / "summary.md").read_text().startswith("Trained with DP-SGD: epsilon=8")
    (tdir / "evil.md.j2").write_text("{{ m.__class__.__init__.__globals__ }}\n")
    code, _, err = report(
        ["report", str(full), "--format", "md", "--templates", str(tdir), "--out", str(out)]
    )
    assert code == 2
    assert "refused by the sandbox" in err


def test_report_stays_light(full: Path, tmp_path: Path) -> None:
    heavy = (
        "torch",
        "transformers",
        "mlflow",
        "presidio_analyzer",
        "presidio_anonymizer",
        "spacy",
        "weasyprint",
        "opacus",
        "peft",
    )
    code = (
        "import sys\n"
        "from finetrail.cli import main\n"
        f"rc = main(['report', {str(full)!r}, '--out', {str(tmp_path / 'light')!r}])\n"
        f"bad = [m for m in {heavy!r} if m in sys.modules]\n"
        "print('RC', rc, 'HEAVY', bad)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert "RC 0 HEAVY []" in proc.stdout, proc.stdout + proc.stderr
