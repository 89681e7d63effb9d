"""``finetrail canaries plan``: the dp-audit's ceiling before training, and the probe summary
printing the ceiling beside the bound (an audit that could not fail reads ``inconclusive``)."""

from __future__ import annotations

import pytest

from finetrail.cli import main
from finetrail.governance.evidence.probes import DPAuditEvidence, ProbeSubject
from finetrail.governance.probes.cli import _summary
from finetrail.governance.probes.dp_audit import design_ceiling


def test_plan_prints_the_ceiling_of_the_single_copy_canaries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["canaries", "plan", "--count", "90", "--delta", "1e-5", "--repetitions", "1,4,16"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "canaries: 90, inserted once: 30 (the per-example bound uses only these)" in out
    ceiling = design_ceiling(canaries=30, delta=1e-5)
    assert f"ceiling: {ceiling:.3f} (the largest per-example epsilon lower bound" in out
    assert "reads 'inconclusive', never 'consistent'" in out


def test_plan_says_how_many_canaries_a_claim_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["canaries", "plan", "--count", "100", "--delta", "1e-5", "--claim", "4"]) == 0
    out = capsys.readouterr().out
    assert "claim 4: needs at least 258 single-copy canaries" in out
    assert "(not met by this plan;" in out


def test_plan_says_when_no_count_can_contradict_a_claim(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["canaries", "plan", "--count", "100", "--delta", "1e-5", "--claim", "8"]) == 0
    out = capsys.readouterr().out
    assert "claim 8: no count up to 50,000 single-copy canaries can contradict it" in out
    assert "rely on the mechanism audit (evidence/mechanism.json)" in out


def test_plan_rejects_a_bad_repetition_list(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["canaries", "plan", "--count", "10", "--delta", "1e-5", "--repetitions", "x"])
    assert rc != 0
    assert "not a comma-separated list of integers: 'x'" in capsys.readouterr().err


def _audit(verdict: str, bound: float, ceiling: float) -> DPAuditEvidence:
    return DPAuditEvidence(
        subject=ProbeSubject(adapter_sha256="a" * 64),
        score="llr",
        claimed_epsilon=4.0,
        claimed_delta=1e-5,
        accountant="prv",
        delta_used=1e-5,
        empirical_epsilon_lower_bound=bound,
        confidence=0.95,
        threshold_selection="bonferroni",
        tests=5,
        verdict=verdict,  # type: ignore[arg-type]
        best=None,
        groups=(),
        ceiling=ceiling,
        canaries=90,
        inserted=45,
        parameters={},
        single_copy_canaries=30,
    )


def test_probe_summary_prints_the_ceiling_beside_the_bound() -> None:
    line = _summary("dp_audit", _audit("inconclusive", 0.0, 1.794))
    assert line.startswith(
        "empirical epsilon >= 0.000 (ceiling 1.794 with 30 single-copy of 90 canaries, delta "
        "1e-05) at 95% (claimed epsilon=4): inconclusive"
    )
    assert "could not have contradicted the claim" in line
    consistent = _summary("dp_audit", _audit("consistent", 0.5, 5.3))
    assert "(ceiling 5.300 with 30 single-copy" in consistent
    assert "could not have" not in consistent
