"""`finetrail gate --junit` validates against the JUnit XML schema CI servers read (junit-10.xsd).

The schema is vendored in tests/data (Gregory Boissinot's junit-10.xsd, MIT, the one Jenkins'
xUnit plugin uses); xmlschema is a real XSD 1.0 validator.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xmlschema

from finetrail.cli import main
from finetrail.governance.policy.load import shipped_policies
from tests.support.workspaces import build_workspace

DATA = Path(__file__).resolve().parents[2] / "data"
SCHEMA = xmlschema.XMLSchema10(str(DATA / "junit-10.xsd"))
HOSTILE = "x\x1b[31m<&>\"'\u202e\x07\x7f é "


@pytest.mark.parametrize(
    "override",
    [
        {},  # the honest workspace
        {"training": {"dp.epsilon": 12.0}, "probes.membership": {"max_auc": 0.71}},  # failures
    ],
    ids=["passing-evidence", "failing-evidence"],
)
@pytest.mark.parametrize("pack", sorted(p.stem for p in shipped_policies()))
def test_junit_is_valid_against_junit_10_xsd(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    use_contract_kinds: object,
    override: dict[str, dict[str, object]],
    pack: str,
) -> None:
    ws = build_workspace(tmp_path / "ws", override=override).root
    junit = tmp_path / "gate.xml"
    code = main(["gate", str(ws), "--policy", pack, "--junit", str(junit), "--dry-run"])
    capsys.readouterr()
    assert code in (0, 1)
    errors = list(SCHEMA.iter_errors(str(junit)))
    assert not errors, [str(e)[:300] for e in errors[:3]]


def test_junit_with_hostile_policy_strings_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], use_contract_kinds: object
) -> None:
    """Control bytes, markup and bidi characters in rule ids and descriptions still give a valid
    document (XML 1.0 cannot carry most C0 controls at all)."""
    import yaml

    eu = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")
    doc = yaml.safe_load(eu.read_text())
    for rule in doc["rules"][:3]:
        rule["title"] = HOSTILE + rule["title"]
        rule["rationale"] = HOSTILE + rule["rationale"]
    policy = tmp_path / "hostile.yaml"
    policy.write_text(yaml.safe_dump(doc, allow_unicode=False))  # control bytes as YAML escapes
    ws = build_workspace(tmp_path / "ws", override={"training": {"dp.epsilon": 12.0}}).root
    junit = tmp_path / "gate.xml"
    code = main(["gate", str(ws), "--policy", str(policy), "--junit", str(junit), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert not list(SCHEMA.iter_errors(str(junit)))
    assert "\x1b" not in junit.read_text()


def test_sarif_with_hostile_policy_strings_carries_no_control_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], use_contract_kinds: object
) -> None:
    import json

    import yaml

    eu = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")
    doc = yaml.safe_load(eu.read_text())
    for rule in doc["rules"]:
        rule["title"] = HOSTILE + rule["title"]
    policy = tmp_path / "hostile.yaml"
    policy.write_text(yaml.safe_dump(doc, allow_unicode=False))
    ws = build_workspace(tmp_path / "ws", override={"training": {"dp.epsilon": 12.0}}).root
    sarif = tmp_path / "gate.sarif"
    code = main(["gate", str(ws), "--policy", str(policy), "--sarif", str(sarif), "--dry-run"])
    capsys.readouterr()
    assert code == 1
    text = json.loads(sarif.read_text())
    flat = json.dumps(text, ensure_ascii=False)
    assert not any(ch in flat for ch in ("\x1b", "\x07", "\u202e"))
    assert "x" in flat and "The fine-tune ran to completion" in flat
