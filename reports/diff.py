"""Compliance diff: what changed between two releases (two workspaces).

Compares the release (version, manifest digest, adapter and base-model digests), the training
method and its hyperparameters (``method_config``, the config's optimiser, privacy and data
settings, the seed, the config's digest), datasets (by SHA-256, and the part each plays in the
run), the DP guarantee, probe and audit figures, the policy (id, version, digest), gate outcomes,
approvals (count, sign-off, who) and coverage (totals and each requirement's status). Rendered as text (``finetrail diff``), as JSON,
and as a section of the dossier (``finetrail report --compare``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from finetrail.reports.loader import get
from finetrail.reports.model import ReportModel, fmt

AREAS: tuple[str, ...] = (
    "release",
    "training",
    "datasets",
    "dp",
    "probes",
    "audit",
    "policy",
    "gate",
    "approvals",
    "coverage",
)
# the parts of training.json's config that are hyperparameters (the rest are paths and names)
_CONFIG_SECTIONS: tuple[str, ...] = ("optim", "privacy", "data.max_length", "data.format")

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


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"prefix.a.b": 1}``; lists as their JSON text."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(_flat(value[k], f"{prefix}.{k}"))
        return out
    if isinstance(value, list | tuple):
        return {prefix: json.dumps(list(value), sort_keys=True)}
    return {prefix: value}


def hyperparameters(training: dict[str, Any] | None) -> dict[str, Any]:
    """The run's method settings and hyperparameters as flat ``path -> value`` (empty without a
    run): ``method_config.*``, ``config.optim.*``, ``config.privacy.*``, ``config.data.max_length``,
    ``config.data.format``, ``seed`` and ``config_sha256``."""
    if training is None:
        return {}
    out = _flat(training.get("method_config") or {}, "method_config")
    for section in _CONFIG_SECTIONS:
        value = get(training.get("config"), section)
        if value is not None:
            out.update(_flat(value, f"config.{section}"))
    for key in ("seed", "config_sha256"):
        if training.get(key) is not None:
            out[key] = training[key]
    return out


def _roles(training: dict[str, Any] | None) -> dict[str, str]:
    """sha256 -> the roles the run read the dataset in (``train``, ``validation``...)."""
    roles: dict[str, list[str]] = {}
    for d in get(training, "datasets") or []:
        if isinstance(d, dict) and d.get("sha256"):
            roles.setdefault(str(d["sha256"]), []).append(str(d.get("role") or "?"))
    return {k: ", ".join(sorted(v)) for k, v in roles.items()}


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
    ta, tb = a.ev.training, b.ev.training
    cmp("release", "adapter sha256", get(ta, "adapter.sha256"), get(tb, "adapter.sha256"))
    cmp(
        "release",
        "base model weights sha256",
        get(ta, "base_model.weights_sha256"),
        get(tb, "base_model.weights_sha256"),
    )

    cmp(
        "training",
        "method",
        a.release.method_label if ta else None,
        b.release.method_label if tb else None,
    )
    ha, hb = hyperparameters(ta), hyperparameters(tb)
    for key in sorted(set(ha) | set(hb)):
        cmp("training", key, ha.get(key), hb.get(key))

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
    ra, rb = _roles(ta), _roles(tb)
    for sha in sorted(set(ra) | set(rb)):
        name = str((db.get(sha) or da.get(sha) or {}).get("name") or "unregistered")
        cmp("datasets", f"{name} ({sha[:12]}) read by the run as", ra.get(sha), rb.get(sha))

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
    for field in ("policy_id", "policy_version", "policy_sha256"):
        cmp("policy", field.replace("_", " "), get(ga, field), get(gb, field))
    cmp("gate", "verdict", a.verdict.status, b.verdict.status)
    cmp("gate", "warnings", len(a.verdict.warnings), len(b.verdict.warnings))
    cmp("gate", "latest decision passed", get(ga, "passed"), get(gb, "passed"))
    rules_a = {r["id"]: r["passed"] for g in a.gates[-1:] for r in g["rules"]}
    rules_b = {r["id"]: r["passed"] for g in b.gates[-1:] for r in g["rules"]}
    for rid in sorted(set(rules_a) | set(rules_b)):
        cmp("gate", f"rule {rid} passed", rules_a.get(rid), rules_b.get(rid))
    cmp("approvals", "current approvals", a.approvals, b.approvals)
    cmp("approvals", "sign-off", a.verdict.signoff_state, b.verdict.signoff_state)
    cmp(
        "approvals",
        "approvers counted by the gate",
        ", ".join(get(ga, "approvals.approvers") or []) or None,
        ", ".join(get(gb, "approvals.approvers") or []) or None,
    )
    cmp("approvals", "approved (gate)", get(ga, "approved"), get(gb, "approved"))

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
