"""The fairness chart: per-group rates, between-group differences and ratios, and the fine-tune's
effect, each on its own axis, with the policy's limits drawn where a rule sets one.

What is drawn is computed by :func:`fairness_panels` (tested without matplotlib); a fine-tune
effect smaller than :data:`NO_CHANGE` is shown as the words "no change", never as a bar the axis
would stretch to full width. Differences (0 is parity) and ratios (1 is parity) never share an
axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from finetrail.reports.charts import BLUE, GREY, RED, Limit, _figure, _svg, label, policy_limits
from finetrail.reports.loader import Evidence, get, num

NO_CHANGE = 1e-9  # |effect| below this is floating-point noise, not a change: shown as "no change"
MIN_EFFECT_SPAN = 0.05  # the effect axis spans at least +-this, so a small effect looks small


@dataclass(frozen=True)
class Row:
    name: str
    value: float | None  # None: drawn as the words in ``note`` instead of a bar
    low: float | None = None
    high: float | None = None
    note: str = ""
    limits: tuple[Limit, ...] = ()  # limits for this row alone
    muted: bool = False  # a group too small to be judged


@dataclass(frozen=True)
class Panel:
    key: str  # groups.accuracy, groups.selection_rate, differences, ratios, effect
    title: str
    rows: tuple[Row, ...]
    reference: float  # the parity line: 0 for differences and effects, 1 for ratios
    limits: tuple[Limit, ...] = ()  # limits for every row (a [*] rule over the groups)
    span: tuple[float, float] | None = None  # fixed x range
    notes: tuple[str, ...] = field(default_factory=tuple)


def _interval(d: Any, value_key: str) -> tuple[float | None, float | None, float | None]:
    return num(get(d, value_key)), num(get(d, "ci_low")), num(get(d, "ci_high"))


def _group_panel(
    b: dict[str, Any], metric: str, title: str, limits: dict[str, list[Limit]]
) -> Panel | None:
    rows = []
    for g in b.get("groups") or []:
        if not isinstance(g, dict) or "&" in str(g.get("feature")):
            continue  # one feature at a time; the intersection is in the tables
        value, low, high = _interval(g.get(metric), "value")
        if value is None:
            continue
        small = bool(g.get("too_small"))
        name = f"{g.get('feature')}: {g.get('group')}" + (" (too small)" if small else "")
        rows.append(Row(name, value, low, high, muted=small))
    if not rows:
        return None
    return Panel(
        key=f"groups.{metric}",
        title=title,
        rows=tuple(rows),
        reference=0.0,
        limits=tuple(limits.get(f"bias.groups[*].{metric}.value", [])),
        span=(0.0, 1.0),
    )


def _metric_limits(limits: dict[str, list[Limit]], prefix: str, metric: str) -> tuple[Limit, ...]:
    return tuple(
        lim
        for fld in ("value", "delta", "ci_low", "ci_high")
        for lim in limits.get(f"{prefix}.{metric}.{fld}", [])
    )


def fairness_panels(ev: Evidence) -> list[Panel]:
    """The panels of the fairness chart, from the bias evidence and the latest gate's limits."""
    b = ev.bias
    if b is None:
        return []
    limits = policy_limits(ev)
    panels: list[Panel] = []
    for metric, title in (
        ("selection_rate", "Selection rate per group"),
        ("accuracy", "Accuracy per group"),
    ):
        p = _group_panel(b, metric, title, limits)
        if p is not None:
            panels.append(p)
    found = b.get("disparities")
    disp: dict[str, Any] = found if isinstance(found, dict) else {}
    for kind, title, reference, span in (
        ("difference", "Differences between groups (0 is parity)", 0.0, None),
        ("ratio", "Ratios between groups (1 is parity)", 1.0, (0.0, 1.05)),
    ):
        rows = []
        for m in sorted(disp):
            if not m.endswith("_" + kind) or not isinstance(disp[m], dict):
                continue
            value, low, high = _interval(disp[m], "value")
            if value is None:
                rows.append(Row(m, None, note="not defined (a group has no positive)"))
                continue
            rows.append(
                Row(m, value, low, high, limits=_metric_limits(limits, "bias.disparities", m))
            )
        if rows:
            panels.append(Panel(kind + "s", title, tuple(rows), reference, span=span))
    found = b.get("finetune_effect")
    effect: dict[str, Any] = found if isinstance(found, dict) else {}
    rows = []
    for m in sorted(effect):
        e = effect[m]
        if not isinstance(e, dict):
            continue
        delta, low, high = _interval(e, "delta")
        lims = _metric_limits(limits, "bias.finetune_effect", m)
        if delta is None:
            rows.append(Row(m, None, note="not measured", limits=lims))
        elif abs(delta) < NO_CHANGE and all(x is None or abs(x) < NO_CHANGE for x in (low, high)):
            rows.append(Row(m, None, note=f"no change (|delta| < {NO_CHANGE:g})", limits=lims))
        else:
            rows.append(Row(m, delta, low, high, limits=lims))
    if rows:
        reach = max(
            [MIN_EFFECT_SPAN]
            + [abs(x) for r in rows for x in (r.value, r.low, r.high) if x is not None]
            + [abs(float(lim.threshold)) for r in rows for lim in r.limits]
        )
        panels.append(
            Panel(
                "effect",
                "Change caused by the fine-tune (fine-tuned minus base)",
                tuple(rows),
                0.0,
                span=(-reach * 1.15, reach * 1.15),
            )
        )
    return panels


def bias_bars(ev: Evidence) -> str | None:
    """The fairness chart (SVG), or None without bias evidence."""
    panels = fairness_panels(ev)
    if not panels:
        return None
    fig = _figure(6.4, 0.9 + 0.36 * sum(len(p.rows) + 1.8 for p in panels))
    axes = fig.subplots(
        len(panels),
        1,
        squeeze=False,
        gridspec_kw={"height_ratios": [len(p.rows) + 0.8 for p in panels]},
    )
    for ax, p in zip([a[0] for a in axes], panels, strict=True):
        ys = list(range(len(p.rows)))[::-1]
        drawn = [(y, r) for y, r in zip(ys, p.rows, strict=True) if r.value is not None]
        if drawn:
            vals = [r.value or 0.0 for _, r in drawn]
            lo = [
                max(0.0, (r.value or 0.0) - r.low) if r.low is not None else 0.0 for _, r in drawn
            ]
            hi = [
                max(0.0, r.high - (r.value or 0.0)) if r.high is not None else 0.0 for _, r in drawn
            ]
            ax.barh(
                [y for y, _ in drawn],
                [v - p.reference for v in vals],
                left=p.reference,
                xerr=[lo, hi],
                color=[GREY if r.muted else BLUE for _, r in drawn],
                ecolor="#222",
                capsize=3,
                height=0.6,
            )
        ax.set_yticks(ys, [label(r.name, 32) for r in p.rows])
        ax.axvline(p.reference, color="#444", lw=0.8)
        if p.span is not None:
            ax.set_xlim(*p.span)
        else:  # the parity line, every bar, whisker and limit in view
            xs = [p.reference] + [
                float(x) for r in p.rows for x in (r.value, r.low, r.high) if x is not None
            ]
            xs += [lim.threshold for lim in (*p.limits, *(m for r in p.rows for m in r.limits))]
            pad = 0.1 * ((max(xs) - min(xs)) or 1.0)
            ax.set_xlim(min(xs) - pad, max(xs) + pad)
        x0, x1 = ax.get_xlim()
        for y, r in zip(ys, p.rows, strict=True):
            if r.value is None:
                ax.text(
                    (x0 + x1) / 2,
                    y,
                    r.note,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="#222",
                    bbox={"boxstyle": "round,pad=0.25", "fc": "#fff7d6", "ec": "#c9a227"},
                )
            for lim in r.limits:
                ax.vlines(
                    float(lim.threshold), y - 0.4, y + 0.4, colors=RED, linestyles="--", lw=1.2
                )
        for lim in p.limits:
            ax.axvline(float(lim.threshold), color=RED, ls="--", lw=1.2)
        shown = [*p.limits, *(lim for r in p.rows for lim in r.limits)]
        if shown:
            ax.plot(
                [],
                [],
                color=RED,
                ls="--",
                lw=1.2,
                label=label("policy: " + "; ".join(sorted({lim.text for lim in shown})), 80),
            )
            ax.legend(loc="best", frameon=True, framealpha=0.9, fontsize=7)
        ax.set_title(p.title, fontsize=9, loc="left")
    fig.supxlabel(
        "whiskers: 95% interval where recorded; grey: a group too small to judge; "
        "red dashed: the policy's limit",
        fontsize=7.5,
    )
    return _svg(fig, "bias")
