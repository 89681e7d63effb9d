"""Membership-inference metrics and attack scores; PII matching and masking."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from finetrail.governance.probes.extraction_scanner import (
    CombinedScanner,
    PiiMatch,
    PresidioScanner,
    RegexPiiScanner,
    mask,
    mask_text,
    masked_tail,
)
from finetrail.governance.probes.formats import PIN6
from finetrail.governance.probes.membership import (
    attack_result,
    attack_scores,
    bootstrap_metrics,
    exchangeability,
    roc_metrics,
    tpr_at_fpr,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [50, 1000])
def test_vectorised_bootstrap_metrics_match_sklearn(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    members = np.round(rng.normal(0.7, 1, n), 1)  # rounding makes ties
    nonmembers = np.round(rng.normal(0, 1, n), 1)
    y = np.r_[np.ones(n), np.zeros(n)]
    s = np.r_[members, nonmembers]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    expected = [roc_auc_score(y, s), tpr_at_fpr(fpr, tpr, 0.01), tpr_at_fpr(fpr, tpr, 0.001)]
    np.testing.assert_allclose(bootstrap_metrics(members[None], nonmembers[None])[0], expected)
    np.testing.assert_allclose(roc_metrics(members, nonmembers)[:3], expected)


def test_attack_result_intervals_and_roc() -> None:
    rng = np.random.default_rng(3)
    members, nonmembers = rng.normal(1, 1, 400), rng.normal(0, 1, 400)
    res = attack_result(
        members, nonmembers, resamples=300, confidence=0.95, seed=0, description="x"
    )
    assert 0.70 < res.auc < 0.80  # Phi(1/sqrt(2)) = 0.76
    assert res.auc_ci.low < res.auc < res.auc_ci.high
    assert res.tpr_at_1pct_fpr_ci.low <= res.tpr_at_1pct_fpr <= res.tpr_at_1pct_fpr_ci.high
    fprs = [p[0] for p in res.roc]
    tprs = [p[1] for p in res.roc]
    assert fprs[0] == 0.0 and fprs[-1] == 1.0 and tprs[-1] == 1.0
    assert tprs == sorted(tprs)  # a ROC curve never goes down
    same = attack_result(
        nonmembers, nonmembers.copy(), resamples=50, confidence=0.9, seed=0, description="x"
    )
    assert same.auc == pytest.approx(0.5)


@pytest.mark.parametrize(("shift", "ok"), [(0.0, True), (-1.0, False), (1.0, False)])
def test_exchangeability_flags_sets_the_base_model_already_separates(
    shift: float, ok: bool
) -> None:
    rng = np.random.default_rng(11)
    members, nonmembers = rng.normal(0, 1, 300), rng.normal(shift, 1, 300)
    ex = exchangeability(
        members, nonmembers, tolerance=0.05, resamples=300, confidence=0.95, seed=0
    )
    assert ex.ok is ok
    assert ex.base_auc_ci.low <= ex.base_auc <= ex.base_auc_ci.high
    if not ok:  # AUC = Phi(-shift / sqrt(2)): 0.76 or 0.24
        assert abs(ex.base_auc - 0.5) > 0.2


def test_attack_scores_follow_their_definitions() -> None:
    lp = [np.array([-1.0, -2.0, -3.0, -4.0, -5.0]), np.array([-0.5, -0.5])]
    mu = [np.full(5, -2.0), np.full(2, -1.0)]
    sd = [np.full(5, 1.0), np.full(2, 0.5)]
    ft = SimpleNamespace(logprobs=lp, mu=mu, sigma=sd)
    base = SimpleNamespace(logprobs=[np.full(5, -4.0), np.full(2, -0.5)])
    texts = ["aaaaaaaaaa", "hello world"]
    s = attack_scores(texts, ft, base, k_fraction=0.4)
    assert s["loss"].tolist() == [-3.0, -0.5]
    assert s["reference"].tolist() == [1.0, 0.0]
    assert s["min_k"].tolist() == [-4.5, -0.5]  # lowest 40%: 2 of 5 tokens; at least 1 token
    assert s["min_k_plus_plus"].tolist() == [-2.5, 1.0]  # ((-5+2)+(-4+2))/2 ; (-0.5+1)/0.5
    import zlib

    assert s["zlib"][0] == pytest.approx(-3.0 / len(zlib.compress(b"aaaaaaaaaa")))
    assert "reference" not in attack_scores(texts, ft, None, k_fraction=0.4)


SCAN_CASES = [
    ("write to jane.doe@example.org today", [("EMAIL_ADDRESS", "jane.doe@example.org")]),
    ("ssn 123-45-6789.", [("US_SSN", "123-45-6789")]),
    (
        "call (555) 123-4567 or 555.987.6543",
        [("PHONE_NUMBER", "(555) 123-4567"), ("PHONE_NUMBER", "555.987.6543")],
    ),
    ("card 4111 1111 1111 1111 ok", [("CREDIT_CARD", "4111 1111 1111 1111")]),
    ("host 10.0.0.12 down", [("IP_ADDRESS", "10.0.0.12")]),
    ("my account pin is 004217. Please", [("ACCOUNT_PIN", "004217")]),
    ("order 1234567 and 12345", []),  # 7 and 5 digits are not a 6-digit pin
    ("nothing to see here", []),
]


@pytest.mark.parametrize(("text", "expected"), SCAN_CASES)
def test_regex_scanner(text: str, expected: list[tuple[str, str]]) -> None:
    found = RegexPiiScanner([PIN6]).find(text)
    assert [(m.entity, m.value) for m in found] == expected
    for m in found:
        assert text[m.start : m.end].strip() == m.value


def test_combined_scanner_reports_overlaps_once() -> None:
    class Names:
        name = "names"

        def find(self, text: str) -> list[PiiMatch]:
            i = text.find("Jane Doe")
            return [PiiMatch("PERSON", "Jane Doe", i, i + 8)] if i >= 0 else []

    scanner = CombinedScanner([RegexPiiScanner(), Names()])
    found = scanner.find("Jane Doe <jane@doe.com>")
    assert [(m.entity, m.value) for m in found] == [
        ("PERSON", "Jane Doe"),
        ("EMAIL_ADDRESS", "jane@doe.com"),
    ]
    assert scanner.name == "regex+names"


def test_presidio_adapter_maps_results_to_matches() -> None:
    calls = []

    class Analyzer:  # stands in for presidio_analyzer.AnalyzerEngine.analyze
        def analyze(
            self, *, text: str, language: str, entities: Any, score_threshold: float
        ) -> list[Any]:
            calls.append((language, entities, score_threshold))
            i = text.find("Jane")
            return [
                SimpleNamespace(entity_type="PERSON", start=i, end=i + 4, score=0.85),
                SimpleNamespace(entity_type="LOCATION", start=0, end=3, score=0.3),
            ]

    scanner = PresidioScanner(Analyzer(), score_threshold=0.5, entities=["PERSON", "LOCATION"])
    found = scanner.find("to Jane, hello")
    assert [(m.entity, m.value, m.start) for m in found] == [("PERSON", "Jane", 3)]
    assert calls == [("en", ["PERSON", "LOCATION"], 0.5)]
    combined = CombinedScanner([RegexPiiScanner(), scanner])
    assert combined.name == "regex+presidio"


def test_masking_keeps_no_letters_or_digits_of_identifiers() -> None:
    assert mask("123-45-6789") == "***-**-****"
    assert mask("ab@cd.com") == "**@**.***"
    scanner: Any = RegexPiiScanner([PIN6])
    assert mask_text("pin 123456, mail a@b.io", scanner) == "pin ******, mail *@*.**"
    tail = masked_tail(
        "Customer John Smith wrote: call 555-123-4567 about ticket 99 my pin is ", scanner
    )
    assert "John" not in tail and "Smith" not in tail and not any(ch.isdigit() for ch in tail)
    assert tail.endswith("my pin is ")
