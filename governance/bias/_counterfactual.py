"""Counterfactual probes: prompts in which only a demographic term changes.

The probe set (``governance/data/counterfactual_probes.yaml``, user-extensible) has templates and,
per attribute, substitution sets mapping each group to its terms. Each (template, set) is one
unit; its prompts differ only in the attribute's terms. Per pair (reference group vs another
group of the same unit) the audit records the change in P(positive) and whether the decision
flips; per group the selection rate over the variants, and fairlearn's demographic parity
difference between groups. Intervals come from a bootstrap over units (pairs stay together).
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from importlib import resources

import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationError, model_validator

from finetrail.governance.bias._metrics import (
    Settings,
    bootstrap_counts,
    finite_or_none,
    percentile_ci,
)
from finetrail.governance.bias._scoring import Scorer, predict
from finetrail.governance.evidence.base import Frozen, validation_error_to_input_error
from finetrail.governance.evidence.bias import (
    CounterfactualAttribute,
    CounterfactualResult,
    Disparity,
    Interval,
)
from finetrail.governance.io import decode_utf8, load_yaml_strict, read_bytes_strict, sha256_bytes

DEFAULT_PROBES = "counterfactual_probes.yaml"


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class ProbeSet(Frozen):
    schema_version: int = Field(default=1, ge=1, le=1)
    defaults: dict[str, str]
    templates: tuple[str, ...] = Field(min_length=1)
    attributes: dict[str, tuple[dict[str, dict[str, str]], ...]] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ProbeSet:
        used = set().union(*(_placeholders(t) for t in self.templates))
        unknown = used - set(self.defaults)
        if unknown:
            raise ValueError(f"templates use placeholders without a default: {sorted(unknown)}")
        for attr, sets in self.attributes.items():
            if not sets:
                raise ValueError(f"attribute {attr!r} has no substitution sets")
            for k, subs in enumerate(sets):
                if len(subs) < 2:
                    raise ValueError(f"attributes.{attr}[{k}]: needs at least two groups")
                for group, values in subs.items():
                    extra = set(values) - used
                    if extra:
                        raise ValueError(
                            f"attributes.{attr}[{k}].{group}: placeholders {sorted(extra)} appear "
                            "in no template"
                        )
        return self


def load_probes(path: str | os.PathLike[str] | None = None) -> tuple[ProbeSet, str]:
    """The probe set (the shipped one when ``path`` is None) and its SHA-256."""
    if path is None:
        raw = resources.files("finetrail.governance").joinpath("data", DEFAULT_PROBES).read_bytes()
        source = f"finetrail.governance/data/{DEFAULT_PROBES}"
    else:
        raw = read_bytes_strict(path)
        source = str(path)
    text = decode_utf8(raw, source)
    data = load_yaml_strict(text, source=source)
    try:
        return ProbeSet.model_validate(data), sha256_bytes(raw)
    except ValidationError as exc:
        raise validation_error_to_input_error(exc, source=source, what="invalid probe set") from exc


def _variants(probes: ProbeSet, attr: str) -> tuple[list[str], list[int], list[str], list[str]]:
    """Prompts with their unit index and group, and the attribute's groups in first-seen order."""
    prompts: list[str] = []
    units: list[int] = []
    groups: list[str] = []
    order: list[str] = []
    unit = 0
    for template in probes.templates:
        for subs in probes.attributes[attr]:
            for group, values in subs.items():
                prompts.append(template.format_map({**probes.defaults, **values}))
                units.append(unit)
                groups.append(group)
                if group not in order:
                    order.append(group)
            unit += 1
    return prompts, units, groups, order


def run_counterfactual(
    *, probes: ProbeSet, sha256: str, scorer: Scorer, settings: Settings
) -> CounterfactualResult:
    """Score every variant once and summarise each attribute's pairs."""
    out: dict[str, CounterfactualAttribute] = {}
    for attr in probes.attributes:
        prompts, units, groups, order = _variants(probes, attr)
        y_pred, p_pos = predict(scorer, prompts)
        out[attr] = _summarise(attr, np.array(units), groups, order, y_pred, p_pos, settings)
    return CounterfactualResult(
        source_sha256=sha256, templates=len(probes.templates), attributes=out
    )


def _summarise(
    attr: str,
    units: npt.NDArray[np.int64],
    groups: Sequence[str],
    order: Sequence[str],
    y_pred: npt.NDArray[np.int64],
    p_pos: npt.NDArray[np.float64],
    settings: Settings,
) -> CounterfactualAttribute:
    from fairlearn.metrics import MetricFrame, demographic_parity_difference, selection_rate

    n_units = int(units.max()) + 1
    g_index = {g: k for k, g in enumerate(order)}
    # per unit: sum of change, of |change|, of flips, number of pairs; then per group: n, positives
    mat = np.zeros((n_units, 4 + 2 * len(order)), dtype=np.float64)
    changes: list[float] = []
    for u in range(n_units):
        rows = np.flatnonzero(units == u)
        ref = rows[0]  # the first group of the set is the reference
        for r in rows[1:]:
            change = float(p_pos[r] - p_pos[ref])
            changes.append(change)
            mat[u, 0] += change
            mat[u, 1] += abs(change)
            mat[u, 2] += float(y_pred[r] != y_pred[ref])
            mat[u, 3] += 1
        for r in rows:
            k = g_index[groups[int(r)]]
            mat[u, 4 + 2 * k] += 1
            mat[u, 5 + 2 * k] += float(y_pred[r])
    boot = bootstrap_counts(mat, resamples=settings.resamples, seed=settings.seed)
    full = mat.sum(axis=0)
    pairs = boot[:, 3]

    def mean_of(col: int) -> Interval:
        samples = np.divide(boot[:, col], pairs, out=np.full_like(pairs, np.nan), where=pairs > 0)
        lo, hi = percentile_ci(samples, settings.confidence)
        return Interval(value=float(full[col] / full[3]), ci_low=lo, ci_high=hi)

    sel_b = np.divide(
        boot[:, 5::2],
        boot[:, 4::2],
        out=np.full_like(boot[:, 4::2], np.nan),
        where=boot[:, 4::2] > 0,
    )
    group_arr = np.array(groups)
    mf = MetricFrame(
        metrics=selection_rate, y_true=y_pred, y_pred=y_pred, sensitive_features=group_arr
    )
    selection: dict[str, Interval] = {}
    point = np.zeros(len(order))
    for g, k in g_index.items():
        point[k] = float(mf.by_group.loc[g])
        lo, hi = percentile_ci(sel_b[:, k], settings.confidence)
        selection[g] = Interval(value=point[k], ci_low=lo, ci_high=hi)
    hi_k, lo_k = int(np.argmax(point)), int(np.argmin(point))
    dp_lo, dp_hi = percentile_ci(sel_b[:, hi_k] - sel_b[:, lo_k], settings.confidence)
    dp = Disparity(
        value=finite_or_none(
            demographic_parity_difference(y_pred, y_pred, sensitive_features=group_arr)
        ),
        ci_low=dp_lo,
        ci_high=dp_hi,
        feature=attr,
        groups=(order[hi_k], order[lo_k]),
    )
    return CounterfactualAttribute(
        attribute=attr,
        groups=tuple(order),
        pairs=len(changes),
        reference_group=order[0],
        mean_change=mean_of(0),
        mean_abs_change=mean_of(1),
        max_abs_change=float(max(abs(c) for c in changes)) if changes else 0.0,
        flip_share=mean_of(2),
        selection_rate=selection,
        demographic_parity_difference=dp,
    )
