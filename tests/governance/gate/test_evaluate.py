"""Gate evaluation: outcomes, reasons, fail-closed behaviour and waivers."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from finetrail.errors import ConfigError
from finetrail.governance.evidence.gate import GateDecision, RuleOutcome
from finetrail.governance.gate.evaluate import evaluate
from finetrail.governance.io import canonical_json
from finetrail.governance.policy.load import load_policy, shipped_policies
from finetrail.governance.workspace import Workspace
from tests.support.clock import set_release_clock
from tests.support.workspaces import build_workspace

EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")


def outcome(d: GateDecision, rule: str) -> RuleOutcome:
    return next(o for o in d.outcomes if o.rule == rule)


def gate(root: Path, policy: Path = EU, **kw: object) -> GateDecision:
    """The gate with a trust root beside (outside) the workspace, unless ``trust`` is given."""
    if "trust" not in kw:
        from tests.support.trust import gate_only_trust

        kw["trust"] = gate_only_trust(root.parent / f"{root.name}-trust")
    return evaluate(workspace=root, policy=load_policy(policy), **kw)  # type: ignore[arg-type]


def test_complete_workspace_passes(tmp_path: Path, use_contract_kinds: object) -> None:
    b = build_workspace(tmp_path / "ws")
    d = gate(b.root)
    assert d.passed and not d.approved  # no reviews yet
    eps = outcome(d, "dp-epsilon-max")
    assert (eps.outcome, eps.reason) == ("pass", "ok")
    assert [m.value for m in eps.measured] == [3.0]
    assert eps.threshold == 8.0 and eps.op == "<="
    assert [e.path for e in eps.evidence] == ["evidence/training.json"]
    assert eps.evidence[0].sha256 == d.evidence["evidence/training.json"]
    assert eps.controls["nist_ai_rmf"] == ("MEASURE 2.10", "MAP 1.5")
    assert eps.policy_line is not None
    assert EU.read_text().splitlines()[eps.policy_line - 1].strip() == "- id: dp-epsilon-max"
    assert d.subject.adapter_sha256 == b.adapter_sha
    # approvals only: the fixture signs every ledger entry with keys the trust file names
    assert d.counts["fail"] == 1 and outcome(d, "approvals").outcome == "fail"
    assert outcome(d, "ledger-entries-signed").outcome == "pass"


@pytest.mark.parametrize(
    ("override", "rule", "reason", "fragment"),
    [
        (
            {"training": {"dp.epsilon": 12.0}},
            "dp-epsilon-max",
            "threshold",
            "training.dp.epsilon = 12; required <= 8",
        ),
        (
            {"training": {"dp.epsilon": None, "dp.epsilon_rdp": None, "dp.enabled": False}},
            "dp-epsilon-max",
            "null",
            "training.dp.epsilon = null; required <= 8",
        ),
        (
            {"training": {"dp.delta": 2e-3}},
            "dp-delta-below-one-over-n",
            "threshold",
            "required < reciprocal(datasets[*].records) (0.001, 0.001)",
        ),
        (
            {"probes.dp_audit": {"empirical_epsilon_lower_bound": 3.5}},
            "dp-audit-below-claim",
            "threshold",
            "probes.dp_audit.empirical_epsilon_lower_bound = 3.5; required <= training.dp.epsilon (3)",
        ),
        (
            {"probes.extraction": {"memorized_identifiers": 2}},
            "no-memorized-identifiers",
            "threshold",
            "probes.extraction.memorized_identifiers = 2; required == 0",
        ),
        (
            {"bias": {"disparities.equalized_odds_difference.ci_high": 0.31}},
            "bias-equalized-odds",
            "threshold",
            "ci_high = 0.31; required <= 0.2",
        ),
        (
            {"datasets": {"pii.residual": {"EMAIL_ADDRESS": 1, "US_SSN": 2}}},
            "pii-residual-zero",
            "threshold",
            "datasets[0].pii.residual.EMAIL_ADDRESS = 1, datasets[0].pii.residual.US_SSN = 2; "
            "required == 0 (2 of 2 values fail)",
        ),
    ],
)
def test_failing_rule_reports_value_threshold_and_controls(
    tmp_path: Path,
    use_contract_kinds: object,
    override: dict[str, dict[str, object]],
    rule: str,
    reason: str,
    fragment: str,
) -> None:
    b = build_workspace(tmp_path / "ws", override=override)
    d = gate(b.root)
    o = outcome(d, rule)
    assert (o.outcome, o.reason) == ("fail", reason), o.message
    assert fragment in o.message, o.message
    assert o.evidence and all(e.sha256 for e in o.evidence)
    assert not d.passed


def test_where_filters_records(tmp_path: Path, use_contract_kinds: object) -> None:
    # the raw set's residual is null and it is not derived: the rule only reads the sanitised set
    b = build_workspace(tmp_path / "ok")
    o = outcome(gate(b.root), "pii-residual-zero")
    assert o.outcome == "pass" and len(o.measured) == 1
    assert o.measured[0].pointer == "datasets[0].pii.residual.US_SSN"
    b = build_workspace(tmp_path / "bad", override={"datasets": {"pii.residual": {"US_SSN": 3}}})
    o = outcome(gate(b.root), "pii-residual-zero")
    assert o.outcome == "fail" and o.measured[0].value == 3
    b = build_workspace(
        tmp_path / "none", override={"datasets": {"derived_from": [], "transform": None}}
    )
    o = outcome(gate(b.root), "pii-residual-zero")
    assert (o.outcome, o.reason) == ("fail", "missing")
    assert "satisfies the rule's 'where' condition" in o.message


def test_stale_evidence_fails(tmp_path: Path, use_contract_kinds: object) -> None:
    b = build_workspace(
        tmp_path / "ws", override={"probes.exposure": {"subject.adapter_sha256": "e" * 64}}
    )
    d = gate(b.root)
    o = outcome(d, "canary-exposure-max")
    assert (o.outcome, o.reason) == ("fail", "stale")
    assert "was computed from adapter eeeeeeeeeeee" in o.message
    assert outcome(d, "evidence.probes.exposure").reason == "stale"
    assert d.integrity.ok and not d.passed


def test_stale_when_training_is_missing(tmp_path: Path, use_contract_kinds: object) -> None:
    b = build_workspace(tmp_path / "ws", omit={"training"})
    o = outcome(gate(b.root), "membership-auc-max")
    assert (o.outcome, o.reason) == ("fail", "stale")
    assert "no training evidence says which adapter is current" in o.message


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"exchangeability.ok": False}, "threshold"), ({"exchangeability": None}, "missing")],
    ids=["held-out-differs", "not-checked"],
)
def test_membership_figures_from_an_incomparable_held_out_set_fail(
    tmp_path: Path, use_contract_kinds: object, change: dict[str, object], reason: str
) -> None:
    b = build_workspace(tmp_path / "ws", override={"probes.membership": change})
    d = gate(b.root)
    o = outcome(d, "membership-heldout-comparable")
    assert o.outcome == "fail" and not d.passed
    assert o.reason == reason, o
    assert outcome(d, "membership-auc-max").outcome == "pass"  # the AUC alone would have passed


def test_tampered_evidence_fails_rule_and_integrity(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    b = build_workspace(tmp_path / "ws")
    path = b.root / "evidence/probes/membership.json"
    data = json.loads(path.read_text())
    data["max_auc"] = 0.5
    path.write_bytes(canonical_json(data))
    d = gate(b.root)
    assert outcome(d, "workspace-integrity").outcome == "fail"
    assert "evidence/probes/membership.json" in outcome(d, "workspace-integrity").message
    o = outcome(d, "membership-auc-max")
    assert (o.outcome, o.reason) == ("fail", "tampered")
    assert not d.passed and not d.integrity.ok


def test_unparseable_evidence_is_an_error(tmp_path: Path, use_contract_kinds: object) -> None:
    b = build_workspace(tmp_path / "ws")
    (b.root / "evidence/bias.json").write_text("{not json")
    d = gate(b.root)
    o = outcome(d, "bias-equalized-odds")
    assert (o.outcome, o.reason) == ("error", "unparseable")
    assert "malformed JSON at line 1" in o.message
    assert outcome(d, "evidence.bias").outcome == "error"
    assert not d.passed


def test_a_workspace_verify_rejects_fails_the_gate(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    b = build_workspace(tmp_path / "ws")
    (b.root / "evidence/untracked.json").write_text("{}\n")
    d = gate(b.root)
    assert not d.passed
    o = outcome(d, "workspace-integrity")
    assert o.outcome == "fail" and "not listed in the manifest" in o.message
    # every evidence rule still passes: the failure is integrity alone
    assert all(x.outcome == "pass" for x in d.outcomes if x.rule.startswith("dp-"))


def test_type_mismatch_is_an_error(tmp_path: Path, use_contract_kinds: object) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        textwrap.dedent("""\
        id: types
        version: "1"
        title: type errors
        written_against: {eu_ai_act: "2024/1689"}
        rules:
          - id: membership-attack-auc
            title: every attack's AUC
            path: probes.membership.attacks[*]
            op: "<="
            threshold: 0.6
            severity: error
            controls: {eu_ai_act: ["Art. 15(5)"]}
            rationale: a rule written over objects by mistake
    """)
    )
    b = build_workspace(tmp_path / "ws")
    with pytest.raises(
        ConfigError,
        match="operator '<=' compares numbers, but "
        r"probes.membership.attacks\[\*\] holds object values",
    ):
        load_policy(policy)
    # evaluated anyway (lint off), the comparison is an error, not a pass or a fail
    d = evaluate(workspace=b.root, policy=load_policy(policy, lint=False))
    o = outcome(d, "membership-attack-auc")
    assert (o.outcome, o.reason) == ("error", "type")
    assert "expected a finite number, found" in o.message
    assert not d.passed


@pytest.mark.parametrize(
    ("kind", "change", "rule", "field"),
    [
        ("datasets", {"license": ""}, "dataset-licence", "license"),
        ("training", {"dp": {"accountant": "gdp"}}, "dp-accountant-stated", "dp.accountant"),
        ("datasets", {"records": 0}, "dp-delta-below-one-over-n", "records"),
    ],
)
def test_evidence_its_class_rejects_is_an_error(
    tmp_path: Path,
    use_contract_kinds: object,
    kind: str,
    change: dict[str, object],
    rule: str,
    field: str,
) -> None:
    """A recorded file the record class rejects (empty licence, GDP accountant, no records)
    fails its rules as unparseable, naming the field: the gate never reads unvalidated values."""
    b = build_workspace(tmp_path / "ws")
    ws = Workspace.open(b.root)
    for rel, k in b.files.items():
        if k == kind:
            data = json.loads((b.root / rel).read_text())
            for key, value in change.items():
                data[key] = {**data[key], **value} if isinstance(value, dict) else value
            ws.write_bytes(rel, canonical_json(data), event="edited", actor="alice")
    d = gate(b.root)
    integrity = outcome(d, "workspace-integrity")
    if kind == "datasets":  # verify validates dataset records too
        assert integrity.outcome == "fail" and "invalid" in integrity.message
    else:  # recorded properly, and still invalid
        assert integrity.outcome == "pass"
    o = outcome(d, rule)
    assert (o.outcome, o.reason) == ("error", "unparseable"), o.message
    assert f"field '{field}'" in o.message or f"{field}:" in o.message, o.message
    assert outcome(d, f"evidence.{kind}").outcome == "error"
    assert not d.passed


def test_reciprocal_of_zero_is_an_error(tmp_path: Path, use_contract_kinds: object) -> None:
    # no extracted identifier: a count that is validly 0, used as a reciprocal reference
    policy = tmp_path / "p.yaml"
    policy.write_text(
        textwrap.dedent("""\
        id: reciprocal
        version: "1"
        title: reciprocal of zero
        written_against: {eu_ai_act: "2024/1689"}
        rules:
          - id: delta-below-one-over-memorized
            title: delta against a count that is zero
            path: training.dp.delta
            op: "<"
            ref: probes.extraction.memorized_identifiers
            ref_transform: reciprocal
            severity: error
            controls: {eu_ai_act: ["Art. 10(5)(b)"]}
            rationale: a reference count of zero has no reciprocal
    """)
    )
    b = build_workspace(tmp_path / "ws")
    o = outcome(gate(b.root, policy), "delta-below-one-over-memorized")
    assert (o.outcome, o.reason) == ("error", "type")
    assert "= 0 has no reciprocal" in o.message


WAIVED = """\
waivers:
  - rule: dp-epsilon-max
    justification: pilot with synthetic data only; re-run with eps 8 scheduled
    approver: dpo@example.org
    expires: {expires}
"""


def _with_waiver(tmp_path: Path, expires: str) -> Path:
    text = EU.read_text().replace("waivers: []\n", WAIVED.format(expires=expires))
    p = tmp_path / "waived.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("today", "expected"),
    [("2026-06-01", "waived"), ("2026-07-01", "waived"), ("2026-07-02", "fail")],
)
def test_waiver_applies_until_expiry(
    tmp_path: Path,
    use_contract_kinds: object,
    monkeypatch: pytest.MonkeyPatch,
    today: str,
    expected: str,
) -> None:
    set_release_clock(monkeypatch, f"{today}T12:00:00+00:00")
    b = build_workspace(tmp_path / "ws", override={"training": {"dp.epsilon": 9.5}})
    d = gate(b.root, _with_waiver(tmp_path, "2026-07-01"))
    o = outcome(d, "dp-epsilon-max")
    assert o.outcome == expected
    assert o.waiver is not None and o.waiver.applied is (expected == "waived")
    if expected == "fail":
        assert o.waiver.note == "expired on 2026-07-01; not applied"
        assert not d.passed
    else:
        assert d.passed
        assert o.waiver.note == "waived by dpo@example.org until 2026-07-01"


def test_stale_evidence_cannot_be_waived(
    tmp_path: Path, use_contract_kinds: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_release_clock(monkeypatch, "2026-06-01T00:00:00+00:00")
    b = build_workspace(tmp_path / "ws", override={"training": {"dp.epsilon": 9.5}})
    (b.root / "evidence/training.json").write_bytes(
        (b.root / "evidence/training.json").read_bytes().replace(b'"epsilon":9.5', b'"epsilon":9.6')
    )
    o = outcome(gate(b.root, _with_waiver(tmp_path, "2027-01-01")), "dp-epsilon-max")
    assert (o.outcome, o.reason) == ("fail", "tampered")
    assert o.waiver is not None and not o.waiver.applied
    assert o.waiver.note == "not applied: tampered evidence cannot be waived"


def test_warning_rules_do_not_fail_the_gate(tmp_path: Path, use_contract_kinds: object) -> None:
    b = build_workspace(
        tmp_path / "ws", override={"training": {"eu_ai_act.substantial_modification": True}}
    )
    d = gate(b.root)
    o = outcome(d, "not-substantial-modification")
    assert (o.outcome, o.severity) == ("fail", "warning")
    assert d.passed


@pytest.mark.parametrize("variable", ["FINETRAIL_FIXED_TIME", "SOURCE_DATE_EPOCH"])
def test_the_environment_cannot_revive_an_expired_waiver(
    tmp_path: Path, use_contract_kinds: object, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    set_release_clock(monkeypatch, "2026-08-01T12:00:00+00:00")  # after the waiver's expiry
    monkeypatch.setenv(
        variable, "1767225600" if variable == "SOURCE_DATE_EPOCH" else "2026-01-01T00:00:00+00:00"
    )
    b = build_workspace(tmp_path / "ws", override={"training": {"dp.epsilon": 9.5}})
    d = gate(b.root, _with_waiver(tmp_path, "2026-07-01"))
    o = outcome(d, "dp-epsilon-max")
    assert o.outcome == "fail" and not d.passed
    assert o.waiver is not None and o.waiver.note == "expired on 2026-07-01; not applied"


def _groups(tmp_path: Path, **changes: dict[str, object]) -> list[dict[str, object]]:
    """The standard bias record's groups, with per-group changes (by group name)."""
    ref = tmp_path / "ref"
    if not ref.exists():
        build_workspace(ref)
    groups = json.loads((ref / "evidence/bias.json").read_text())["groups"]
    for g in groups:
        for key, value in changes.get(g["group"], {}).items():
            g[key] = value
    return list(groups)


@pytest.mark.parametrize(
    ("override", "rule", "fragment"),
    [
        # a model that answers "no" to everyone: F1 0, parity gap 0 [0, 0]
        ({"task.selection_rate": 0.0}, "task-predictions-not-constant", "= 0"),
        ({"task.selection_rate": 1.0}, "task-predictions-not-constant", "= 1"),
        ({"task.f1_ci": [0.2, 0.45]}, "task-f1-min", "bias.task.f1_ci[0] = 0.2"),
        ({"task.f1_ci": [0.2, 0.45]}, "task-not-worse-than-base", "bias.base.task.f1"),
    ],
)
def test_a_useless_model_fails_the_high_risk_pack(
    tmp_path: Path,
    use_contract_kinds: object,
    override: dict[str, object],
    rule: str,
    fragment: str,
) -> None:
    honest = gate(build_workspace(tmp_path / "honest").root)
    assert outcome(honest, rule).outcome == "pass"
    d = gate(build_workspace(tmp_path / "ws", override={"bias": override}).root)
    o = outcome(d, rule)
    assert (o.outcome, o.reason, o.severity) == ("fail", "threshold", "error"), o.message
    assert fragment in o.message, o.message
    assert not d.passed


def test_constant_predictions_in_a_judged_group_fail_but_not_in_a_too_small_one(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    constant = {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    names = [g["group"] for g in _groups(tmp_path)]
    first = str(names[0])
    groups = _groups(tmp_path, **{first: {"selection_rate": constant}})
    d = gate(build_workspace(tmp_path / "judged", override={"bias": {"groups": groups}}).root)
    o = outcome(d, "group-predictions-not-constant")
    assert o.outcome == "fail" and "bias.groups[0].selection_rate.value = 1" in o.message
    # the same group marked too small to judge: it is filtered out by the rule's 'where'
    groups = _groups(tmp_path, **{first: {"selection_rate": constant, "too_small": True}})
    d = gate(build_workspace(tmp_path / "small", override={"bias": {"groups": groups}}).root)
    o = outcome(d, "group-predictions-not-constant")
    assert o.outcome == "pass", o.message
    assert [m.pointer for m in o.measured] == [
        f"bias.groups[{i}].selection_rate.value" for i in range(1, len(names))
    ]
    # every group too small: nothing to judge, and the rule says so (fail closed)
    groups = _groups(tmp_path, **{n: {"too_small": True} for n in map(str, names)})
    d = gate(build_workspace(tmp_path / "none", override={"bias": {"groups": groups}}).root)
    o = outcome(d, "group-predictions-not-constant")
    assert (o.outcome, o.reason) == ("fail", "missing") and "satisfies 'where'" in o.message


# -- rules over the data training used (the computed training_data kind) ----------------------
NIST = next(p for p in shipped_policies() if p.stem == "nist-ai-rmf")


def test_training_data_rules_pass_on_the_sanitised_set_training_read(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    from tests.support.evidence import CLEAN_SHA, RAW_SHA

    d = gate(build_workspace(tmp_path / "ws").root)
    clean = outcome(d, "training-data-pii-clean")
    assert clean.outcome == "pass", clean.message
    assert [m.pointer for m in clean.measured] == ["training_data.read_for_training[0].pii_state"]
    # the rule is judged on (and names) the files it is computed from
    named = {e.path for e in clean.evidence}
    assert "evidence/training.json" in named
    assert {f"evidence/datasets/{CLEAN_SHA}.json", f"evidence/datasets/{RAW_SHA}.json"} <= named
    lic = outcome(d, "training-data-licensed")
    assert lic.outcome == "pass" and len(lic.measured) == 2  # the set read and its raw parent


def test_training_on_the_raw_set_fails_although_a_sanitised_set_exists(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    """The decoy: a clean sanitised set is registered, but training read the raw notes."""
    from tests.support.evidence import RAW_SHA

    ws = build_workspace(tmp_path / "ws", override={"training": {"datasets.0.sha256": RAW_SHA}})
    d = gate(ws.root)
    assert outcome(d, "pii-residual-zero").outcome == "pass"  # what the old control looked at
    o = outcome(d, "training-data-pii-clean")
    assert (o.outcome, o.reason) == ("fail", "threshold"), o.message
    assert '"present"' in o.message
    assert not d.passed


def test_an_unregistered_training_file_fails_registration_and_is_unknown(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    from tests.support.evidence import sha

    other = sha("a file nobody registered")
    ws = build_workspace(tmp_path / "ws", override={"training": {"datasets.0.sha256": other}})
    d = gate(ws.root)
    assert outcome(d, "training-data-registered").outcome == "fail"
    assert '"unknown"' in outcome(d, "training-data-pii-clean").message
    n = gate(ws.root, NIST)
    assert outcome(n, "training-data-pii-scanned").outcome == "fail"


def test_an_unscanned_derived_set_inherits_its_parents_pii(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    from tests.support.evidence import CLEAN_SHA, RAW_SHA

    clean_file = f"evidence/datasets/{CLEAN_SHA}.json"
    raw_file = f"evidence/datasets/{RAW_SHA}.json"
    ws = build_workspace(tmp_path / "inherit", override={clean_file: {"pii": None}})
    d = gate(ws.root)
    assert '"present"' in outcome(d, "training-data-pii-clean").message
    assert outcome(gate(ws.root, NIST), "training-data-pii-scanned").outcome == "pass"
    # nothing in the lineage scanned: unknown, and both packs fail
    ws = build_workspace(
        tmp_path / "none", override={clean_file: {"pii": None}, raw_file: {"pii": None}}
    )
    assert '"unknown"' in outcome(gate(ws.root), "training-data-pii-clean").message
    assert outcome(gate(ws.root, NIST), "training-data-pii-scanned").outcome == "fail"


def test_an_ancestor_without_licence_fails_training_data_licensed(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    from tests.support.evidence import RAW_SHA

    raw_file = f"evidence/datasets/{RAW_SHA}.json"
    ws = build_workspace(tmp_path / "ws", override={raw_file: {"license": "NOASSERTION"}})
    o = outcome(gate(ws.root), "training-data-licensed")
    assert o.outcome == "fail" and "training_data.trained_on" in o.message, o.message


def test_unreadable_training_evidence_makes_training_data_rules_fail_closed(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    ws = build_workspace(tmp_path / "ws")
    (ws.root / "evidence/training.json").write_text("{not json")
    d = gate(ws.root)
    for rule in ("training-data-registered", "training-data-pii-clean", "training-data-licensed"):
        assert outcome(d, rule).outcome in ("fail", "error"), rule
