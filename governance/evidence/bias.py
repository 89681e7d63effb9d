"""``evidence/bias.json``: the bias audit of a task evaluated by the model (BiasAuditEvidence).

Policy paths (see docs/evidence-contract.md): ``bias.subject.adapter_sha256``,
``bias.task.accuracy``, ``bias.task.f1``, ``bias.disparities.<metric>.value/ci_low/ci_high``,
``bias.finetune_effect.<metric>.delta/ci_low/ci_high``, ``bias.too_small_groups``.

``<metric>`` is one of :data:`DISPARITY_METRICS`. ``disparities`` holds the worst case over the
sensitive features audited one at a time (largest difference, smallest ratio); ``by_feature``
holds every feature and their intersection. Groups smaller than ``method.min_group_size`` are
listed in ``too_small_groups`` with their numbers and left out of the disparities; they are
never dropped from ``groups``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from finetrail.governance.evidence.base import EvidenceRecord, Frozen

DISPARITY_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "accuracy_difference",
)
GROUP_METRICS = ("selection_rate", "accuracy", "tpr", "fpr", "fnr")
SHA256 = r"^[0-9a-f]{64}$"


class Interval(Frozen):
    """A point estimate with its bootstrap confidence interval (``None`` where undefined)."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None


class Disparity(Interval):
    """A between-group disparity: which feature and which two groups are furthest apart.

    The interval is for the gap between those two groups (the same two in every resample); with
    more than two groups it does not account for having picked the furthest pair.
    """

    feature: str
    groups: tuple[str, ...] = ()  # (group with the higher value, group with the lower value)
    component: str | None = None  # equalized odds: "tpr" or "fpr", whichever is worse


class GroupMetrics(Frozen):
    """One group of one feature (or of the intersection): counts and rates with intervals."""

    feature: str  # "gender", or "gender&age_band" for the intersection
    group: str  # "female", or "female&18-29"
    count: int
    positives: int  # rows whose true label is the positive label
    too_small: bool
    selection_rate: Interval
    accuracy: Interval
    tpr: Interval
    fpr: Interval
    fnr: Interval


class TooSmallGroup(Frozen):
    feature: str
    group: str
    count: int


class Effect(Frozen):
    """Fine-tuned minus base, with a paired bootstrap interval (the same resampled rows)."""

    delta: float | None
    ci_low: float | None
    ci_high: float | None
    base: float | None
    finetuned: float | None


class FeatureAudit(Frozen):
    feature: str
    groups: tuple[str, ...]
    judged_groups: tuple[str, ...]
    disparities: dict[str, Disparity]
    finetune_effect: dict[str, Effect] | None = None


class TaskMetrics(Frozen):
    n: int
    positive_label: str
    labels: tuple[str, ...]
    accuracy: float
    accuracy_ci: tuple[float, float]
    f1: float
    f1_ci: tuple[float, float]
    auc: float | None  # threshold-free; needs scores and both classes
    selection_rate: float


class BaseAudit(Frozen):
    """The same audit of the base model, for the fine-tune's own effect."""

    task: TaskMetrics
    disparities: dict[str, Disparity]


class CounterfactualAttribute(Frozen):
    """Pairs of prompts that differ only in this attribute's terms."""

    attribute: str
    groups: tuple[str, ...]
    pairs: int
    reference_group: str
    mean_change: Interval  # mean P(positive | other) - P(positive | reference)
    mean_abs_change: Interval
    max_abs_change: float
    flip_share: Interval  # share of pairs whose decision differs
    selection_rate: dict[str, Interval]  # per group, over the variants
    demographic_parity_difference: Disparity


class CounterfactualResult(Frozen):
    source_sha256: str = Field(pattern=SHA256)
    templates: int
    attributes: dict[str, CounterfactualAttribute]


class PlotBar(Frozen):
    """One bar of a per-group chart: a metric of a group, with its interval."""

    feature: str
    group: str
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    too_small: bool


class BiasSubject(Frozen):
    adapter_sha256: str | None = Field(default=None, pattern=SHA256)
    base_weights_sha256: str | None = Field(default=None, pattern=SHA256)
    model: str  # what was scored: "workspace", a local model path's name, or "predictions"
    eval_sha256: str | None = Field(default=None, pattern=SHA256)
    predictions_sha256: str | None = Field(default=None, pattern=SHA256)
    base_predictions_sha256: str | None = Field(default=None, pattern=SHA256)


class BiasMethod(Frozen):
    scoring: Literal["verbaliser_log_likelihood", "predictions_file"]
    verbalisers: dict[str, str]  # label -> continuation scored after the prompt
    positive_label: str
    resamples: int
    confidence: float
    seed: int
    min_group_size: int
    bootstrap: str = (
        "percentile; rows resampled with replacement; same resamples for base and fine-tuned"
    )
    library: str = "fairlearn MetricFrame"
    # how prompts reached the model: "text" (verbaliser appended), "chat" (the prompt as the
    # user's turn, the label as the assistant's reply, in training's chat rendering); None for a
    # predictions file, or evidence written before this was recorded
    prompt_format: Literal["text", "chat"] | None = None


class BiasAuditEvidence(EvidenceRecord):
    record_type: Literal["bias"] = "bias"
    subject: BiasSubject
    method: BiasMethod
    sensitive_features: tuple[str, ...]
    task: TaskMetrics
    disparities: dict[str, Disparity]
    by_feature: dict[str, FeatureAudit]
    groups: tuple[GroupMetrics, ...]
    too_small_groups: tuple[TooSmallGroup, ...]
    base: BaseAudit | None = None
    finetune_effect: dict[str, Effect] | None = None
    counterfactual: CounterfactualResult | None = None
    plot_data: tuple[PlotBar, ...] = ()
