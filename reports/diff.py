"""Compliance diff: what changed between two releases (two workspaces).

Compares datasets (by SHA-256), the DP guarantee, probe and audit figures, gate outcomes and
coverage (totals and each requirement's status). Rendered as text (``finetrail diff``), as JSON,
and as a section of the dossier (``finetrail report --compare``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from finetrail.reports.loader import get
from finetrail.reports.model import ReportModel, fmt

AREAS: tuple[str, ...] = ("release", "datasets", "dp", "probes", "audit", "gate", "coverage")

_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("dp", "training", "dp.enabled"),
    ("dp", "training", "dp.epsilon"),
    ("dp", "training", "dp.delta"),
    ("dp", "training", "dp.accountant"),
    ("dp", "training", "dp.noise_multiplier"),
    ("dp", "training", "dp.steps"),
    ("dp", "training", "dp.max_grad_norm"),
    ("probes", "probes.exposure", "max_bits"),
    ("probes", "probes.extraction", "memorized_rate"),
    ("probes", "probes.membership", "max_auc"),
    ("probes", "probes.membership", "exchangeability.ok"),
    ("probes", "probes.dp_audit", "empirical_epsilon_lower_bound"),
    ("probes", "probes.dp_audit", "verdict"),
    ("audit", "bias", "task.accuracy"),
    ("audit", "bias", "task.f1"),
)


@dataclass(frozen=True)
class Change:
    area: str
    item: str
    before: str
    after: str
    kind: str  # "added", "removed", "changed"


@dataclass(frozen=True)
class Diff:
    before: str
    after: str
    changes: tuple[Change, ...]

    def by_area(self) -> list[tuple[str, list[Change]]]:
        return [
            (a, [c for c in self.changes if c.area == a])
            for a in AREAS
            if any(c.area == a for c in self.changes)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "changes": [asdict(c) for c in self.changes],
        }

    def render_text(self) -> str:
        lines = [f"compliance diff: {self.before} -> {self.after}"]
        if not self.changes:
            lines.append("no changes")
        for area, changes in self.by_area():
            lines.append(f"\n[{area}]")
            for c in changes:
                sign = {"added": "+", "removed": "-", "changed": "~"}[c.kind]
                if c.kind == "changed":
                    lines.append(f"  {sign} {c.item}: {c.before} -> {c.after}")
                else:
                    lines.append(f"  {sign} {c.item}: {c.after if c.kind == 'added' else c.before}")
        lines.append(f"\n{len(self.changes)} change(s)")
        return "\n".join(lines)


def _kind_record(m: ReportModel, kind: str) -> dict[str, Any] | None:
    if kind == "training":
        return m.ev.training
    if kind == "bias":
        return m.ev.bias
    return m.ev.probes.get(kind.split(".", 1)[1])


def _label(m: ReportModel) -> str:
    return f"{m.ev.workspace.get('model')} {m.ev.workspace.get('version')}"


def diff(a: ReportModel, b: ReportModel) -> Diff:
    """The changes from release ``a`` (before) to release ``b`` (after)."""
    out: list[Change] = []

    def cmp(area: str, item: str, x: Any, y: Any) -> None:
        if x == y:
            return
        if x is None:
            out.append(Change(area, item, "", fmt(y), "added"))
        elif y is None:
            out.append(Change(area, item, fmt(x), "", "removed"))
        else:
            out.append(Change(area, item, fmt(x), fmt(y), "changed"))

    cmp("release", "version", a.ev.workspace.get("version"), b.ev.workspace.get("version"))
    cmp("release", "manifest digest", a.ev.manifest_digest, b.ev.manifest_digest)

    da = {str(d.get("sha256")): d for d in a.ev.datasets}
    db = {str(d.get("sha256")): d for d in b.ev.datasets}
    for sha in sorted(set(da) | set(db)):
        x, y = da.get(sha), db.get(sha)
        name = str((y or x or {}).get("name"))
        item = f"{name} ({sha[:12]})"
        if x is None:
            out.append(Change("datasets", item, "", f"{fmt(get(y, 'records'))} records", "added"))
        elif y is None:
            out.append(Change("datasets", item, f"{fmt(get(x, 'records'))} records", "", "removed"))
        else:
            for field in ("records", "license", "pii.records_with_pii"):
                cmp("datasets", f"{item} {field}", get(x, field), get(y, field))

    for area, kind, path in _FIGURES:
        cmp(
            area,
            f"{kind}.{path}",
            get(_kind_record(a, kind), path),
            get(_kind_record(b, kind), path),
        )
    for m_name in sorted(
        set((get(a.ev.bias, "disparities") or {}).keys())
        | set((get(b.ev.bias, "disparities") or {}).keys())
    ):
        cmp(
            "audit",
            f"bias.disparities.{m_name}",
            get(a.ev.bias, f"disparities.{m_name}.value"),
            get(b.ev.bias, f"disparities.{m_name}.value"),
        )

    ga = a.ev.gates[-1] if a.ev.gates else None
    gb = b.ev.gates[-1] if b.ev.gates else None
    cmp("gate", "verdict", a.verdict.status, b.verdict.status)
    cmp("gate", "latest decision passed", get(ga, "passed"), get(gb, "passed"))
    cmp("gate", "policy", get(ga, "policy_id"), get(gb, "policy_id"))
    rules_a = {r["id"]: r["passed"] for g in a.gates[-1:] for r in g["rules"]}
    rules_b = {r["id"]: r["passed"] for g in b.gates[-1:] for r in g["rules"]}
    for rid in sorted(set(rules_a) | set(rules_b)):
        cmp("gate", f"rule {rid} passed", rules_a.get(rid), rules_b.get(rid))
    cmp("gate", "approvals", a.approvals, b.approvals)

    ca = {c.key: c for c in a.coverages}
    for cb in b.coverages:
        before = ca.get(cb.key)
        if before is None:
            continue
        ta, tb = before.totals, cb.totals
        for status in sorted(set(ta) | set(tb)):
            if status != "total":
                cmp("coverage", f"{cb.key} {status}", ta.get(status, 0), tb.get(status, 0))
        sa = {r.id: r.status for r in before.rows}
        for r in cb.rows:
            cmp("coverage", f"{cb.key} {r.id}", sa.get(r.id), r.status)
    return Diff(before=_label(a), after=_label(b), changes=tuple(out))
