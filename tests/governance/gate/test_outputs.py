"""`finetrail gate` on the command line: exit codes, table, JSON, JUnit, SARIF, recorded decisions."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import junitparser
import pytest

from finetrail.cli import main
from finetrail.governance.ledger import scan_ledger
from finetrail.governance.policy.load import shipped_policies
from finetrail.governance.verify import verify_workspace
from tests.support.clock import set_release_clock
from tests.support.trust import trust_for
from tests.support.workspaces import build_workspace

DATA = Path(__file__).resolve().parents[2] / "data"
EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def failing(tmp_path: Path, use_contract_kinds: object) -> Path:
    return build_workspace(
        tmp_path / "ws",
        override={"training": {"dp.epsilon": 12.0}, "probes.membership": {"max_auc": 0.71}},
    ).root


def test_exit_0_on_pass_and_records_decision(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_workspace(tmp_path / "ws").root
    trust = trust_for(tmp_path / "keys", tmp_path / "trust.yaml", reviewers={})
    gate_key = str(tmp_path / "keys" / "ci-gate.key")
    signed = ("--trust", str(trust), "--signing-key", gate_key)
    # the gate signs its ledger entries with the gate key too, so that a second run passes
    code, out, err = run(
        capsys,
        "--ledger-key",
        gate_key,
        "gate",
        str(root),
        "--policy",
        "eu-ai-act-high-risk",
        *signed,
    )
    assert code == 0, out + err
    assert "gate: PASSED (" in out and "trust-root" in out
    assert "recorded: evidence/gate/0001.json and evidence/gate/0001.dsse.json (signed)" in out
    kinds = [e.kind for e in scan_ledger(root / "ledger.jsonl").entries]
    assert kinds[-2:] == ["gate.decided", "gate.attested"]
    report = verify_workspace(root, trust=trust)
    assert report.ok, report.render()
    # a second run is numbered on, and the first decision still verifies
    again = ("--ledger-key", gate_key, "gate", str(root), "--policy", "eu-ai-act-high-risk")
    assert run(capsys, *again, *signed)[0] == 0
    assert (root / "evidence/gate/0002.dsse.json").is_file()
    assert verify_workspace(root, trust=trust).ok


def test_release_policy_fails_closed_without_a_trust_root(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_workspace(tmp_path / "ws").root
    code, out, _ = run(capsys, "gate", str(root), "--policy", "eu-ai-act-high-risk")
    assert code == 1
    assert "gate: FAILED (" in out
    assert (
        "trust-root [fail, error]: signatures not checked against a trust root: pass --trust "
        "FILE (kept outside the workspace) or set FINETRAIL_TRUST; a policy that asks for "
        "signed approvals needs one" in out
    )
    assert "recorded: evidence/gate/0001.json and evidence/gate/0001.dsse.json (unsigned)" in out
    assert verify_workspace(root).ok  # an unsigned workspace: nothing to distrust
    # the development pack asks for no approvals: the missing trust root is a warning there
    code, out, _ = run(capsys, "gate", str(root), "--policy", "development", "--dry-run")
    assert code == 0 and "trust-root [fail, warning]" in out
    # with a trust root, the gate records only signed decisions
    trust = trust_for(tmp_path / "keys", tmp_path / "trust.yaml", reviewers={})
    code, _, err = run(capsys, "gate", str(root), "--policy", str(EU), "--trust", str(trust))
    assert code == 2 and "with a trust root, the gate records only signed decisions" in err
    assert "Traceback" not in err and not (root / "evidence/gate/0002.json").exists()


def test_exit_1_on_fail_with_readable_reasons(
    failing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "gate", str(failing), "--policy", str(EU))
    assert code == 1
    assert "gate: FAILED (" in out and "trust-root [fail, error]" in out
    assert "dp-epsilon-max [fail, error]: training.dp.epsilon = 12; required <= 8" in out
    assert (
        "controls: EU AI Act Art. 10(5)(b), Art. 15(5); NIST AI RMF MEASURE 2.10, MAP 1.5; "
        "ISO/IEC 42001 A.7.4" in out
    )
    assert (
        "membership-auc-max [fail, error]: probes.membership.max_auc = 0.71; required <= 0.6" in out
    )


def test_exit_2_on_bad_input(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_workspace(tmp_path / "ws").root
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nrules: [\n")
    code, _, err = run(capsys, "gate", str(root), "--policy", str(bad))
    assert code == 2 and "malformed YAML at line 3, column 1" in err and "Traceback" not in err
    code, _, err = run(capsys, "gate", str(tmp_path / "nowhere"), "--policy", str(EU))
    assert code == 2 and "workspace not found" in err
    code, _, err = run(capsys, "gate", str(root), "--policy", "no-such-policy")
    assert code == 2 and "policy file not found" in err
    code, _, err = run(capsys, "gate", str(root))
    assert code == 2 and "Missing option '--policy'" in err


def test_json_output(failing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "gate", str(failing), "--policy", str(EU), "--json", "--dry-run")
    assert code == 1
    data = json.loads(out)
    assert data["passed"] is False and data["policy_id"] == "eu-ai-act-high-risk"
    eps = next(o for o in data["outcomes"] if o["rule"] == "dp-epsilon-max")
    assert eps["measured"] == [{"pointer": "training.dp.epsilon", "value": 12.0}]
    assert eps["evidence"][0]["path"] == "evidence/training.json"
    assert not (failing / "evidence/gate").exists()  # --dry-run records nothing


def test_junit_parses_one_testcase_per_rule(
    tmp_path: Path,
    failing: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_release_clock(monkeypatch, "2026-06-01T00:00:00+00:00")
    policy = tmp_path / "waived.yaml"
    policy.write_text(
        EU.read_text().replace(
            "waivers: []\n",
            (
                "waivers:\n  - {rule: membership-auc-max, justification: attack re-run pending on the "
                "full eval set, approver: dpo, expires: 2026-12-31}\n"
            ),
        )
    )
    junit = tmp_path / "gate.xml"
    code, _, _ = run(capsys, "gate", str(failing), "--policy", str(policy), "--junit", str(junit))
    assert code == 1
    xml = junitparser.JUnitXml.fromfile(str(junit))
    suites = list(xml)
    assert len(suites) == 1
    cases = {c.name: c for c in suites[0]}
    data = json.loads((failing / "evidence/gate/0001.json").read_text())
    assert set(cases) == {o["rule"] for o in data["outcomes"]}
    assert len(cases) == len(data["outcomes"])
    eps = cases["dp-epsilon-max"]
    assert isinstance(eps.result[0], junitparser.Failure)
    assert "training.dp.epsilon = 12" in eps.result[0].message
    assert isinstance(cases["membership-auc-max"].result[0], junitparser.Skipped)
    assert cases["training-completed"].is_passed
    # error-severity failures are <failure>; failed warning-severity rules are <skipped> with the
    # reason (a passed gate stays green in CI), waived rules too
    warned = [
        o["rule"] for o in data["outcomes"] if o["outcome"] == "fail" and o["severity"] != "error"
    ]
    failed = [
        o["rule"] for o in data["outcomes"] if o["outcome"] == "fail" and o["severity"] == "error"
    ]
    assert failed and "dp-epsilon-max" in failed
    for rule in warned:
        assert isinstance(cases[rule].result[0], junitparser.Skipped)
        assert cases[rule].result[0].message.startswith("warning: ")
    assert suites[0].failures == len(failed) and suites[0].skipped == 1 + len(warned)
    # as many non-passing rules as before, the missing trust root, and the test's unsigned
    # (development-mode) ledger entries
    assert suites[0].failures + suites[0].skipped == 5 and "trust-root" in failed
    locations = {p.name: p.value for p in suites[0].properties()}
    assert locations["rule.dp-epsilon-max.location"].endswith(f"waived.yaml:{eps_line(data)}")


def eps_line(data: dict[str, object]) -> int:
    outcomes = data["outcomes"]
    assert isinstance(outcomes, list)
    return int(next(o for o in outcomes if o["rule"] == "dp-epsilon-max")["policy_line"] or 1)


def test_sarif_validates_against_the_2_1_0_schema(
    tmp_path: Path,
    failing: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(EU.parent.parent)  # the policy is under the working tree: relative URIs
    sarif_file = tmp_path / "gate.sarif"
    code, _, _ = run(capsys, "gate", str(failing), "--policy", str(EU), "--sarif", str(sarif_file))
    assert code == 1
    doc = json.loads(sarif_file.read_text())
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    errors = list(jsonschema.Draft4Validator(schema).iter_errors(doc))
    assert not errors, [e.message for e in errors[:5]]
    assert doc["version"] == "2.1.0" and len(doc["runs"]) == 1
    run_ = doc["runs"][0]
    rule_ids = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    data = json.loads(sorted((failing / "evidence/gate").glob("*[0-9].json"))[-1].read_text())
    not_passing = [o["rule"] for o in data["outcomes"] if o["outcome"] != "pass"]
    assert len(rule_ids) == len(set(rule_ids)) == len(data["outcomes"])
    # every rule is described; only rules that did not pass are results (alerts)
    assert [r["ruleId"] for r in run_["results"]] == not_passing
    lines = EU.read_text().splitlines()
    by_rule = {r["ruleId"]: r for r in run_["results"]}
    for rid in ("dp-epsilon-max", "membership-auc-max"):
        loc = by_rule[rid]["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == "policies/eu-ai-act-high-risk.yaml"
        assert lines[loc["region"]["startLine"] - 1].strip() == f"- id: {rid}"
    assert (
        by_rule["dp-epsilon-max"]["kind"] == "fail"
        and by_rule["dp-epsilon-max"]["level"] == "error"
    )
    assert "training-completed" in rule_ids and "training-completed" not in by_rule
    assert run_["invocations"][0]["exitCode"] == 1
    # stable ids: a second run over other evidence lists the same rules in the same order
    other = tmp_path / "again.sarif"
    run(capsys, "gate", str(failing), "--policy", str(EU), "--sarif", str(other), "--dry-run")
    again = json.loads(other.read_text())["runs"][0]
    assert [r["id"] for r in again["tool"]["driver"]["rules"]] == rule_ids
    assert [r["partialFingerprints"] for r in again["results"]] == [
        r["partialFingerprints"] for r in run_["results"]
    ]


def test_help_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ["gate"],
        ["policy", "lint"],
        ["review", "approve"],
        ["review", "reject"],
        ["review", "comment"],
        ["review", "status"],
        ["keys", "generate"],
        ["keys", "add"],
    ):
        code, out, _ = run(capsys, *args, "--help")
        assert code == 0 and "Usage: finetrail" in out
