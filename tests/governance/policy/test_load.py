"""Policy files: structure, line and column in every error, lint against the evidence registry."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.errors import ConfigError
from finetrail.governance.policy.load import load_policy, shipped_policies

GOOD_RULE = """
  - id: {id}
    title: a rule
    path: {path}
    op: nonempty
    severity: error
    controls: {{eu_ai_act: ["Annex IV 1(a)"]}}
    rationale: because it matters
"""
HEAD = """\
id: test-policy
version: "1"
title: a test policy
written_against: {eu_ai_act: "2024/1689"}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def lint(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code = main(["policy", "lint", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_valid_policy_lints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, HEAD + "rules:" + GOOD_RULE.format(id="r1", path="workspace.model"))
    code, out = lint(capsys, p)
    assert code == 0, out
    assert "ok: policy test-policy 1: 1 rules" in out


# (name, yaml body, expected (line, column, message fragment)) -- table-driven
MALFORMED = [
    ("bad yaml", HEAD + "rules: [\n  - a\n", (6, 3, "malformed YAML at line 6, column 3")),
    ("tab indentation", HEAD + "rules:\n\t- id: x\n", (6, 1, "malformed YAML at line 6, column 1")),
    (
        "unknown operator",
        HEAD
        + "rules:"
        + GOOD_RULE.format(id="r1", path="workspace.model").replace(
            "op: nonempty", "op: lte\n    threshold: 1"
        ),
        (
            9,
            9,
            "rules[0].op: unknown operator 'lte'; allowed: <, <=, >, >=, ==, !=, in, not_in, strictly_between, present, nonempty",
        ),
    ),
    (
        "wrong type: severity",
        HEAD
        + "rules:"
        + GOOD_RULE.format(id="r1", path="workspace.model").replace(
            "severity: error", "severity: 3"
        ),
        (10, 15, "rules[0].severity: Input should be 'error' or 'warning'"),
    ),
    (
        "wrong type: threshold for <=",
        HEAD
        + "rules:"
        + GOOD_RULE.format(id="r1", path="workspace.model").replace(
            "op: nonempty", 'op: "<="\n    threshold: "abc"'
        ),
        (6, 5, "rules[0]: operator '<=' needs a finite number as threshold, got 'abc'"),
    ),
    (
        "wrong type: approvals count",
        HEAD + "approvals: {count: two, controls: {nist_ai_rmf: [GOVERN 2.1]}, "
        "rationale: four eyes see more}\nrules:"
        + GOOD_RULE.format(id="r1", path="workspace.model"),
        (5, 20, "approvals.count: Input should be a valid integer"),
    ),
    (
        "unknown key",
        HEAD + "rules:" + GOOD_RULE.format(id="r1", path="workspace.model") + "    treshold: 3\n",
        (13, 5, "rules[0].treshold: unknown field (not allowed here)"),
    ),
    (
        "unknown top-level key",
        HEAD + "rule: []\nrules:" + GOOD_RULE.format(id="r1", path="workspace.model"),
        (5, 1, "rule: unknown field (not allowed here)"),
    ),
    (
        "missing field",
        HEAD
        + "rules:"
        + GOOD_RULE.format(id="r1", path="workspace.model").replace(
            "    rationale: because it matters\n", ""
        ),
        (6, 5, "rules[0].rationale: required field is missing"),
    ),
    (
        "empty rules",
        HEAD + "rules: []\n",
        (5, 8, "rules: empty policy: a policy needs at least one rule"),
    ),
    (
        "duplicate rule ids",
        HEAD
        + "rules:"
        + GOOD_RULE.format(id="r1", path="workspace.model")
        + GOOD_RULE.format(id="r1", path="workspace.owner").lstrip("\n"),
        (13, 9, "rules[1].id: duplicate rule id 'r1' (first defined at line 6)"),
    ),
    (
        "duplicate yaml key",
        HEAD + "id: again\nrules:" + GOOD_RULE.format(id="r1", path="workspace.model"),
        (5, 1, "id: duplicate key (first at line 1)"),
    ),
    (
        "unknown evidence field",
        HEAD + "rules:" + GOOD_RULE.format(id="r1", path="workspace.modle"),
        (
            8,
            11,
            "rules[0].path: unknown evidence path 'workspace.modle': workspace has no field 'modle'",
        ),
    ),
    (
        "unknown evidence kind",
        HEAD + "rules:" + GOOD_RULE.format(id="r1", path="nosuchkind.value"),
        (8, 11, "unknown evidence kind in 'nosuchkind.value' (known kinds:"),
    ),
    (
        "path past a scalar",
        HEAD + "rules:" + GOOD_RULE.format(id="r1", path="workspace.model.name"),
        (8, 11, "workspace.model is a string value: .name goes past its end"),
    ),
    (
        "list kind without index",
        HEAD + "rules:" + GOOD_RULE.format(id="r1", path="gate.passed"),
        (8, 11, "'gate' is a list of records: write gate[*] (every record) or gate[N]"),
    ),
    (
        "ordering on a string",
        HEAD
        + "rules:"
        + GOOD_RULE.format(id="r1", path="workspace.model").replace(
            "op: nonempty", 'op: "<"\n    threshold: 3'
        ),
        (
            9,
            9,
            "rules[0].op: operator '<' compares numbers, but workspace.model holds string values",
        ),
    ),
    (
        "unknown control",
        HEAD
        + "rules:"
        + GOOD_RULE.format(id="r1", path="workspace.model").replace(
            "Annex IV 1(a)", "Annex IV 12(z)"
        ),
        (11, 27, "unknown EU AI Act Annex IV item '12(z)'"),
    ),
    (
        "unknown NIST id",
        HEAD
        + "rules:"
        + GOOD_RULE.format(id="r1", path="workspace.model").replace(
            'eu_ai_act: ["Annex IV 1(a)"]', 'nist_ai_rmf: ["MEASURE 9.9"]'
        ),
        (11, 29, "unknown NIST AI RMF subcategory 'MEASURE 9.9'"),
    ),
    (
        "waiver for unknown rule",
        HEAD + "waivers:\n  - {rule: nope, justification: known deviation, "
        "approver: bob, expires: 2030-01-01}\nrules:"
        + GOOD_RULE.format(id="r1", path="workspace.model"),
        (6, 12, "waivers[0].rule: waiver names no rule of this policy: 'nope'"),
    ),
    (
        "unknown required evidence",
        HEAD
        + "required_evidence: [trainign]\nrules:"
        + GOOD_RULE.format(id="r1", path="workspace.model"),
        (5, 21, "unknown evidence kind 'trainign'"),
    ),
    (
        "reserved rule id",
        HEAD + "rules:" + GOOD_RULE.format(id="approvals", path="workspace.model"),
        (6, 5, "rule id 'approvals' is reserved"),
    ),
    ("not a mapping", "- just\n- a list\n", (1, 1, "a policy must be a mapping of fields")),
]


@pytest.mark.parametrize(("name", "body", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_policy_exit_2_with_line_and_column(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    body: str,
    expected: tuple[int, int, str],
) -> None:
    p = write(tmp_path, body)
    code, out = lint(capsys, p)
    line, col, fragment = expected
    assert code == 2, out
    assert "Traceback" not in out
    assert str(p) in out
    assert fragment in out, out
    if not fragment.startswith("malformed YAML"):
        assert f"line {line}, column {col}: " in out, out
        # every problem line carries a position
        problems = [
            x
            for x in out.splitlines()
            if x.startswith("  ") and not x.startswith(("  fix", "  why"))
        ]
        assert problems and all(re.match(r"^  line \d+, column \d+: ", x) for x in problems), out


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = lint(capsys, write(tmp_path, ""))
    assert code == 2
    assert "empty policy at line 1, column 1" in out


def test_non_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "p.yaml"
    p.write_bytes(HEAD.encode() + b"rules: \xff\n")
    code, out = lint(capsys, p)
    assert code == 2
    assert "not valid UTF-8" in out and "line 5" in out


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    body = (
        HEAD
        + "rules:"
        + GOOD_RULE.format(id="r1", path="workspace.model").replace(
            "op: nonempty", "op: lte\n    threshold: 1"
        )
        + "    extra: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_policy(write(tmp_path, body))
    assert info.value.what.count("line ") == 2


def test_missing_policy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["policy", "lint", str(tmp_path / "nope.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "policy file not found" in err and "eu-ai-act-high-risk" in err


def test_shipped_policies_exist() -> None:
    names = {p.stem for p in shipped_policies()}
    assert {"eu-ai-act-high-risk", "nist-ai-rmf", "development"} <= names


@pytest.mark.parametrize("name", ["eu-ai-act-high-risk", "nist-ai-rmf", "development"])
def test_shipped_policy_lints_against_the_real_registry(name: str) -> None:
    """Fails until the datasets, training, probes and bias record classes are registered."""
    loaded = load_policy(next(p for p in shipped_policies() if p.stem == name))
    assert loaded.policy.rules


@pytest.mark.parametrize("name", ["eu-ai-act-high-risk", "nist-ai-rmf", "development"])
def test_shipped_policy_lints_against_the_contract(name: str, use_contract_kinds: object) -> None:
    loaded = load_policy(next(p for p in shipped_policies() if p.stem == name))
    for rule in loaded.policy.rules:
        assert rule.controls.labels(), rule.id
        assert len(rule.rationale) >= 10


def test_controls_catalogue_matches_shared_reference() -> None:
    """The shipped control IDs are exactly those of shared/reference (when it is beside the repo)."""
    import json

    from finetrail.governance.policy.controls import control_catalogue

    ref = Path(__file__).resolve().parents[4] / "shared" / "reference"
    if not ref.is_dir():
        pytest.skip("shared/reference is not beside the repository")
    annex = {x["id"] for x in json.loads((ref / "eu_annex_iv.json").read_text())}
    nist = {x["id"] for x in json.loads((ref / "nist_ai_rmf_subcategories.json").read_text())}
    iso = set(re.findall(r"(A\.\d+\.\d+(?:\.\d+)?) ", (ref / "regulatory.md").read_text()))
    cat = control_catalogue()
    assert cat["annex_iv"] == annex
    assert cat["nist_ai_rmf"] == nist
    assert cat["iso_iec_42001"] <= iso and len(cat["iso_iec_42001"]) == 38
