"""For every rule of every shipped policy: remove its evidence, and the gate fails that rule.

The evidence is written per docs/evidence-contract.md (gate_contract.py). A complete workspace
passes every rule of every shipped policy; then, for each rule, the kinds it reads (its path and
its ref) are left out one at a time and the rule must fail (``workspace`` evidence is removed by
deleting workspace.json; ``reviews`` by writing no reviews).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml

from finetrail.governance.evidence import paths as evpaths
from finetrail.governance.gate.evaluate import evaluate
from finetrail.governance.policy.load import load_policy, shipped_policies
from finetrail.governance.trust import load_trust
from tests.support.trust import trust_for
from tests.support.workspaces import (
    CONTRACT_NAMES,
    add_reviewers,
    approve,
    build_workspace,
)

POLICIES = {p.stem: p for p in shipped_policies()}
# The workspaces built here write unsigned entries (development mode); the rule over signed
# entries is tested on signed workspaces in tests/governance/test_forgery.py.
SIGNING_RULES = {"ledger-entries-signed"}
CASES = [
    (name, rule["id"])
    for name, path in sorted(POLICIES.items())
    for rule in yaml.safe_load(path.read_text())["rules"]
    if rule["id"] not in SIGNING_RULES
]


# A computed kind is removed by removing what it is computed from: training_data is computed from
# training.json (without dataset records it still exists, and says each set is unregistered).
COMPUTED_FROM = {"training_data": "training"}


def _kinds_read(rule_path: str, ref: str | None) -> list[str]:
    kinds = [evpaths.parse_path(rule_path).kind]
    if ref:
        kinds.append(evpaths.parse_path(ref).kind)
    return list(dict.fromkeys(COMPUTED_FROM.get(k, k) for k in kinds))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {"base": tmp_path_factory.mktemp("property")}


def _workspace(store: dict[str, Path], omit: str | None) -> Path:
    """A complete workspace with reviews, less the evidence of kind ``omit`` (built once per kind)."""
    key = omit or "full"
    if key in store:
        return store[key]
    # a fresh folder per attempt: a build that failed once must not leave a half workspace behind
    root = Path(tempfile.mkdtemp(prefix=key.replace(".", "_") + "-", dir=store["base"])) / "ws"
    omitted = set(key.split("+")) & set(CONTRACT_NAMES)  # "a+b": several kinds (any_of rules)
    built = build_workspace(root, omit=omitted)
    if omit != "reviews":
        keys = add_reviewers(root, root.parent / "keys")
        approve(root, keys)
    if omit == "workspace":
        (built.root / "workspace.json").unlink()
    store[key] = root
    return root


def test_complete_workspace_passes_every_rule(
    use_contract_kinds: object, store: dict[str, Path]
) -> None:
    root = _workspace(store, None)
    trust = load_trust(trust_for(root.parent / "keys", root.parent / "trust.yaml"))
    for name, path in POLICIES.items():
        d = evaluate(workspace=root, policy=load_policy(path), require_approvals=True, trust=trust)
        failing = [
            (o.rule, o.message)
            for o in d.outcomes
            if o.outcome != "pass" and o.rule not in SIGNING_RULES
        ]
        assert not failing, (name, failing)
        assert d.passed and d.approved


@pytest.mark.parametrize(("policy_name", "rule_id"), CASES, ids=[f"{p}:{r}" for p, r in CASES])
def test_removing_a_rules_evidence_fails_it(
    use_contract_kinds: object, store: dict[str, Path], policy_name: str, rule_id: str
) -> None:
    loaded = load_policy(POLICIES[policy_name])
    rule = next(r for r in loaded.policy.rules if r.id == rule_id)
    if rule.any_of:  # it fails only when every alternative lacks its evidence
        every = [k for b in rule.branches() for k in _kinds_read(b.path or "", b.ref)]
        kinds = ["+".join(dict.fromkeys(every))]
    else:
        kinds = _kinds_read(rule.path or "", rule.ref)
    for kind in kinds:
        root = _workspace(store, kind)
        d = evaluate(workspace=root, policy=loaded)
        outcome = next(o for o in d.outcomes if o.rule == rule_id)
        assert outcome.outcome in ("fail", "error"), (kind, outcome.message)
        assert outcome.reason in ("missing", "stale", "approvals", "threshold", "unparseable"), (
            outcome
        )
        if kind not in ("reviews",):
            # the message says what is absent, not merely that a value is wrong
            assert outcome.reason in ("missing", "stale"), (kind, outcome.reason, outcome.message)
        if rule.severity == "error":
            assert not d.passed


def test_every_shipped_rule_is_covered() -> None:
    assert len(CASES) == sum(
        1
        for p in POLICIES.values()
        for r in yaml.safe_load(p.read_text())["rules"]
        if r["id"] not in SIGNING_RULES
    )
    assert len(CASES) >= 40
