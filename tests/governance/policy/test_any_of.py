"""``any_of`` rules: the DP claim is tested by a verified mechanism audit OR a black-box ceiling
above the claim (the shipped packs), with both branches and the failing case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from finetrail.governance.evidence.gate import GateDecision, RuleOutcome
from finetrail.governance.gate.evaluate import evaluate
from finetrail.governance.policy.load import load_policy, shipped_policies
from finetrail.governance.policy.rules import Rule
from tests.support.workspaces import build_workspace

PACKS = {p.stem: p for p in shipped_policies()}
CASES = [("eu-ai-act-high-risk", "dp-mechanism-verified"), ("nist-ai-rmf", "dp-claim-tested")]
CONTROLS = {"nist_ai_rmf": ["MEASURE 2.7"]}


def _outcome(d: GateDecision, rule: str) -> RuleOutcome:
    return next(o for o in d.outcomes if o.rule == rule)


def _gate(root: Path, pack: str) -> GateDecision:
    from tests.support.trust import gate_only_trust

    trust = gate_only_trust(root.parent / f"{root.name}-trust")
    return evaluate(workspace=root, policy=load_policy(PACKS[pack]), trust=trust)


# training claims epsilon 3; the fixture's dp_audit has 7 single-copy canaries (ceiling near 0)
BRANCHES: list[tuple[str, dict[str, dict[str, Any]], str, str]] = [
    ("mechanism verified", {}, "pass", "alternative 1 of 2 holds"),
    (
        "black-box ceiling above the claim",
        {"mechanism": {"verdict": "not_run", "ran": False}, "probes.dp_audit": {"ceiling": 3.5}},
        "pass",
        "alternative 2 of 2 holds",
    ),
    (
        "neither: not audited, ceiling below the claim",
        {"mechanism": {"verdict": "not_run", "ran": False}},
        "fail",
        "none of 2 alternatives holds",
    ),
    (
        "neither: mechanism rejected",
        {"mechanism": {"verdict": "rejected"}},
        "fail",
        "none of 2 alternatives holds",
    ),
]


@pytest.mark.parametrize(("pack", "rule_id"), CASES)
@pytest.mark.parametrize(
    ("label", "override", "expected", "says"), BRANCHES, ids=[b[0] for b in BRANCHES]
)
def test_dp_claim_rule_branches(
    tmp_path: Path,
    use_contract_kinds: object,
    pack: str,
    rule_id: str,
    label: str,
    override: dict[str, dict[str, Any]],
    expected: str,
    says: str,
) -> None:
    root = build_workspace(tmp_path / "ws", override=override).root
    o = _outcome(_gate(root, pack), rule_id)
    assert o.outcome == expected, (label, o.message)
    assert o.message.startswith(says), o.message
    assert o.op == "any_of"
    if expected == "fail":
        # both alternatives are explained, each with its path
        assert "(1) mechanism.verdict: fail" in o.message
        assert "(2) probes.dp_audit.ceiling: fail" in o.message
        assert o.reason == "threshold"
        assert o.blocking


def test_rejected_mechanism_fails_even_with_a_high_ceiling(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    root = build_workspace(
        tmp_path / "ws",
        override={"mechanism": {"verdict": "rejected"}, "probes.dp_audit": {"ceiling": 3.5}},
    ).root
    d = _gate(root, "eu-ai-act-high-risk")
    assert _outcome(d, "dp-mechanism-verified").outcome == "pass"
    rejected = _outcome(d, "dp-mechanism-not-rejected")
    assert rejected.outcome == "fail" and not d.passed


def test_missing_evidence_on_every_branch_is_reported_as_missing(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    root = build_workspace(tmp_path / "ws", omit={"mechanism", "probes.dp_audit"}).root
    o = _outcome(_gate(root, "eu-ai-act-high-risk"), "dp-mechanism-verified")
    assert (o.outcome, o.reason) == ("fail", "missing")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"any_of": [{"path": "mechanism.verdict", "op": "==", "threshold": "verified"}]},
            "'any_of' needs at least two alternatives",
        ),
        (
            {
                "path": "mechanism.verdict",
                "op": "==",
                "threshold": "verified",
                "any_of": [
                    {"path": "mechanism.verdict", "op": "==", "threshold": "verified"},
                    {"path": "probes.dp_audit.ceiling", "op": ">", "threshold": 1.0},
                ],
            },
            "a rule with 'any_of' states its conditions there",
        ),
        ({}, "a rule needs 'path' and 'op' (or 'any_of')"),
        (
            {
                "any_of": [
                    {"path": "mechanism.verdict", "op": "=="},
                    {"path": "probes.dp_audit.ceiling", "op": ">", "threshold": 1.0},
                ]
            },
            "operator '==' needs exactly one of 'threshold' or 'ref'",
        ),
    ],
)
def test_any_of_shape_is_checked(fields: dict[str, Any], message: str) -> None:
    base = {
        "id": "r",
        "title": "a rule",
        "severity": "error",
        "controls": CONTROLS,
        "rationale": "because it matters",
    }
    with pytest.raises(ValidationError) as exc:
        Rule.model_validate({**base, **fields})
    assert message in str(exc.value)


def test_lint_checks_each_alternative(tmp_path: Path) -> None:
    from finetrail.errors import ConfigError

    text = (
        PACKS["nist-ai-rmf"]
        .read_text()
        .replace("path: probes.dp_audit.ceiling", "path: probes.dp_audit.no_such_field")
    )
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_policy(path)
    shown = exc.value.diagnostics()
    assert "no_such_field" in shown and "any_of" in shown, shown
