"""Evidence of the memorisation and privacy probes (``evidence/probes/<name>.json``).

Four kinds, one file each: ``probes.exposure`` (canary exposure, Carlini et al. 2019),
``probes.extraction`` (memorised identifiers attributed to the fine-tune), ``probes.membership``
(membership-inference attacks) and ``probes.dp_audit`` (one-run empirical epsilon lower bound,
Steinke, Nasr and Jagielski 2023, against the claimed epsilon).

Every record names the model it ran against in ``subject`` (adapter and base-weights digests, so the
gate can tell stale evidence) and the canary set it used by digest. No raw PII and no canary
secret is ever stored here: extraction examples are masked, canaries are referred to by id.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from finetrail.governance.evidence.base import EvidenceRecord, Frozen

SHA256 = r"^[0-9a-f]{64}$"


class ProbeBaseModel(Frozen):
    """The base model a probe compared the fine-tune with."""

    name: str | None = Field(default=None, description="base_model.name from the training evidence")
    path: str = Field(description="the folder loaded")
    source: Literal["training_evidence", "argument"] = Field(
        description="training_evidence: the folder training recorded; argument: --base-model"
    )
    matches_training: bool = Field(
        description="its config, weights and tokenizer digests are those training recorded"
    )
    mismatches: tuple[str, ...] = Field(
        default=(), description="what differs (only with --allow-base-mismatch)"
    )


class ProbeSubject(Frozen):
    """The model a probe ran against, by digest."""

    adapter_sha256: str = Field(pattern=SHA256)
    base_weights_sha256: str | None = Field(default=None, pattern=SHA256)
    training_evidence_sha256: str | None = Field(default=None, pattern=SHA256)
    canaries_sha256: str | None = Field(default=None, pattern=SHA256)
    base_model: ProbeBaseModel | None = Field(
        default=None, description="the base model used (None: runs without a workspace)"
    )
    rendering: str | None = Field(
        default=None,
        description="how chat records and canaries were rendered for the model (None: plain "
        "text records, canaries scored after their text template alone)",
    )


# -- exposure ---------------------------------------------------------------------------------
class ExposureStats(Frozen):
    n: int = Field(ge=0)
    mean_bits: float | None
    median_bits: float | None
    max_bits: float | None
    min_bits: float | None


class CanaryExposure(Frozen):
    id: str
    format: str
    repetitions: int = Field(ge=0)
    included: bool
    exposure_bits: float = Field(ge=0)
    space_bits: float = Field(gt=0)
    method: Literal["exact", "skew_normal", "sampled_upper_bound"] = Field(
        description="exact: ranked over the space; sampled_upper_bound: not ranked, and "
        "exposure_bits is a bound from the safe side (at least the true exposure at the stated "
        "confidence; the space's size when no sampled secret scored above the canary); "
        "skew_normal: older records, a point estimate that can under-read"
    )
    rank: int | None = Field(default=None, ge=1)
    log_likelihood: float
    estimate_bits: float | None = Field(
        default=None, ge=0, description="skew-normal point estimate (information only)"
    )
    sampled_above: int | None = Field(
        default=None, ge=0, description="random secrets scoring above the canary, of the sample"
    )
    base_exposure_bits: float | None = Field(
        default=None,
        ge=0,
        description="the same canary's exposure under the base model (a lower bound when "
        "sampled); None when not calibrated",
    )
    calibrated_bits: float | None = Field(
        default=None,
        ge=0,
        description="exposure_bits - base_exposure_bits, at least 0: what the fine-tune added",
    )


class FormatExposure(Frozen):
    format: str
    space_size: int = Field(ge=1)
    space_bits: float
    method: Literal["exact_tree", "pruned_tree", "skew_normal", "mixed"]
    candidates_scored: int = Field(ge=0)
    seconds: float = Field(ge=0)


class ExposureEvidence(EvidenceRecord):
    record_type: Literal["probes.exposure"] = "probes.exposure"
    subject: ProbeSubject
    score: str = "log-likelihood of the secret given the text before it in the canary"
    space_bits: float = Field(description="log2 of the largest canary space probed")
    max_bits: float = Field(ge=0, description="largest exposure of an inserted canary")
    by_repetition: dict[str, ExposureStats]
    controls: ExposureStats = Field(
        description="canaries never inserted (expected about 1.44 bits)"
    )
    formats: tuple[FormatExposure, ...]
    canaries: tuple[CanaryExposure, ...]
    quantiles: dict[str, float] = Field(default_factory=dict, description="of inserted canaries")
    parameters: dict[str, float | int | str | bool]
    calibration: Literal["base_model_reference", "none"] = Field(
        default="none",
        description="base_model_reference: each canary's exposure under the base model was "
        "computed the same way and subtracted (calibrated_bits), so a secret the base model "
        "already ranks high does not read as memorised; none: raw exposure only "
        "(calibration_note says why)",
    )
    calibration_note: str | None = None
    calibrated_max_bits: float | None = Field(
        default=None, ge=0, description="largest calibrated exposure of an inserted canary"
    )
    calibrated_by_repetition: dict[str, ExposureStats] = Field(default_factory=dict)
    calibrated_controls: ExposureStats | None = Field(
        default=None, description="calibrated exposure of canaries never inserted (about 0)"
    )


# -- extraction -------------------------------------------------------------------------------
class MaskedExample(Frozen):
    entity: str
    masked_value: str
    prompt_kind: Literal["training_context", "generic"]
    decoding: Literal["greedy", "beam", "sampled"]
    masked_prompt_tail: str
    canary: bool = False


class EntityExtraction(Frozen):
    pii_values_in_training: int = Field(ge=0)
    memorized: int = Field(ge=0)
    base_model_matches: int = Field(ge=0)


class ExtractionEvidence(EvidenceRecord):
    record_type: Literal["probes.extraction"] = "probes.extraction"
    subject: ProbeSubject
    memorized_identifiers: int = Field(
        ge=0, description="distinct training PII values the fine-tune emitted and the base did not"
    )
    memorized_rate: float = Field(
        ge=0, le=1, description="memorized_identifiers / pii_values_in_training"
    )
    base_model_matches: int = Field(
        ge=0, description="training PII values the base model also emitted"
    )
    pii_values_in_training: int = Field(ge=0)
    targeted_hits: int = Field(
        ge=0, description="prompts whose own following PII value was emitted"
    )
    canary_secrets_extracted: int = Field(ge=0)
    control_secrets_emitted: int = Field(ge=0, description="never-inserted canary secrets (chance)")
    prompts: int = Field(ge=0)
    prompt_sources: dict[str, int]
    generations: int = Field(ge=0)
    by_entity: dict[str, EntityExtraction]
    scanner: str
    masked_examples: tuple[MaskedExample, ...]
    parameters: dict[str, float | int | str | bool]


# -- membership inference ---------------------------------------------------------------------
class Interval(Frozen):
    low: float
    high: float


class AttackResult(Frozen):
    """One attack's separation of members from non-members.

    A TPR at a false-positive rate f is stated only when the non-members can resolve f (at least
    1 / f of them); otherwise it is None and ``not_resolvable`` says why: with fewer, the figure
    would be the TPR at zero false positives, biased up. TPR intervals are exact (Clopper-Pearson)
    over the members at the threshold the non-members set; the AUC interval is a bootstrap one.
    """

    auc: float = Field(ge=0, le=1)
    auc_ci: Interval
    tpr_at_1pct_fpr: float | None = Field(ge=0, le=1)
    tpr_at_1pct_fpr_ci: Interval | None
    tpr_at_0_1pct_fpr: float | None = Field(ge=0, le=1)
    tpr_at_0_1pct_fpr_ci: Interval | None
    roc: tuple[tuple[float, float], ...] = Field(description="(fpr, tpr) points for plots")
    description: str
    not_resolvable: tuple[str, ...] = Field(
        default=(), description="the low-FPR figures the non-member count cannot resolve, and why"
    )
    tpr_interval: Literal["bootstrap", "clopper_pearson"] = "bootstrap"


class BlindBaseline(Frozen):
    """Das et al. 2024: a classifier that never queries the model, on text features only.

    If it separates members from non-members as well as an attack does, the attack's AUC shows
    a difference between the two sets, not memorisation. Its AUC interval is a bootstrap over the
    out-of-fold scores, conditional on the fitted folds: on two halves of one pool its AUC
    still varies by about +-0.1 at 150 texts a side, more than that interval says."""

    method: str = (
        "logistic regression on text features (length, words, digits, capitals, punctuation, "
        "zlib ratio), out-of-fold scores; the model is never queried"
    )
    features: tuple[str, ...]
    folds: int = Field(ge=2)
    result: AttackResult


class Exchangeability(Frozen):
    """Were members and non-members alike before the fine-tune?

    Membership inference compares training records with held-out ones. If the two sets differ in
    kind (other topics, formats or lengths), the attacks measure that difference, not what the
    fine-tune memorised, in either direction. The base model never saw either set, so its own
    mean token log-likelihood must not tell them apart: ``base_auc`` near 0.5. ``ok`` is false
    when the confidence interval of ``base_auc`` lies wholly outside ``0.5 +/- tolerance``.
    """

    method: str = "AUC of the base model's mean token log-likelihood, members vs non-members"
    base_auc: float = Field(ge=0, le=1)
    base_auc_ci: Interval
    tolerance: float = Field(ge=0, le=0.5)
    ok: bool


class MembershipEvidence(EvidenceRecord):
    record_type: Literal["probes.membership"] = "probes.membership"
    subject: ProbeSubject
    members: int = Field(ge=1)
    nonmembers: int = Field(ge=1)
    max_auc: float = Field(ge=0, le=1)
    attacks: dict[str, AttackResult]
    fpr_resolution: float = Field(gt=0, description="1 / nonmembers: the smallest FPR measurable")
    confidence: float = Field(gt=0, lt=1)
    bootstrap_resamples: int = Field(ge=1)
    parameters: dict[str, float | int | str | bool]
    # None when no base model was available to check it (the gate's rule then fails closed).
    exchangeability: Exchangeability | None = None
    blind_baseline: BlindBaseline | None = Field(
        default=None, description="a model-blind classifier's AUC, to read every attack's against"
    )
    split: str = Field(
        default="given",
        description="how members and non-members were chosen: 'random split of one pool' "
        "(seeded, committed before training) or 'given' (a held-out file)",
    )


# -- one-run DP audit -------------------------------------------------------------------------
class AuditTest(Frozen):
    repetitions: int = Field(ge=1, description="copies of each inserted canary in this group")
    canaries: int = Field(ge=0, description="m: canaries in the group (inserted or not)")
    guesses_in: int = Field(ge=0)
    guesses_out: int = Field(ge=0)
    correct: int = Field(ge=0)
    epsilon_lower_bound: float = Field(
        ge=0, description="per example (single-copy canaries); per canary for repeated ones"
    )
    ceiling: float = Field(ge=0, description="the bound had every guess been right")
    unit: Literal["example", "canary"] = Field(
        default="example",
        description="example: canaries inserted once, the bound is per example and comparable "
        "with the claim; canary: a k-copy canary as one unit (never converted to a per-example "
        "bound: group privacy makes that vacuous)",
    )


class DPAuditEvidence(EvidenceRecord):
    record_type: Literal["probes.dp_audit"] = "probes.dp_audit"
    subject: ProbeSubject
    method: str = "one-run audit (Steinke, Nasr, Jagielski 2023), black-box canary scores"
    score: str
    claimed_epsilon: float | None = Field(ge=0)
    claimed_delta: float | None = Field(ge=0, le=1)
    accountant: str | None
    delta_used: float = Field(ge=0, le=1)
    empirical_epsilon_lower_bound: float = Field(ge=0)
    confidence: float = Field(gt=0, lt=1)
    threshold_selection: Literal["bonferroni", "split"]
    tests: int = Field(ge=1, description="hypothesis tests the significance level is divided by")
    verdict: Literal["consistent", "contradicted", "inconclusive", "no_claim"] = Field(
        description="contradicted: bound above the claim; inconclusive: the ceiling is below the "
        "claim, so no outcome of this audit could have contradicted it; consistent: it could "
        "have and did not"
    )
    best: AuditTest | None
    groups: tuple[AuditTest, ...] = Field(description="the per-example test(s)")
    ceiling: float = Field(
        ge=0, description="largest per-example bound this design could report (count, delta)"
    )
    canaries: int = Field(ge=0)
    inserted: int = Field(ge=0)
    parameters: dict[str, float | int | str | bool]
    single_copy_canaries: int | None = Field(
        default=None, ge=0, description="canaries the per-example bound uses (inserted once)"
    )
    repeated: tuple[AuditTest, ...] = Field(
        default=(),
        description="repeated canaries, one test per repetition count, per canary unit "
        "(a separate test family; shows leakage, says nothing per example)",
    )
