"""The verdict layout: what the banner, the rule table, the model card and the charts say when a
gate passed with warnings, a sign-off is missing, or a figure did not change; report file modes."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import html
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from finetrail.governance.workspace import Workspace
from finetrail.reports import charts
from finetrail.reports.charts_fairness import fairness_panels
from finetrail.reports.loader import Evidence, load_evidence
from tests.support.evidence import gate_decision, write_records
from tests.support.sample_release import ACTOR, build_fixed, report

ADAPTER_A = hashlib.sha256(b"adapter-a").hexdigest()  # the adapter build() records for variant a
PASS = {"outcome": "pass", "severity": "error"}


def _rule(rule: str, path: str, value: Any, message: str, **kw: Any) -> dict[str, Any]:
    return {"rule": rule, "path": path, "value": value, "message": message, **PASS, **kw}


def _gated(root: Path, outcomes: list[dict[str, Any]], approvals: dict[str, Any]) -> Path:
    """The sample release without its gate and reviews, and then this gate decision."""
    build_fixed(root, kinds=("datasets", "training", "probes", "bias"))
    ws = Workspace.open(root)
    decision = gate_decision(
        adapter_sha256=ADAPTER_A,
        policy_id="eu-ai-act-high-risk",
        outcomes=outcomes,
        changes={"approvals": approvals},
    )
    write_records(ws, {"evidence/gate/0001.json": decision}, actor=ACTOR)
    return root


WARNED = [
    _rule(
        "approvals",
        "reviews",
        0,
        "no current approval (1 needed)",
        title="1 current signed approval(s)",
        outcome="fail",
        severity="warning",
        reason="approvals",
    ),
    _rule("dp-epsilon-max", "training.dp.epsilon", 8.0, "training.dp.epsilon = 8; required <= 8"),
    _rule(
        "bias-dpd-ci-max",
        "bias.disparities.demographic_parity_difference.ci_high",
        0.08,
        "ci_high = 0.08; recommended <= 0.05",
        outcome="fail",
        severity="warning",
        op="<=",
        threshold=0.05,
    ),
]


@pytest.fixture(scope="module")
def warned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _gated(
        tmp_path_factory.mktemp("layout") / "ws",
        WARNED,
        {"required": True, "satisfied": False, "problems": ["no current approval (1 needed)"]},
    )
    code, _, err = report(["report", str(root), "--format", "html,md"])
    assert code == 0, err
    return root / "dossier"


def _banner(html: str) -> str:
    m = re.search(r'<div class="verdict ([a-z]+)" data-verdict="([^"]+)".*?</div>', html, re.S)
    assert m, "no verdict banner"
    return m.group(0)


def test_a_pass_with_warnings_and_a_missing_sign_off_is_not_a_green_banner(warned: Path) -> None:
    html = (warned / "index.html").read_text()
    banner = _banner(html)
    assert banner.startswith('<div class="verdict warn" data-verdict="passed"')
    assert "The release gate passed with 2 warnings (policy eu-ai-act-high-risk" in banner
    assert 'data-signoff="missing"' in banner
    assert "Sign-off missing: 1 required, 0 present, 1 missing" in banner
    assert "no current approval (1 needed)" in banner


def test_the_warnings_are_listed_before_the_rule_table(warned: Path) -> None:
    html = (warned / "index.html").read_text()
    section = html[html.index('<section id="verdict">') : html.index("</section>")]
    listed = section.index("Warnings (2)")
    table = section.index('<table class="fixed rules">')
    assert listed < table
    assert section.index("approvals</span>", listed) < table
    assert section.index("bias-dpd-ci-max</span>", listed) < table


def test_the_rule_table_has_a_severity_column_and_lists_worst_first(warned: Path) -> None:
    html = (warned / "index.html").read_text()
    head = re.search(r'<table class="fixed rules">.*?</thead>', html, re.S)
    assert head and "<th>Severity</th>" in head.group(0)
    rows = re.findall(
        r'<tr><td class="mono">([^<]+)</td><td class="sev">([^<]+)</td><td>(.*?)</td>', html
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("approvals", "warning"),
        ("bias-dpd-ci-max", "warning"),
        ("dp-epsilon-max", "blocking"),
    ]
    assert ">warn</span>" in rows[0][2] and ">pass</span>" in rows[2][2]


def test_the_model_card_gate_line_states_the_sign_off(warned: Path) -> None:
    card = (warned / "README.md").read_text()
    summary = card[card.index("#### Summary") : card.index("## Environmental Impact")]
    assert "The release gate passed with 2 warnings" in summary
    assert (
        "Sign-off missing: 1 required, 0 present, 1 missing; no current approval (1 needed)."
        in (summary)
    )
    assert "- approvals: no current approval (1 needed)" in summary
    assert "- bias-dpd-ci-max: ci\\_high" not in summary  # no stray escaping of plain text
    assert "- bias-dpd-ci-max: ci_high = 0.08; recommended <= 0.05" in summary.replace("&lt;", "<")


def test_a_clean_pass_with_its_sign_off_is_green(tmp_path: Path) -> None:
    root = _gated(
        tmp_path / "ws",
        [
            _rule(
                "approvals",
                "reviews",
                1,
                "approved by dpo (privacy)",
                title="1 current signed approval(s)",
                reason="ok",
            ),
            _rule("dp-epsilon-max", "training.dp.epsilon", 8.0, "training.dp.epsilon = 8"),
        ],
        {"required": True, "satisfied": True, "approvers": ["dpo (privacy)"]},
    )
    code, _, err = report(["report", str(root), "--format", "html,md"])
    assert code == 0, err
    banner = _banner((root / "dossier" / "index.html").read_text())
    assert banner.startswith('<div class="verdict ok" data-verdict="passed"')
    assert "The release gate passed (policy eu-ai-act-high-risk)." in banner
    assert "Sign-off complete: 1 required, 1 present (dpo (privacy)), 0 missing" in banner
    card = (root / "dossier" / "README.md").read_text()
    assert "Sign-off complete: 1 required, 1 present (dpo (privacy)), 0 missing." in card


def test_a_blocked_gate_names_its_failures_and_counts_its_warnings(tmp_path: Path) -> None:
    outcomes = [
        *WARNED,
        _rule("mia-auc-max", "probes.membership.max_auc", 0.7, "0.7 > 0.6", outcome="fail"),
    ]
    root = _gated(tmp_path / "ws", outcomes, {"required": True, "satisfied": False})
    code, _, err = report(["report", str(root), "--format", "html"])
    assert code == 0, err
    banner = _banner((root / "dossier" / "index.html").read_text())
    assert banner.startswith('<div class="verdict bad" data-verdict="blocked"')
    assert "failed rules: mia-auc-max, and 2 warnings): release blocked." in banner


def test_report_files_are_0644(warned: Path) -> None:
    files = [p for p in warned.rglob("*") if p.is_file()]
    assert {"index.html", "README.md", "coverage.json"} <= {p.name for p in files}
    modes = {p.relative_to(warned).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes == dict.fromkeys(modes, 0o644)


def test_keys_stay_0600(tmp_path: Path) -> None:
    code, _, err = report(["keys", "generate", "--reviewer", "carol", "--out", str(tmp_path)])
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "carol.key").stat().st_mode) == 0o600


# -- charts ------------------------------------------------------------------------------------
LIMITS = [
    _rule("dp-epsilon-max", "training.dp.epsilon", 8.0, "eps", op="<=", threshold=8.0),
    _rule("canary-exposure-max", "probes.exposure.max_bits", 2.04, "exp", op="<=", threshold=10),
    _rule(
        "bias-eod-max",
        "bias.disparities.equalized_odds_difference.value",
        0.06,
        "eod",
        op="<=",
        threshold=0.1,
    ),
    _rule(
        "selection-rate-min",
        "bias.groups[*].selection_rate.value",
        [0.41],
        "rates",
        op=">=",
        threshold=0.2,
    ),
]


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    root = _gated(
        tmp_path_factory.mktemp("charts") / "ws", LIMITS, {"required": False, "satisfied": False}
    )
    return load_evidence(root)


def _text(svg: str | None) -> str:
    assert svg is not None
    return html.unescape(" ".join(re.findall(r">([^<>]+)<", svg)))


def _effects(ev: Evidence, effects: dict[str, tuple[float, float, float]]) -> Evidence:
    bias = copy.deepcopy(ev.bias)
    assert bias is not None
    bias["finetune_effect"] = {
        m: {"delta": d, "ci_low": lo, "ci_high": hi, "base": 0.1, "finetuned": 0.1 + d}
        for m, (d, lo, hi) in effects.items()
    }
    bias["disparities"]["demographic_parity_ratio"] = {
        "value": 0.9,
        "ci_low": 0.8,
        "ci_high": 0.97,
        "feature": "gender",
    }
    return dataclasses.replace(ev, bias=bias)


def test_a_zero_fine_tune_effect_reads_no_change(limited: Evidence) -> None:
    ev = _effects(
        limited,
        {
            "demographic_parity_difference": (1e-16, -2e-16, 3e-16),
            "equalized_odds_difference": (0.02, -0.01, 0.05),
        },
    )
    effect = next(p for p in fairness_panels(ev) if p.key == "effect")
    rows = {r.name: r for r in effect.rows}
    assert rows["demographic_parity_difference"].value is None
    assert rows["demographic_parity_difference"].note.startswith("no change")
    assert rows["equalized_odds_difference"].value == 0.02  # a real effect is a bar
    assert effect.span is not None and effect.span[1] == pytest.approx(0.05 * 1.15)
    text = _text(charts.bias_bars(ev))
    assert "no change (|delta| < 1e-09)" in text


def test_an_effect_alone_below_epsilon_is_not_stretched(limited: Evidence) -> None:
    ev = _effects(limited, {"demographic_parity_difference": (3e-17, 0.0, 0.0)})
    effect = next(p for p in fairness_panels(ev) if p.key == "effect")
    assert [r.value for r in effect.rows] == [None]
    assert effect.span == pytest.approx((-0.0575, 0.0575))


def test_differences_and_ratios_never_share_an_axis(limited: Evidence) -> None:
    panels = {p.key: p for p in fairness_panels(_effects(limited, {}))}
    diffs = [r.name for r in panels["differences"].rows]
    ratios = [r.name for r in panels["ratios"].rows]
    assert diffs and all(n.endswith("_difference") for n in diffs)
    assert ratios and all(n.endswith("_ratio") for n in ratios)
    assert (panels["differences"].reference, panels["ratios"].reference) == (0.0, 1.0)
    text = _text(charts.bias_bars(limited))
    assert "Differences between groups (0 is parity)" in text


def test_the_fairness_chart_shows_selection_rates_per_group(limited: Evidence) -> None:
    panel = next(p for p in fairness_panels(limited) if p.key == "groups.selection_rate")
    assert [r.name for r in panel.rows] == [
        "gender: female",
        "gender: male",
        "gender: nonbinary (too small)",
        "age_band: 18-29",
        "age_band: 50+",
    ]
    assert [r.muted for r in panel.rows] == [False, False, True, False, False]
    assert [lim.text for lim in panel.limits] == ["selection-rate-min >= 0.2"]
    assert "Selection rate per group" in _text(charts.bias_bars(limited))


def test_threshold_lines_come_from_the_policy(limited: Evidence) -> None:
    assert "policy: dp-epsilon-max <= 8" in _text(charts.epsilon_curve(limited))
    assert "policy: canary-exposure-max <= 10" in _text(charts.exposure(limited))
    bias = _text(charts.bias_bars(limited))
    assert "bias-eod-max <= 0.1" in bias and "selection-rate-min >= 0.2" in bias
    eod = next(p for p in fairness_panels(limited) if p.key == "differences").rows
    assert [lim.text for r in eod for lim in r.limits] == ["bias-eod-max <= 0.1"]


def test_exposure_shows_the_never_inserted_controls(limited: Evidence) -> None:
    text = _text(charts.exposure(limited))
    assert "controls, never inserted (mean, max)" in text
    assert "inserted" in text and "(n=" in text


def test_no_gate_no_limits(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    build_fixed(root, kinds=("datasets", "training", "probes", "bias"))
    ev = load_evidence(root)
    for svg in (charts.epsilon_curve(ev), charts.exposure(ev), charts.bias_bars(ev)):
        assert "policy:" not in _text(svg)


def test_the_lineage_gate_box_counts_the_warnings(warned: Path) -> None:
    ev = load_evidence(warned.parent)
    assert "2 warnings" in _text(charts.lineage(ev))


def test_a_hostile_warning_reaches_the_model_card_inert(tmp_path: Path) -> None:
    hostile = "evil\x1b[31m\u202e <script>x</script>\n# not a heading | [l](javascript:1)"
    outcomes = [
        _rule("warn-1", "training.dp.epsilon", 8.0, hostile, outcome="fail", severity="warning")
    ]
    root = _gated(tmp_path / "ws", outcomes, {"required": False, "satisfied": False})
    code, _, err = report(["report", str(root), "--format", "html,md"])
    assert code == 0, err
    card = (root / "dossier" / "README.md").read_text()
    line = next(x for x in card.splitlines() if x.startswith("- warn-1: "))
    assert "\x1b" not in card and "\u202e" not in card
    assert "<script>" not in card and "[l](javascript" not in card  # brackets escaped: no link
    assert "# not a heading" in line  # kept on the warning's own line, not a heading
    html_text = (root / "dossier" / "index.html").read_text()
    assert "<script>x" not in html_text and "\x1b" not in html_text


def test_a_failed_integrity_check_still_states_the_recorded_sign_off(warned: Path) -> None:
    from finetrail.reports.loader import IntegrityStatus
    from finetrail.reports.model import verdict

    ev = load_evidence(warned.parent)
    broken = dataclasses.replace(
        ev,
        integrity=IntegrityStatus(
            ok=False, entries=1, files=1, findings=({"severity": "error", "code": "x"},)
        ),
    )
    v = verdict(broken)
    assert (v.status, v.css) == ("integrity failed", "bad")
    assert v.signoff.startswith("sign-off missing: 1 required, 0 present, 1 missing")
