"""SVG charts for the dossier, drawn with matplotlib's SVG backend (no pyplot, no global state).

Deterministic: a fixed ``svg.hashsalt``, no date metadata, text kept as ``<text>`` (escaped by
matplotlib; ``$`` is escaped so no label is parsed as mathtext), and every id prefixed per chart so
several inline SVGs never share an id. Each function returns ``None`` when its evidence is absent.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

from finetrail.reports.loader import Evidence, get, num

_RC: dict[str, Any] = {
    "svg.hashsalt": "finetrail",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
BLUE, ORANGE, GREY, RED, GREEN = "#1f5fa8", "#d9822b", "#8a8f98", "#b3261e", "#2e7d32"


@dataclass(frozen=True)
class Limit:
    """A policy limit on one evidence path, as the latest gate decision applied it."""

    rule: str
    path: str
    op: str
    threshold: float

    @property
    def text(self) -> str:
        return f"{self.rule} {self.op} {self.threshold:g}"


def policy_limits(ev: Evidence) -> dict[str, list[Limit]]:
    """path -> the numeric limits the latest gate decision checked there (its outcomes' ``path``,
    ``op`` and ``threshold``); empty without a decision. Charts draw these, never a default."""
    if not ev.gates:
        return {}
    out: dict[str, list[Limit]] = {}
    for o in ev.gates[-1].get("outcomes") or []:
        if not isinstance(o, dict):
            continue
        t, path, op = o.get("threshold"), o.get("path"), o.get("op")
        if isinstance(t, bool) or not isinstance(t, int | float) or not path or not op:
            continue
        out.setdefault(str(path), []).append(
            Limit(str(o.get("rule")), str(path), str(op), float(t))
        )
    return out


def _limit_lines(ax: Any, limits: list[Limit], *, horizontal: bool = True) -> None:
    for lim in limits:
        draw = ax.axhline if horizontal else ax.axvline
        draw(lim.threshold, color=RED, ls="-.", lw=1.2, label=label(f"policy: {lim.text}", 60))


def label(text: Any, limit: int = 36) -> str:
    """A chart label: no mathtext, bounded length."""
    s = str(text).replace("\\", "/").replace("$", r"\$")
    s = re.sub(r"\s+", " ", s)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _svg(fig: Any, key: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"finetrail-{key}"}):
        fig.savefig(
            buf, format="svg", metadata={"Date": None, "Creator": "finetrail"}, bbox_inches="tight"
        )
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'id="([^"]+)"', rf'id="{key}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", text)
    text = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{key}-\1"', text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{key} chart" ', 1)


def _figure(w: float = 6.4, h: float = 3.2) -> Any:
    import matplotlib

    params: Any = matplotlib.rcParams  # typed by literal key names; ours are checked at run time
    params.update(_RC)
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def epsilon_curve(ev: Evidence) -> str | None:
    """Epsilon over training steps, from ``training.dp.epsilon_per_step`` ([{step, epsilon}])."""
    curve = get(ev.training, "dp.epsilon_per_step")
    if not isinstance(curve, list) or not curve:
        return None
    pts = []
    for p in curve:
        step = (
            num(p.get("step"))
            if isinstance(p, dict)
            else num(p[0])
            if isinstance(p, list)
            else None
        )
        eps = (
            num(p.get("epsilon"))
            if isinstance(p, dict)
            else num(p[1])
            if isinstance(p, list)
            else None
        )
        if step is not None and eps is not None:
            pts.append((step, eps))
    if not pts:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(
        [p[0] for p in pts],
        [p[1] for p in pts],
        color=BLUE,
        lw=1.8,
        label=f"epsilon ({label(get(ev.training, 'dp.accountant') or 'accountant n/a')})",
    )
    _limit_lines(ax, policy_limits(ev).get("training.dp.epsilon", []))
    delta = num(get(ev.training, "dp.delta"))
    ax.set_xlabel("training step")
    ax.set_ylabel("epsilon" + (f" at delta={delta:.3g}" if delta is not None else ""))
    ax.set_title("Privacy spent over training")
    ax.legend(loc="upper left", frameon=False)
    return _svg(fig, "eps")


def exposure(ev: Evidence) -> str | None:
    """Canary exposure (bits) by number of repetitions in the training data, beside the canaries
    that were never inserted (the controls: what exposure reads when nothing was learnt), with the
    policy's limit on the largest exposure where a rule sets one."""
    rec = ev.probes.get("exposure")
    by_rep = get(rec, "by_repetition")
    if not isinstance(by_rep, dict) or not by_rep:
        return None
    keys = sorted(by_rep, key=lambda k: (float(k) if re.fullmatch(r"\d+(\.\d+)?", k) else 1e9, k))
    groups = [(f"{label(k, 8)}x\n(n={fmt_n(get(by_rep[k], 'n'))})", by_rep[k]) for k in keys]
    controls = get(rec, "controls")
    has_controls = isinstance(controls, dict)
    if has_controls:
        groups.insert(0, (f"never\ninserted\n(n={fmt_n(get(controls, 'n'))})", controls))
    means = [num(get(g, "mean_bits")) for _, g in groups]
    maxes = [num(get(g, "max_bits")) for _, g in groups]
    fig = _figure()
    ax = fig.add_subplot()
    xs = list(range(len(groups)))
    first = 1 if has_controls else 0
    if has_controls:
        ax.bar(
            [-0.2, 0.2],
            [means[0] or 0.0, maxes[0] or 0.0],
            width=0.4,
            color=[GREY, "#5f6570"],
            label="controls, never inserted (mean, max)",
        )
    ax.bar(
        [x - 0.2 for x in xs[first:]],
        [v or 0.0 for v in means[first:]],
        width=0.4,
        color=BLUE,
        label="mean exposure",
    )
    ax.bar(
        [x + 0.2 for x in xs[first:]],
        [v or 0.0 for v in maxes[first:]],
        width=0.4,
        color=ORANGE,
        label="max exposure",
    )
    for x, mean, mx in zip(xs, means, maxes, strict=True):
        if mean is None and mx is None:
            ax.text(x, 0.2, "not recorded", ha="center", fontsize=7.5)
    space = num(get(rec, "space_bits"))
    if space is not None:
        ax.axhline(space, color=RED, ls="--", lw=1, label=f"maximum possible ({space:.3g} bits)")
    limits = policy_limits(ev).get("probes.exposure.max_bits", [])
    _limit_lines(ax, limits)
    ax.set_xticks(xs, [g[0] for g in groups])
    top = [space or 0.0, *(v or 0.0 for v in maxes), *(lim.threshold for lim in limits), 1.0]
    ax.set_ylim(0, max(top) * 1.08)
    ax.set_xlabel("repetitions of the canary in the training data")
    ax.set_ylabel("exposure (bits)")
    ax.set_title("Canary exposure by repetition")
    fig.legend(loc="outside right upper", frameon=False)
    return _svg(fig, "exposure")


def fmt_n(v: Any) -> str:
    return str(v) if isinstance(v, int) else "?"


def membership_roc(ev: Evidence) -> str | None:
    """Membership-inference ROC per attack (curve when recorded, else the TPR at 1% FPR point)."""
    attacks = get(ev.probes.get("membership"), "attacks")
    if not isinstance(attacks, dict) or not attacks:
        return None
    fig = _figure(5.2, 4.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color=GREY, ls="--", lw=1, label="chance (AUC 0.5)")
    colors = [BLUE, ORANGE, GREEN, RED, GREY]
    for i, name in enumerate(sorted(attacks)):
        a = attacks[name] if isinstance(attacks[name], dict) else {}
        auc = num(a.get("auc"))
        lab = f"{label(name, 24)} (AUC {auc:.3f})" if auc is not None else label(name, 24)
        roc = a.get("roc")  # [(fpr, tpr), ...] as MembershipEvidence records it
        pairs = (
            [p for p in roc if isinstance(p, list) and len(p) == 2] if isinstance(roc, list) else []
        )
        fpr, tpr = [p[0] for p in pairs], [p[1] for p in pairs]
        c = colors[i % len(colors)]
        if isinstance(fpr, list) and isinstance(tpr, list) and len(fpr) == len(tpr) > 1:
            ax.plot(
                [num(x) or 0.0 for x in fpr],
                [num(y) or 0.0 for y in tpr],
                color=c,
                lw=1.6,
                label=lab,
            )
        else:
            t = num(a.get("tpr_at_1pct_fpr"))
            if t is not None:
                ax.plot([0.01], [t], "o", color=c, label=lab + " at 1% FPR")
    for lim in policy_limits(ev).get("probes.membership.max_auc", []):
        ax.plot([], [], " ", label=label(f"policy: {lim.text} (an AUC, not a point here)", 60))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Membership inference ROC")
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    return _svg(fig, "mia")


def bias_bars(ev: Evidence) -> str | None:
    """The fairness chart (:mod:`finetrail.reports.charts_fairness`)."""
    from finetrail.reports.charts_fairness import bias_bars as draw

    return draw(ev)


def lineage(ev: Evidence) -> str | None:
    """The provenance graph: the datasets the run read (with their roles) and everything they
    derive from, the base model, the run, the adapter and the gate. Registered datasets the run
    did not read, and that nothing it read derives from, are not drawn (the table lists them)."""
    import networkx as nx

    if not ev.datasets and ev.training is None:
        return None
    records = {str(d.get("sha256")): d for d in ev.datasets}
    t = ev.training
    used = {
        str(d["sha256"]): str(d.get("role") or "")
        for d in (get(t, "datasets") or [])
        if isinstance(d, dict) and d.get("sha256")
    }
    g = nx.DiGraph()
    names: dict[str, str] = {}
    if t is None:  # no run: the registered datasets and their lineage
        stack = sorted(records)
    else:
        stack = sorted(used)
    seen: set[str] = set()
    while stack:
        sha = stack.pop()
        if sha in seen:
            continue
        seen.add(sha)
        d = records.get(sha)
        role = f" ({used[sha]})" if used.get(sha) else ""
        if d is None:
            names[sha] = f"unregistered\n{sha[:10]}{role}"
        else:
            names[sha] = f"dataset\n{label(d.get('name'), 22)}\n{sha[:10]}{role}"
        g.add_node(sha)
        for parent in (d or {}).get("derived_from") or []:
            p = str(parent)
            g.add_edge(p, sha)
            stack.append(p)
    if t is not None:
        bm = str(get(t, "base_model.weights_sha256") or "unknown")
        names["base"] = f"base model\n{bm[:10]}"
        names["run"] = f"fine-tune\n{label(t.get('method') or '?', 12)}"
        g.add_edge("base", "run")
        for sha in sorted(used):
            g.add_edge(sha, "run")
        ad = str(get(t, "adapter.sha256") or "unknown")
        names["adapter"] = f"adapter\n{ad[:10]}"
        g.add_edge("run", "adapter")
        if ev.gates:
            last = ev.gates[-1]
            from finetrail.reports.model import gate_warnings  # the verdict's own count

            warned = len(gate_warnings(last))
            names["gate"] = (
                "gate\n"
                + ("passed" if last.get("passed") is True else "failed")
                + (f"\n{warned} warning{'s' * (warned != 1)}" if warned else "")
            )
            g.add_edge("adapter", "gate")
    if not nx.is_directed_acyclic_graph(g):
        return None
    # Place every node as late as possible (one column before its earliest successor), so the
    # base model and the datasets line up in the column before the run instead of crossing boxes.
    depth: dict[str, int] = {}
    for node in reversed(list(nx.topological_sort(g))):
        succ = [depth[s] for s in g.successors(node)]
        depth[node] = min(succ) - 1 if succ else 0
    low = min(depth.values())
    rank = {"base model": 0, "unregistered": 1, "dataset": 2}
    layers: list[list[str]] = [[] for _ in range(max(depth.values()) - low + 1)]
    for node in sorted(
        g.nodes(), key=lambda n: (rank.get(names.get(n, "").split("\n")[0], 3), names.get(n, n))
    ):
        layers[depth[node] - low].append(node)
    pos: dict[str, tuple[float, float]] = {}
    tallest = max(len(layer) for layer in layers)
    for x, layer in enumerate(layers):
        for i, node in enumerate(layer):
            pos[node] = (float(x), (len(layer) - 1) / 2 - i)
    fig = _figure(max(6.4, 1.7 * len(layers)), max(2.4, 1.0 * tallest + 0.8))
    ax = fig.add_subplot()
    ax.set_axis_off()
    for a, b in sorted(g.edges()):
        ax.annotate(
            "",
            xy=pos[b],
            xytext=pos[a],
            arrowprops={
                "arrowstyle": "-|>",
                "color": GREY,
                "lw": 1.2,
                "shrinkA": 34,
                "shrinkB": 34,
            },
        )
    for node in sorted(g.nodes()):
        kind = names.get(node, node).split("\n")[0]
        color = {
            "dataset": "#e3edf8",
            "unregistered": "#eef0f3",
            "base model": "#fdf0e2",
            "fine-tune": "#f3e8f8",
            "adapter": "#e6f4ea",
            "gate": "#fff7d6",
        }.get(kind, "#fff")
        ax.text(
            *pos[node],
            names.get(node, node),
            ha="center",
            va="center",
            fontsize=7.5,
            bbox={"boxstyle": "round,pad=0.45", "fc": color, "ec": "#667"},
        )
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ys = [p[1] for p in pos.values()]
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.set_title("Lineage: data and models to the release decision", loc="left")
    return _svg(fig, "lineage")


def all_charts(ev: Evidence) -> dict[str, str | None]:
    return {
        "epsilon": epsilon_curve(ev),
        "exposure": exposure(ev),
        "membership": membership_roc(ev),
        "bias": bias_bars(ev),
        "lineage": lineage(ev),
    }
