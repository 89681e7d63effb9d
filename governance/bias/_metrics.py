"""Group metrics and disparities with fairlearn ``MetricFrame``; seeded bootstrap intervals.

Point estimates come from fairlearn: ``MetricFrame`` per group (count, selection rate, accuracy,
TPR, FPR, FNR) and its between-groups ``difference()`` / ``ratio()`` for the disparities.
fairlearn gives no uncertainty, so every group metric and disparity gets a percentile bootstrap
interval computed with numpy: each resample is a vector of row weights, and one matrix product
turns the weights into per-group confusion counts for every resample at once. The base and the
fine-tuned model's predictions share those weights, so their difference gets a paired interval.

A rate whose denominator is zero (TPR of a group without positive labels) is undefined: ``None``
in the evidence and skipped by the between-group difference, never counted as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from finetrail.governance.evidence.bias import (
    DISPARITY_METRICS,
    GROUP_METRICS,
    Disparity,
    Effect,
    GroupMetrics,
    Interval,
    TaskMetrics,
    TooSmallGroup,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
SEP = "&"
# disparity -> (group metrics it compares, "difference" or "ratio")
DISPARITY_SPECS: dict[str, tuple[tuple[str, ...], str]] = {
    "demographic_parity_difference": (("selection_rate",), "difference"),
    "demographic_parity_ratio": (("selection_rate",), "ratio"),
    "equalized_odds_difference": (("tpr", "fpr"), "difference"),
    "equalized_odds_ratio": (("tpr", "fpr"), "ratio"),
    "accuracy_difference": (("accuracy",), "difference"),
}
MAX_WEIGHT_CELLS = 20_000_000  # resamples x rows per chunk of the bootstrap


@dataclass(frozen=True)
class Settings:
    resamples: int
    confidence: float
    seed: int
    min_group_size: int


@dataclass(frozen=True)
class FeatureView:
    """One feature (or the intersection): group names and each row's group code."""

    name: str
    groups: tuple[str, ...]
    codes: IntArray
    counts: IntArray


def feature_views(
    sensitive: dict[str, npt.NDArray[Any]], features: Sequence[str]
) -> list[FeatureView]:
    """Each sensitive feature on its own, then their intersection (when more than one)."""
    columns = [(f, sensitive[f].astype(str)) for f in features]
    if len(features) > 1:
        joined = np.array(
            [SEP.join(t) for t in zip(*(sensitive[f].astype(str) for f in features), strict=True)]
        )
        columns.append((SEP.join(features), joined))
    views = []
    for name, values in columns:
        groups, codes = np.unique(values, return_inverse=True)
        views.append(
            FeatureView(
                name,
                tuple(str(g) for g in groups),
                codes.astype(np.int64),
                np.bincount(codes, minlength=len(groups)).astype(np.int64),
            )
        )
    return views


# -- fairlearn point estimates ---------------------------------------------------------------
def metric_frame(
    y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any], groups: npt.NDArray[Any]
) -> Any:
    """fairlearn ``MetricFrame`` with the audit's group metrics."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    def defined(yt: Any, label: int) -> bool:
        return bool(np.any(np.asarray(yt) == label))

    # undefined (empty denominator) is NaN, so between-group differences skip it
    def tpr(yt: Any, yp: Any) -> float:
        return float(true_positive_rate(yt, yp, pos_label=1)) if defined(yt, 1) else np.nan

    def fnr(yt: Any, yp: Any) -> float:
        return float(false_negative_rate(yt, yp, pos_label=1)) if defined(yt, 1) else np.nan

    def fpr(yt: Any, yp: Any) -> float:
        return float(false_positive_rate(yt, yp, pos_label=1)) if defined(yt, 0) else np.nan

    metrics = {
        "count": count,
        "selection_rate": selection_rate,
        "accuracy": accuracy_score,
        "tpr": tpr,
        "fpr": fpr,
        "fnr": fnr,
    }
    return MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups)


# -- bootstrap -------------------------------------------------------------------------------
def bootstrap_counts(matrix: FloatArray, *, resamples: int, seed: int) -> FloatArray:
    """Weighted column sums of ``matrix`` (rows x cells) for each resample: (resamples, cells).

    Resample ``b`` draws ``n`` rows with replacement; its weights count how often each row was
    drawn. Chunked so memory stays flat in ``resamples x rows``.
    """
    n = matrix.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_WEIGHT_CELLS // max(n, 1))
    out = np.empty((resamples, matrix.shape[1]), dtype=np.float64)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = (np.arange(b)[:, None] * n + idx).ravel()
        weights = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        out[start : start + b] = weights @ matrix
    return out


def confusion_columns(view: FeatureView, y_true: IntArray, y_pred: IntArray) -> FloatArray:
    """One-hot (rows x groups*4) of each row's group and confusion cell (tn, fp, fn, tp)."""
    n, g = len(y_true), len(view.groups)
    cols = np.zeros((n, g * 4), dtype=np.float64)
    cols[np.arange(n), view.codes * 4 + 2 * y_true + y_pred] = 1.0
    return cols


def rates_from_counts(c: FloatArray) -> dict[str, FloatArray]:
    """Group rates from confusion counts shaped (..., groups, 4) in the order tn, fp, fn, tp."""
    tn, fp, fn, tp = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    n = tn + fp + fn + tp

    def div(a: FloatArray, b: FloatArray) -> FloatArray:
        return np.divide(a, b, out=np.full_like(a, np.nan), where=b > 0)

    return {
        "selection_rate": div(fp + tp, n),
        "accuracy": div(tn + tp, n),
        "tpr": div(tp, tp + fn),
        "fpr": div(fp, fp + tn),
        "fnr": div(fn, tp + fn),
    }


def percentile_ci(samples: FloatArray, confidence: float) -> tuple[float | None, float | None]:
    finite = samples[np.isfinite(samples)]
    if finite.size < max(10, samples.size // 2):  # mostly undefined: no honest interval
        return None, None
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return float(lo), float(hi)


def finite_or_none(x: Any) -> float | None:
    v = float(x)
    return v if np.isfinite(v) else None


@dataclass(frozen=True)
class Gap:
    """Which groups (and component) a disparity compares, fixed from the full sample."""

    metric: str
    component: str | None
    hi: int | None
    lo: int | None
    kind: str

    def stat(self, rates: dict[str, FloatArray]) -> FloatArray:
        """The disparity for every resample, comparing the same two groups each time."""
        if self.component is None or self.hi is None or self.lo is None:
            first = next(iter(rates.values()))
            return np.full(first.shape[0], np.nan)
        r = rates[self.component]
        hi, lo = r[:, self.hi], r[:, self.lo]
        if self.kind == "difference":
            return np.asarray(hi - lo, dtype=np.float64)
        return np.divide(lo, hi, out=np.full_like(lo, np.nan), where=hi > 0)


def choose_gap(metric: str, full: dict[str, FloatArray], judged: npt.NDArray[np.bool_]) -> Gap:
    comps, kind = DISPARITY_SPECS[metric]
    best: Gap = Gap(metric, None, None, None, kind)
    best_value: float | None = None
    for comp in comps:
        vals = np.where(judged, full[comp], np.nan)
        if np.sum(np.isfinite(vals)) < 2:
            continue
        hi = int(np.nanargmax(vals))
        # the last group at the minimum, so a tie still names two different groups
        lo = len(vals) - 1 - int(np.nanargmin(vals[::-1]))
        if kind == "difference":
            value = float(vals[hi] - vals[lo])
            better = best_value is None or value > best_value
        else:
            value = float(vals[lo] / vals[hi]) if vals[hi] > 0 else float("nan")
            better = best_value is None or (np.isfinite(value) and value < best_value)
        if better:
            best, best_value = Gap(metric, comp, hi, lo, kind), value
    return best


@dataclass
class ModelAudit:
    """One model's audit: per-feature gaps, point values, bootstrap statistics."""

    task: TaskMetrics
    groups: list[GroupMetrics]
    disparities: dict[str, dict[str, Disparity]]  # feature -> metric -> disparity
    samples: dict[str, dict[str, FloatArray]]  # feature -> metric -> bootstrap statistic
    worst: dict[str, str]  # metric -> feature with the worst value
    worst_samples: dict[str, FloatArray]


def audit_predictions(
    *,
    y_true: IntArray,
    y_pred: IntArray,
    score: FloatArray | None,
    views: Sequence[FeatureView],
    labels: tuple[str, str],
    settings: Settings,
) -> ModelAudit:
    """Group metrics, disparities and intervals for one model's predictions."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    n = len(y_true)
    blocks = [confusion_columns(v, y_true, y_pred) for v in views]
    overall = np.zeros((n, 4), dtype=np.float64)
    overall[np.arange(n), 2 * y_true + y_pred] = 1.0
    matrix = np.concatenate([overall, *blocks], axis=1)
    boot = bootstrap_counts(matrix, resamples=settings.resamples, seed=settings.seed)
    full = matrix.sum(axis=0)

    # task metrics
    tn, fp, fn, tp = (boot[:, i] for i in range(4))
    acc_b = (tn + tp) / n
    f1_b = np.divide(
        2 * tp, 2 * tp + fp + fn, out=np.full_like(tp, np.nan), where=(2 * tp + fp + fn) > 0
    )
    auc = None
    if score is not None and 0 < int(y_true.sum()) < n:
        auc = float(roc_auc_score(y_true, score))
    acc_ci, f1_ci = (
        percentile_ci(acc_b, settings.confidence),
        percentile_ci(f1_b, settings.confidence),
    )
    task = TaskMetrics(
        n=n,
        positive_label=labels[0],
        labels=labels,
        accuracy=float(accuracy_score(y_true, y_pred)),
        accuracy_ci=(acc_ci[0] or 0.0, acc_ci[1] or 0.0),
        f1=float(f1_score(y_true, y_pred, pos_label=1, zero_division=0)),
        f1_ci=(f1_ci[0] or 0.0, f1_ci[1] or 0.0),
        auc=auc,
        selection_rate=float(y_pred.mean()),
    )

    groups: list[GroupMetrics] = []
    disparities: dict[str, dict[str, Disparity]] = {}
    samples: dict[str, dict[str, FloatArray]] = {}
    offset = 4
    for view, block in zip(views, blocks, strict=True):
        g = len(view.groups)
        width = block.shape[1]
        counts_b = boot[:, offset : offset + width].reshape(-1, g, 4)
        counts_full = full[offset : offset + width].reshape(g, 4)
        offset += width
        rates_b = rates_from_counts(counts_b)
        rates_full = rates_from_counts(counts_full)
        judged = view.counts >= settings.min_group_size
        mf = metric_frame(y_true, y_pred, view.codes)
        by_group = mf.by_group
        for k, name in enumerate(view.groups):
            row = by_group.loc[k]
            metrics = {}
            for m in GROUP_METRICS:
                lo, hi = percentile_ci(rates_b[m][:, k], settings.confidence)
                metrics[m] = Interval(value=finite_or_none(row[m]), ci_low=lo, ci_high=hi)
            groups.append(
                GroupMetrics(
                    feature=view.name,
                    group=name,
                    count=int(row["count"]),
                    positives=int(counts_full[k, 2] + counts_full[k, 3]),
                    too_small=not bool(judged[k]),
                    **metrics,
                )
            )
        disparities[view.name], samples[view.name] = _disparities(
            view,
            judged,
            y_true,
            y_pred,
            rates_full,
            rates_b,
            settings,
            mf if judged.all() else None,
        )

    worst: dict[str, str] = {}
    worst_samples: dict[str, FloatArray] = {}
    single = [v.name for v in views if SEP not in v.name] or [views[0].name]
    for metric in DISPARITY_METRICS:
        candidates = [(f, disparities[f][metric].value) for f in single]
        defined = [(f, v) for f, v in candidates if v is not None]
        if not defined:
            worst[metric] = single[0]
        elif DISPARITY_SPECS[metric][1] == "difference":
            worst[metric] = max(defined, key=lambda t: t[1])[0]
        else:
            worst[metric] = min(defined, key=lambda t: t[1])[0]
        worst_samples[metric] = samples[worst[metric]][metric]
    return ModelAudit(task, groups, disparities, samples, worst, worst_samples)


def _disparities(
    view: FeatureView,
    judged: npt.NDArray[np.bool_],
    y_true: IntArray,
    y_pred: IntArray,
    rates_full: dict[str, FloatArray],
    rates_b: dict[str, FloatArray],
    settings: Settings,
    all_groups_frame: Any = None,
) -> tuple[dict[str, Disparity], dict[str, FloatArray]]:
    """fairlearn's between-groups difference / ratio over the judged groups, with intervals."""
    out: dict[str, Disparity] = {}
    stats: dict[str, FloatArray] = {}
    rows = judged[view.codes]
    mf = all_groups_frame
    if mf is None and judged.sum() >= 2:  # a frame over the judged groups' rows only
        mf = metric_frame(y_true[rows], y_pred[rows], view.codes[rows])
    for metric in DISPARITY_METRICS:
        comps, kind = DISPARITY_SPECS[metric]
        gap = choose_gap(metric, rates_full, judged)
        stats[metric] = gap.stat(rates_b)
        value: float | None = None
        if mf is not None:
            agg = mf.difference() if kind == "difference" else mf.ratio()
            vals = [finite_or_none(agg[c]) for c in comps]
            defined = [v for v in vals if v is not None]
            if defined:
                value = max(defined) if kind == "difference" else min(defined)
        lo, hi = (
            percentile_ci(stats[metric], settings.confidence) if value is not None else (None, None)
        )
        pair = (
            () if gap.hi is None or gap.lo is None else (view.groups[gap.hi], view.groups[gap.lo])
        )
        out[metric] = Disparity(
            value=value,
            ci_low=lo,
            ci_high=hi,
            feature=view.name,
            groups=pair,
            component=gap.component if len(comps) > 1 else None,
        )
    return out, stats


def too_small(views: Sequence[FeatureView], min_size: int) -> list[TooSmallGroup]:
    return [
        TooSmallGroup(feature=v.name, group=g, count=int(c))
        for v in views
        for g, c in zip(v.groups, v.counts, strict=True)
        if c < min_size
    ]


def effect(
    base: float | None, tuned: float | None, samples: FloatArray, confidence: float
) -> Effect:
    """Fine-tuned minus base, with the paired interval from ``samples`` (tuned_b - base_b)."""
    delta = None if base is None or tuned is None else tuned - base
    lo, hi = percentile_ci(samples, confidence) if delta is not None else (None, None)
    return Effect(delta=delta, ci_low=lo, ci_high=hi, base=base, finetuned=tuned)
