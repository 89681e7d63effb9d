"""The evidence path convention: parsing, lint against record classes, resolution over a workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetrail.governance.evidence import paths as evpaths
from finetrail.governance.io import canonical_json
from tests.support.workspaces import build_workspace

CHECKS = [
    # (path, problem fragment or None, terminal kinds)
    ("training.dp.epsilon", None, {"number"}),
    ("training.completed", None, {"bool"}),
    ("training.datasets[*].role", None, {"string"}),
    ("training.datasets[0].sha256", None, {"string"}),
    ("datasets[*].pii.counts.US_SSN", None, {"number"}),
    ("datasets[1].license", None, {"string"}),
    ("probes.exposure.by_repetition.16.max_bits", None, {"number"}),
    ("probes.membership.attacks[*].auc", None, {"number"}),
    ("bias.disparities.demographic_parity_difference.ci_high", None, {"number"}),
    ("reviews.approvals", None, {"number"}),
    ("gate[*].passed", None, {"bool"}),
    ("workspace.intended_purpose", None, {"string"}),
    ("training.dp.epsilom", "training.dp has no field 'epsilom'", set()),
    ("training.dp[0]", "training.dp is a record, not a list", set()),
    ("training.datasets.role", "training.datasets is a list: address its items", set()),
    ("datasets.license", "'datasets' is a list of records: write datasets[*]", set()),
    ("training[0].completed", "'training' is a single record: it takes no [index]", set()),
    ("datasets[*].pii.counts[0]", "is a mapping: use .KEY or [*], not [0]", set()),
    ("probes.nosuch.x", "unknown evidence kind in 'probes.nosuch.x'", set()),
    ("training..dp", "malformed path segment ''", set()),
    (
        "training.dp.epsilon.value",
        "training.dp.epsilon is a number value: .value goes past its end",
        set(),
    ),
]


@pytest.mark.parametrize(("path", "problem", "terminal"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check_path(
    use_contract_kinds: object, path: str, problem: str | None, terminal: set[str]
) -> None:
    check = evpaths.check_path(path)
    if problem is None:
        assert check.problem is None
        assert set(check.terminal) == terminal
    else:
        assert check.problem is not None and problem in check.problem


def test_unknown_kind_without_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    from finetrail.governance.evidence import registry

    assert evpaths.check_path("training.dp.epsilon").problem is None
    kinds = tuple(k for k in registry.EVIDENCE_KINDS if k.name != "training")
    monkeypatch.setattr(registry, "EVIDENCE_KINDS", kinds)
    check = evpaths.check_path("training.dp.epsilon")
    assert check.problem is not None and "unknown evidence kind" in check.problem


def test_longest_kind_prefix_wins(use_contract_kinds: object) -> None:
    p = evpaths.parse_path("probes.exposure.by_repetition.16.max_bits")
    assert p.kind == "probes.exposure"
    assert p.tokens == (("key", "by_repetition"), ("key", "16"), ("key", "max_bits"))


@pytest.fixture
def ws(tmp_path: Path, use_contract_kinds: object) -> evpaths.EvidenceSet:
    build_workspace(tmp_path / "ws")
    return evpaths.EvidenceSet(tmp_path / "ws")


def values(ev: evpaths.EvidenceSet, text: str) -> list[tuple[str, object]]:
    res = evpaths.resolve(evpaths.parse_path(text), ev)
    return [(m.pointer, m.value) for m in res.matches]


def test_resolve_scalar_and_digest(ws: evpaths.EvidenceSet) -> None:
    res = evpaths.resolve(evpaths.parse_path("training.dp.epsilon"), ws)
    assert [(m.pointer, m.value) for m in res.matches] == [("training.dp.epsilon", 3.0)]
    rec = res.matches[0].record
    assert rec.rel == "evidence/training.json"
    import hashlib

    assert rec.sha256 == hashlib.sha256((ws.root / rec.rel).read_bytes()).hexdigest()


def test_resolve_wildcards(ws: evpaths.EvidenceSet) -> None:
    assert [v for _, v in values(ws, "datasets[*].records")] == [1000, 1000]
    assert values(ws, "probes.membership.attacks[*].auc") == [
        ("probes.membership.attacks.loss.auc", 0.53),
        ("probes.membership.attacks.zlib.auc", 0.51),
    ]
    # 200 non-members resolve a 1% false-positive rate (2 of 200 members), not 0.1%
    assert values(ws, "probes.membership.attacks[*].tpr_at_1pct_fpr") == [
        ("probes.membership.attacks.loss.tpr_at_1pct_fpr", 0.01),
        ("probes.membership.attacks.zlib.tpr_at_1pct_fpr", 0.01),
    ]
    assert [v for _, v in values(ws, "probes.membership.attacks[*].tpr_at_0_1pct_fpr")] == [
        None,
        None,
    ]
    assert values(ws, "datasets[1].pii.residual")[0][0] == "datasets[1].pii.residual"


def test_resolve_reports_what_is_missing(ws: evpaths.EvidenceSet) -> None:
    res = evpaths.resolve(evpaths.parse_path("datasets[*].pii.counts.US_SSN"), ws)
    assert [m.value for m in res.matches] == [40]
    assert any("US_SSN is absent" in m for m in res.missing)
    res = evpaths.resolve(evpaths.parse_path("datasets[7].license"), ws)
    assert not res.matches and "datasets[7]: no such record" in res.missing[0]
    res = evpaths.resolve(evpaths.parse_path("gate[*].passed"), ws)
    assert not res.matches and res.missing == ["no gate records in the workspace"]


def test_resolve_null_and_where(ws: evpaths.EvidenceSet) -> None:
    res = evpaths.resolve(evpaths.parse_path("datasets[*].pii.residual"), ws)
    assert sorted(map(repr, (m.value for m in res.matches))) == ["None", "{'US_SSN': 0}"]
    tokens = evpaths.parse_tokens("derived_from")
    res = evpaths.resolve(
        evpaths.parse_path("datasets[*].pii.residual"),
        ws,
        keep=lambda d, at: bool(evpaths.values_at(d, tokens).matches[0].value),
    )
    assert [m.value for m in res.matches] == [{"US_SSN": 0}]
    res = evpaths.resolve(evpaths.parse_path("datasets[*].pii.residual[*]"), ws)
    assert [(m.pointer, m.value) for m in res.matches] == [("datasets[0].pii.residual.US_SSN", 0)]
    assert res.missing == ["datasets[1].pii.residual is null"]


def test_unparseable_record_is_an_error(ws: evpaths.EvidenceSet) -> None:
    (ws.root / "evidence/training.json").write_bytes(canonical_json({"completed": "maybe"}))
    res = evpaths.resolve(evpaths.parse_path("training.completed"), evpaths.EvidenceSet(ws.root))
    assert not res.matches
    assert res.errors and "evidence/training.json" in res.errors[0]
