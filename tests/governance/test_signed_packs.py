"""The shipped packs fail unsigned ledger entries: rule ``ledger-entries-signed`` is an error in
``eu-ai-act-high-risk`` and ``nist-ai-rmf`` (a warning in ``development``), judged under a trust
file outside the workspace; and ``finetrail --ledger-key FILE`` signs as ``$FINETRAIL_LEDGER_KEY``
does."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.governance import keys as ed25519
from finetrail.governance.evidence.gate import GateDecision, RuleOutcome
from finetrail.governance.gate.evaluate import evaluate
from finetrail.governance.ledger import Ledger
from finetrail.governance.policy.load import load_policy, shipped_policies
from finetrail.governance.trust import load_trust
from tests.support.trust import fixture_key, trust_for
from tests.support.workspaces import build_workspace, make_key

RULE = "ledger-entries-signed"
PACKS = {p.stem: p for p in shipped_policies()}


def _trust(root: Path) -> Path:
    folder = root.parent / f"{root.name}-trust"
    return trust_for(folder / "keys", folder / "trust.yaml", reviewers={})


def _gate(root: Path, pack: str = "eu-ai-act-high-risk") -> GateDecision:
    return evaluate(workspace=root, policy=load_policy(PACKS[pack]), trust=load_trust(_trust(root)))


def _rule(d: GateDecision) -> RuleOutcome:
    return next(o for o in d.outcomes if o.rule == RULE)


def _cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(args)
    return code, out.getvalue()


@pytest.mark.parametrize("pack", ["eu-ai-act-high-risk", "nist-ai-rmf"])
def test_the_rule_is_an_error_in_the_shipped_packs_and_a_warning_in_development(pack: str) -> None:
    rules = {r.id: r for r in load_policy(PACKS[pack]).policy.rules}
    assert rules[RULE].severity == "error"
    dev = {r.id: r for r in load_policy(PACKS["development"]).policy.rules}
    assert dev[RULE].severity == "warning"


def test_an_unsigned_workspace_fails_the_eu_gate_on_the_rule_naming_it(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    b = build_workspace(tmp_path / "ws", signed=False)
    entries = Ledger(b.root / "ledger.jsonl").entries()
    assert entries and not any(e.signature for e in entries)
    d = _gate(b.root)
    o = _rule(d)
    assert (o.severity, o.outcome) == ("error", "fail") and o.blocking
    assert not d.passed
    assert [x.rule for x in d.outcomes if x.blocking] == [RULE]
    assert o.measured and o.measured[0].value == len(entries)
    code, text = _cli(["gate", str(b.root), "--policy", "eu-ai-act-high-risk",
                       "--trust", str(_trust(b.root)), "--dry-run"])  # fmt: skip
    assert code == 1, text
    assert RULE in text


def test_a_signed_workspace_passes_the_rule_in_both_packs(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    b = build_workspace(tmp_path / "ws")
    entries = Ledger(b.root / "ledger.jsonl").entries()
    assert entries and all(e.signature and e.signer for e in entries)
    for pack in ("eu-ai-act-high-risk", "nist-ai-rmf"):
        d = _gate(b.root, pack)
        assert (_rule(d).outcome, _rule(d).reason) == ("pass", "ok"), pack
        assert d.passed, [x.message for x in d.outcomes if x.blocking]


@pytest.mark.parametrize("signer", ["unknown", "wrong-role"])
def test_entries_signed_by_a_key_the_trust_file_does_not_name_for_their_role_fail(
    tmp_path: Path, use_contract_kinds: object, signer: str
) -> None:
    # an unknown key, or the probe job's trusted key signing training entries
    key = ed25519.generate_key() if signer == "unknown" else fixture_key("probes")
    with ed25519.signing_with(key):
        b = build_workspace(tmp_path / "ws")
    d = _gate(b.root)
    o = _rule(d)
    assert (o.outcome, o.severity) == ("fail", "error")
    assert not d.passed and RULE in [x.rule for x in d.outcomes if x.blocking]
    code, text = _cli(["verify", str(b.root), "--trust", str(_trust(b.root))])
    assert code == 1
    assert ("untrusted" if signer == "unknown" else "wrong-role") in text


def test_ledger_key_option_signs_as_the_environment_variable_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ed25519.DEV_UNSIGNED_ENV, raising=False)
    monkeypatch.delenv(ed25519.LEDGER_KEY_ENV, raising=False)
    private, _ = make_key(tmp_path / "keys", "trainer")
    init = ["init", "--model", "m", "--version", "1", "--owner", "o", "--provider", "p",
            "--purpose", "x"]  # fmt: skip
    code, text = _cli([init[0], str(tmp_path / "refused"), *init[1:]])
    assert code == 2 and "unsigned" in text  # no key, no development mode: refused
    code, text = _cli(["--ledger-key", str(private), init[0], str(tmp_path / "ws"), *init[1:]])
    assert code == 0, text
    assert ed25519.LEDGER_KEY_ENV not in os.environ  # only for that command
    (entry,) = Ledger(tmp_path / "ws" / "ledger.jsonl").entries()
    expected = ed25519.keyid_of(ed25519.load_private_key(private).public_key())
    assert entry.signer == expected and entry.signature
    code, text = _cli(["--ledger-key", str(tmp_path / "missing.key"), "verify", str(tmp_path)])
    assert code == 2 and "key file not found" in text
