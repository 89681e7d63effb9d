"""Evidence of the white-box mechanism audit (``evidence/mechanism.json``).

Written by training (:mod:`finetrail.training.mechanism_audit`): finetrail instruments its own
DP optimizer step and tests what it released against what the evidence claims.

- ``noise``: the noise actually added (released noisy sum minus the clipped sum, on sampled
  coordinates of every trainable tensor) has the claimed standard deviation ``sigma * C``:
  two-sided chi-square variance tests (pooled and per tensor) and a mean test. Noise too small
  *and* too large are findings.
- ``clipping``: every example's contribution is bounded by ``C``: the clipped sum is recomputed
  from the per-sample gradients with the claimed ``C`` on sampled steps, and a synthetic canary
  gradient far above ``C`` is passed through the optimizer's own clipping before training.
- ``normalisation``: the released gradient is the noisy sum divided by one constant, the expected
  batch size the accountant's model uses (not, for instance, the realised batch size).
- ``bound``: the one-run epsilon lower bound of the per-step Gaussian mechanism from virtual
  Dirac canaries on the observed noise, with its ceiling (reported; not part of the verdict).

``verdict`` is ``verified`` only when every test ran and none rejected; ``rejected`` names the
test(s) in ``reasons``; ``not_run`` says why in ``reasons``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from finetrail.governance.evidence.base import EvidenceRecord, Frozen

TestVerdict = Literal["pass", "rejected", "not_run"]
MechanismVerdict = Literal["verified", "rejected", "not_run"]


class MechanismClaim(Frozen):
    """What the evidence states about the mechanism, and where the audit took it from."""

    noise_multiplier: float = Field(gt=0)
    max_grad_norm: float = Field(gt=0)
    expected_batch_size: float = Field(gt=0, description="N x sample rate: the divisor")
    sample_rate: float | None = Field(default=None, gt=0, le=1)
    delta: float | None = Field(default=None, gt=0, lt=1)
    source: str = Field(description="where these values came from (plan and config, ...)")


class Ratio(Frozen):
    low: float
    high: float


class NoiseTest(Frozen):
    verdict: TestVerdict
    method: str = (
        "noise = released noisy sum - clipped sum on sampled coordinates; sum of squares over "
        "(sigma C)^2 against chi-square(n), two-sided; per-tensor tests Bonferroni-corrected; "
        "mean against N(0, n)"
    )
    claimed_std: float = Field(ge=0, description="sigma x C, in units of the summed gradient")
    observations: int = Field(ge=0)
    steps: int = Field(ge=0, description="steps whose noise was observed")
    tensors: int = Field(ge=0)
    coordinates_per_tensor: int = Field(ge=0)
    variance_ratio: float | None = Field(default=None, ge=0, description="observed / claimed")
    variance_ratio_interval: Ratio | None = None
    chi_square: float | None = None
    p_value: float | None = Field(default=None, ge=0, le=1)
    mean_z: float | None = None
    mean_p_value: float | None = Field(default=None, ge=0, le=1)
    worst_tensor: str | None = None
    worst_tensor_variance_ratio: float | None = None
    worst_tensor_p_value: float | None = Field(default=None, ge=0, le=1)
    significance: float = Field(gt=0, lt=1, description="family-wise false-alarm rate")
    reason: str


class SyntheticCanary(Frozen):
    """A gradient of norm ``canary_norm`` passed through the optimizer's own clipping."""

    verdict: TestVerdict
    canary_norm: float = Field(ge=0)
    contribution_norm: float | None = Field(default=None, ge=0, description="after clipping")
    reason: str


class ClippingTest(Frozen):
    verdict: TestVerdict
    method: str
    bound: float = Field(gt=0, description="the claimed clipping norm C")
    steps: int = Field(ge=0, description="steps whose clipping was recomputed")
    examples: int = Field(ge=0)
    examples_above_bound: int = Field(
        ge=0, description="per-sample norms above C (the check's power: 0 means never exercised)"
    )
    max_per_sample_norm: float | None = Field(default=None, ge=0, description="before clipping")
    max_contribution_norm: float | None = Field(default=None, ge=0, description="after clipping")
    max_sum_error: float | None = Field(
        default=None, ge=0, description="max |clipped sum - recomputed| / C on sampled coordinates"
    )
    tolerance: float = Field(gt=0)
    synthetic_canary: SyntheticCanary | None = None
    reason: str


class NormalisationTest(Frozen):
    verdict: TestVerdict
    method: str = (
        "divisor = least squares of the pre-scale noisy sum on the released gradient, per step; "
        "every step must use the same divisor, equal to the model's N x sample rate (or Opacus's "
        "int() of it), and the release must be that exact scaled copy"
    )
    model_divisor: float = Field(gt=0, description="expected batch size the accountant models")
    applied_divisor: float | None = None
    applied_min: float | None = None
    applied_max: float | None = None
    truncated: bool = Field(
        default=False, description="Opacus divided by int(N x sample rate) (opacus#819)"
    )
    step_scale: float | None = Field(
        default=None, description="model divisor / applied divisor: the update's scale vs the model"
    )
    steps: int = Field(ge=0)
    max_release_error: float | None = Field(
        default=None, ge=0, description="max |noisy sum - divisor x released| / max |noisy sum|"
    )
    tolerance: float = Field(gt=0)
    reason: str


class OneRunBound(Frozen):
    """Steinke, Nasr, Jagielski (2023) on virtual Dirac canaries of the per-step Gaussian."""

    method: str = (
        "one-run audit: each observed noise coordinate is a canary score noise + b C with a fair "
        "coin b; guesses IN for the top scores; compared with the epsilon of one Gaussian step "
        "at the claimed noise (the per-step mechanism the accountant composes)"
    )
    canaries: int = Field(ge=0)
    guesses: int = Field(ge=0)
    correct: int = Field(ge=0)
    epsilon_lower_bound: float = Field(ge=0)
    ceiling: float = Field(ge=0, description="the bound had every guess been right")
    claimed_step_epsilon: float = Field(ge=0, description="one Gaussian step at sigma, delta")
    delta: float = Field(ge=0, le=1)
    confidence: float = Field(gt=0, lt=1)
    verdict: Literal["consistent", "contradicted", "inconclusive"]


class AuditCost(Frozen):
    audit_seconds: float = Field(ge=0, description="time in the audit's per-step code")
    judgement_seconds: float = Field(ge=0, description="the statistics, once after training")
    loop_seconds: float = Field(ge=0, description="the training loop, audit included")
    fraction: float | None = Field(
        default=None, ge=0, description="audit_seconds / the loop's other time"
    )
    steps: int = Field(ge=0)
    steps_observed: int = Field(ge=0)


class MechanismEvidence(EvidenceRecord):
    record_type: Literal["mechanism"] = "mechanism"
    ran: bool
    verdict: MechanismVerdict
    reasons: tuple[str, ...] = Field(description="why the verdict (every failed test)")
    false_alarm_rate: float = Field(
        gt=0,
        lt=1,
        description="chance an honest mechanism is rejected (noise test; the others "
        "are exact checks within float tolerance)",
    )
    claim: MechanismClaim | None
    clipping_mode: str | None
    steps: int = Field(ge=0)
    noise: NoiseTest | None = None
    clipping: ClippingTest | None = None
    normalisation: NormalisationTest | None = None
    bound: OneRunBound | None = None
    cost: AuditCost | None = None
    post_processing: str | None = Field(
        default=None,
        description="a change made to the released gradient before the update (EWC's public "
        "penalty), when declared; undeclared changes are a finding",
    )
