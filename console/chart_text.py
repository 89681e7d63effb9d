"""What each chart of the release page shows, in words: the images' alternative text.

Read from the same evidence fields the charts draw (:mod:`finetrail.reports.charts`,
:mod:`finetrail.reports.charts_fairness`), so that a reader without the image gets the figures
the image shows. A chart the evidence cannot draw is not shown as an image at all: the page shows
the dossier's sentence saying which evidence is missing.
"""

from __future__ import annotations

from finetrail.reports.loader import Evidence, get
from finetrail.reports.model import fmt

MAX_ITEMS = 8  # items listed per chart before "and N more"


def _list(items: list[str]) -> str:
    shown = items[:MAX_ITEMS]
    more = len(items) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _limits(ev: Evidence, path: str) -> str:
    from finetrail.reports.charts import policy_limits

    lims = policy_limits(ev).get(path, [])
    return (" Policy limit: " + ", ".join(lim.text for lim in lims) + ".") if lims else ""


def epsilon(ev: Evidence) -> str:
    curve = [p for p in get(ev.training, "dp.epsilon_per_step") or [] if isinstance(p, dict)]
    if not curve:
        return ""
    first, last = curve[0], curve[-1]
    return (
        f"Line chart of the privacy loss epsilon spent over training steps "
        f"({get(ev.training, 'dp.accountant') or 'accountant not recorded'} accountant, delta "
        f"{fmt(get(ev.training, 'dp.delta'))}): epsilon {fmt(first.get('epsilon'))} at step "
        f"{fmt(first.get('step'))}, rising to {fmt(last.get('epsilon'))} at step "
        f"{fmt(last.get('step'))} ({len(curve)} points)." + _limits(ev, "training.dp.epsilon")
    )


def exposure(ev: Evidence) -> str:
    rec = ev.probes.get("exposure")
    by_rep = get(rec, "by_repetition")
    if not isinstance(by_rep, dict) or not by_rep:
        return ""
    items = [
        f"inserted {k}x (n={fmt(get(v, 'n'))}): mean {fmt(get(v, 'mean_bits'))} bits, max "
        f"{fmt(get(v, 'max_bits'))}"
        for k, v in sorted(by_rep.items(), key=lambda kv: str(kv[0]).zfill(8))
    ]
    controls = get(rec, "controls")
    if isinstance(controls, dict):
        items.insert(0, f"never inserted (n={fmt(get(controls, 'n'))}): mean "
                        f"{fmt(get(controls, 'mean_bits'))} bits")  # fmt: skip
    return (
        "Bar chart of canary exposure in bits by how often each canary was inserted into the "
        f"training data: {_list(items)}." + _limits(ev, "probes.exposure.max_bits")
    )


def membership(ev: Evidence) -> str:
    attacks = get(ev.probes.get("membership"), "attacks")
    if not isinstance(attacks, dict) or not attacks:
        return ""
    items = [
        f"{name}: AUC {fmt(get(a, 'auc'))}, true positive rate {fmt(get(a, 'tpr_at_1pct_fpr'))} "
        "at 1% false positives"
        for name, a in sorted(attacks.items())
    ]
    return (
        "ROC curves of the membership-inference attacks against the chance diagonal "
        f"(AUC 0.5): {_list(items)}." + _limits(ev, "probes.membership.max_auc")
    )


def bias(ev: Evidence) -> str:
    from finetrail.reports.charts_fairness import fairness_panels

    parts = []
    for p in fairness_panels(ev):
        rows = [
            f"{r.name} {fmt(r.value) if r.value is not None else (r.note or 'not measured')}"
            for r in p.rows
        ]
        parts.append(f"{p.title}: {_list(rows)}")
    if not parts:
        return ""
    return "Bar charts of the bias audit. " + ". ".join(parts) + "."


def lineage(ev: Evidence) -> str:
    t = ev.training
    if not ev.datasets and t is None:
        return ""
    records = {str(d.get("sha256")): d for d in ev.datasets}

    def name(sha: str) -> str:
        d = records.get(sha)
        return str(d.get("name")) if d else f"unregistered {sha[:10]}"

    def ancestry(sha: str, seen: set[str]) -> str:
        parents = [str(x) for x in (records.get(sha) or {}).get("derived_from") or []]
        fresh = [x for x in parents if x not in seen]
        seen.update(fresh)
        return "".join(f", derived from {name(x)}{ancestry(x, seen)}" for x in fresh)

    used = [
        f"{name(str(d.get('sha256')))} ({d.get('role') or '?'})"
        + ancestry(str(d.get("sha256")), {str(d.get("sha256"))})
        for d in (get(t, "datasets") or [])
        if isinstance(d, dict)
    ]
    gate = ev.gates[-1] if ev.gates else None
    return (
        "Lineage graph: "
        + (f"the datasets the run read, {_list(used)}" if used else "no dataset the run read")
        + f"; the base model {str(get(t, 'base_model.weights_sha256') or 'not recorded')[:12]}"
        + f"; the fine-tune ({get(t, 'method') or 'no training record'})"
        + f"; the adapter {str(get(t, 'adapter.sha256') or 'not recorded')[:12]}"
        + (
            f"; the gate ({'passed' if gate.get('passed') is True else 'failed'})."
            if gate
            else "; no gate decision."
        )
    )


TEXTS = {
    "epsilon": epsilon,
    "exposure": exposure,
    "membership": membership,
    "bias": bias,
    "lineage": lineage,
}


def chart_alt(ev: Evidence) -> dict[str, str]:
    """name -> what the chart shows ("" when the evidence draws no such chart)."""
    out: dict[str, str] = {}
    for name, text in TEXTS.items():
        try:
            out[name] = text(ev)
        except (TypeError, ValueError, AttributeError):  # odd evidence: say what it is
            out[name] = f"{name} chart (its figures could not be read for this description)"
    return out
