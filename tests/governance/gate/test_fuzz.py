"""Mutation fuzz: any byte flip in evidence, ledger, manifest, attestation or review entries is caught.

One workspace is built (contract evidence, three signed approvals, a comment, a signed gate decision
with its attestation); each mutation flips one byte (XOR with a random non-zero mask) at a random
offset of a target, checks that ``verify`` rejects the workspace and that the gate fails, and puts
the byte back. 1,000 mutations, spread over the five targets.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from finetrail.governance.gate.api import run_gate
from finetrail.governance.gate.evaluate import evaluate
from finetrail.governance.policy.load import load_policy, shipped_policies
from finetrail.governance.review import record_review
from finetrail.governance.trust import TrustRoot, load_trust
from finetrail.governance.verify import verify_workspace
from tests.support.trust import trust_for
from tests.support.workspaces import (
    add_reviewers,
    approve,
    build_workspace,
    make_key,
)

EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")
PER_TARGET = {"evidence": 250, "ledger": 200, "manifest": 150, "attestation": 175, "reviews": 225}


def _targets(root: Path) -> dict[str, list[tuple[Path, int, int]]]:
    """target -> list of (file, start, end) byte ranges that a mutation may hit."""

    def whole(p: Path) -> tuple[Path, int, int]:
        return (p, 0, p.stat().st_size)

    ledger = root / "ledger.jsonl"
    raw = ledger.read_bytes()
    review_ranges, other_ranges, offset = [], [], 0
    for line in raw.splitlines(keepends=True):
        rng = (ledger, offset, offset + len(line))
        (review_ranges if b'"kind":"review.' in line else other_ranges).append(rng)
        offset += len(line)
    evidence = [
        whole(p)
        for p in sorted((root / "evidence").rglob("*.json"))
        if "/gate/" not in p.as_posix()
    ]
    return {
        "evidence": evidence,
        "ledger": other_ranges,
        "manifest": [whole(root / "manifest.json")],
        "attestation": [whole(p) for p in sorted((root / "evidence/gate").glob("*.dsse.json"))],
        "reviews": review_ranges,
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp = pytest.MonkeyPatch()
    import tests.support.workspaces as gate_contract
    from finetrail.governance.evidence import registry

    mp.setattr(registry, "EVIDENCE_KINDS", gate_contract.contract_kinds())
    # the tests' pinned clock (module scope runs before the autouse fixture): signatures are
    # dated when the tests' release clock says it is
    mp.setenv("FINETRAIL_FIXED_TIME", "2026-01-15T12:00:00+00:00")
    base = tmp_path_factory.mktemp("fuzz")
    root = build_workspace(base / "ws").root
    keys = add_reviewers(root, base / "keys")
    approve(root, keys)
    record_review(
        root,
        decision="comment",
        reviewer="dave",
        role="risk-owner",
        key_file=keys["dave"],
        note="exposure plot reviewed",
    )
    signing_key = make_key(base / "keys", "ci-gate")[0]
    trust = trust_for(base / "keys", base / "trust.yaml")
    from finetrail.governance import keys as ed25519

    with ed25519.signing_with(ed25519.load_private_key(signing_key)):  # the gate's own entries
        result = run_gate(
            workspace=root,
            policy=EU,
            signing_key=str(signing_key),
            require_approvals=True,
            trust_file=trust,
        )
    assert result.decision.passed and result.decision.approved
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def trust(workspace: Path) -> TrustRoot:
    """The trust root the workspace's gate and reviews were signed under (kept outside it)."""
    return load_trust(workspace.parent / "trust.yaml")


def test_mutations_are_all_detected(
    workspace: Path, trust: TrustRoot, use_contract_kinds: object
) -> None:
    root = workspace
    policy = load_policy(EU)
    baseline = verify_workspace(root, trust=trust)
    assert baseline.ok, baseline.render()
    assert evaluate(workspace=root, policy=policy, trust=trust).passed
    targets = _targets(root)
    assert all(targets.values()), {k: len(v) for k, v in targets.items()}
    rng = random.Random(20260907)
    done: Counter[str] = Counter()
    undetected = []
    for target, count in PER_TARGET.items():
        for _ in range(count):
            file, start, end = rng.choice(targets[target])
            original = file.read_bytes()
            pos = rng.randrange(start, end)
            mask = rng.randrange(1, 256)
            mutated = bytearray(original)
            mutated[pos] ^= mask
            file.write_bytes(bytes(mutated))
            try:
                decision = evaluate(workspace=root, policy=policy, trust=trust)  # runs verify
                if decision.integrity.ok or decision.passed:
                    undetected.append((target, file.name, pos, mask))
            finally:
                file.write_bytes(original)
            done[target] += 1
    assert sum(done.values()) >= 1000
    assert not undetected, undetected[:10]
    # the workspace is intact again
    assert verify_workspace(root, trust=trust).ok


def test_verify_itself_reports_each_kind_of_mutation(
    workspace: Path, trust: TrustRoot, use_contract_kinds: object
) -> None:
    """A smaller sample checked through verify_workspace directly, one per target and offset class."""
    rng = random.Random(7)
    for target, ranges in _targets(workspace).items():
        for _ in range(20):
            file, start, end = rng.choice(ranges)
            original = file.read_bytes()
            pos = rng.randrange(start, end)
            mutated = bytearray(original)
            mutated[pos] ^= rng.randrange(1, 256)
            file.write_bytes(bytes(mutated))
            try:
                report = verify_workspace(workspace, trust=trust)
                assert not report.ok, (target, file.name, pos)
                assert report.errors
            finally:
                file.write_bytes(original)


@pytest.mark.parametrize("field", ["size", "finetrail_version"])
def test_manifest_edits_that_stay_canonical(
    workspace: Path, trust: TrustRoot, use_contract_kinds: object, field: str
) -> None:
    """Edits a random flip rarely produces: valid, canonical JSON with every digest intact."""
    from finetrail.governance.evidence.workspace import Manifest

    path = workspace / "manifest.json"
    original = path.read_bytes()
    m = Manifest.read(path)
    if field == "size":
        rel, info = next(iter(m.files.items()))
        files = {**m.files, rel: info.model_copy(update={"size": info.size + 1})}
        edited = m.model_copy(update={"files": files})
    else:
        edited = m.model_copy(update={"finetrail_version": m.finetrail_version + ".post1"})
    path.write_bytes(edited.canonical_bytes())
    try:
        report = verify_workspace(workspace, trust=trust)
        assert [f.code for f in report.errors] == ["modified"], report.render()
        assert not evaluate(workspace=workspace, policy=load_policy(EU), trust=trust).passed
    finally:
        path.write_bytes(original)
