"""The typed view of a release that every output renders: what was trained on, what is known
about each dataset's personal data and licence, what the model is, and whether the gate's
decision still describes the evidence.

Every field is computed from evidence, and every unknown is a value of its own (``"unknown"``,
``None``) with the command that would record it, never a default that reads as a fact:

- **Lineage decides what was trained on**, and **PII status** is present / absent / unknown:
  one rule for the gate and the reports, in
  :mod:`finetrail.governance.provenance.trained_on`.
- **Licences** are SPDX license expressions when they parse as one (``CC0-1.0``,
  ``MIT OR Apache-2.0``), free text otherwise.
- **The gate's decision is current** only when every evidence file it read still has the digest
  it recorded and no evidence was recorded after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Literal

from finetrail.governance.provenance.trained_on import (
    REGISTER_COMMAND,
    SANITISING_TRANSFORMS,
    SCAN_COMMAND,
    TRAINING_READ_ROLES,
    DatasetLineage,
    PiiState,
    PiiView,
    lineage,
    uses_personal_data,
)
from finetrail.reports.loader import Evidence, get

__all__ = [
    "REGISTER_COMMAND",
    "SANITISING_TRANSFORMS",
    "SCAN_COMMAND",
    "TRAINING_READ_ROLES",
    "DatasetView",
    "GateView",
    "LicenceView",
    "PiiState",
    "PiiView",
    "Release",
    "build_release",
    "gate_view",
    "spdx_expression",
]

LICENSE_REF = re.compile(r"LicenseRef-[A-Za-z0-9.-]+")

METHOD_LABELS: dict[str, str] = {
    "lora": "LoRA adapter",
    "prefix": "prefix-tuning adapter",
    "ia3": "IA3 adapter",
    "full": "full fine-tune (every weight updated)",
}
PEFT_METHODS: tuple[str, ...] = ("lora", "prefix", "ia3")


@dataclass(frozen=True)
class LicenceView:
    text: str | None  # as recorded
    spdx: str | None  # the SPDX license expression, when the text is one

    @property
    def state(self) -> Literal["spdx", "free text", "not recorded"]:
        if self.spdx is not None:
            return "spdx"
        return "free text" if self.text else "not recorded"


@dataclass(frozen=True)
class DatasetView(DatasetLineage):
    """A dataset's part in the release (lineage, PII state: one rule for gate and reports) and
    its licence as reports state it."""

    licence: LicenceView

    @property
    def role_text(self) -> str:
        """The dataset's part in this release, in words."""
        parts = list(self.roles)
        if self.trained_on and not self.read_by_training:
            parts.append("ancestor of the training data")
        return ", ".join(parts) if parts else "registered, not used by this release's training"


@dataclass(frozen=True)
class GateView:
    """The last gate decision, judged against the current evidence."""

    present: bool
    passed: bool | None
    policy_id: str | None
    current: bool  # every file it read is unchanged and nothing was recorded after it
    changed: tuple[str, ...] = ()  # files read whose digest differs now (or that are gone)
    added: tuple[str, ...] = ()  # evidence files recorded after the decision

    @property
    def stale_reason(self) -> str:
        parts = []
        if self.changed:
            parts.append("changed since: " + ", ".join(self.changed))
        if self.added:
            parts.append("recorded after it: " + ", ".join(self.added))
        return "; ".join(parts)


@dataclass(frozen=True)
class Release:
    datasets: tuple[DatasetView, ...]  # registered datasets and those training names unregistered
    method: str | None
    method_label: str
    peft: bool
    dp_enabled: bool | None  # None: no training evidence
    evaluated_on: str | None  # the bias audit's evaluation data (sha256)
    uses_personal_data: PiiState  # over the datasets the run read for training
    gate: GateView
    # why the bias audit's disparities are no evidence of fairness (a constant model), or None
    degenerate: str | None = None

    def dataset(self, sha: str) -> DatasetView | None:
        for d in self.datasets:
            if d.sha256 == sha:
                return d
        return None

    def name(self, sha: str) -> str:
        d = self.dataset(sha)
        return d.name if d is not None else f"dataset {sha[:12]}..."

    @property
    def trained_on(self) -> tuple[DatasetView, ...]:
        return tuple(d for d in self.datasets if d.trained_on)

    @property
    def read_for_training(self) -> tuple[DatasetView, ...]:
        return tuple(d for d in self.datasets if d.read_by_training)

    def with_role(self, *roles: str) -> tuple[DatasetView, ...]:
        return tuple(d for d in self.datasets if set(d.roles) & set(roles))

    @property
    def tags(self) -> tuple[str, ...]:
        """Model-card tags that the evidence supports (nothing claimed by default)."""
        tags = ["finetrail"]
        if self.peft:
            tags.append("peft")
            if self.method:
                tags.append(self.method)
        if self.dp_enabled:
            tags += ["differential-privacy", "dp-sgd"]
        return tuple(tags)


@lru_cache(maxsize=512)
def spdx_expression(text: str) -> str | None:
    """``text`` as a valid SPDX license expression (ids from the SPDX list), else None."""
    from license_expression import ExpressionError, get_spdx_licensing

    value = text.strip()
    if not value:
        return None
    licensing = get_spdx_licensing()
    try:
        parsed = licensing.parse(value, validate=False, strict=True)
    except ExpressionError:
        return None
    if parsed is None:
        return None
    # ids from the SPDX list, or the user's own LicenseRef-<idstring> (SPDX Annex D)
    unknown = licensing.unknown_license_keys(parsed)
    if any(not LICENSE_REF.fullmatch(k) for k in unknown):
        return None
    return str(parsed)


def _licence(record: dict[str, Any] | None) -> LicenceView:
    text = record.get("license") if record else None
    if not isinstance(text, str) or not text.strip():
        return LicenceView(None, None)
    return LicenceView(text, spdx_expression(text))


def build_release(ev: Evidence) -> Release:
    t = ev.training
    eval_sha = get(ev.bias, "subject.eval_sha256")
    lines = lineage(
        datasets=ev.datasets,
        training=t if isinstance(t, dict) else None,
        eval_sha256=eval_sha if isinstance(eval_sha, str) else None,
    )
    views = [
        DatasetView(
            **{f.name: getattr(d, f.name) for f in fields(d)},
            licence=_licence(dict(d.record) if d.record is not None else None),
        )
        for d in lines
    ]
    uses = uses_personal_data(lines)
    method = get(t, "method") if isinstance(get(t, "method"), str) else None
    dp = get(t, "dp.enabled")
    return Release(
        datasets=tuple(views),
        method=method,
        method_label=METHOD_LABELS.get(method or "", "method not recorded"),
        peft=method in PEFT_METHODS,
        dp_enabled=dp if isinstance(dp, bool) else None,
        evaluated_on=eval_sha if isinstance(eval_sha, str) else None,
        uses_personal_data=uses,
        gate=gate_view(ev),
        degenerate=degenerate_model(ev.bias),
    )


def degenerate_model(bias: dict[str, Any] | None) -> str | None:
    """A sentence when the audited model answers everyone alike (overall, or within a group large
    enough to judge): its disparities then compare a constant and show nothing about fairness."""
    if not isinstance(bias, dict):
        return None
    rate = get(bias, "task.selection_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool) and rate in (0, 1):
        answer = "no" if rate == 0 else "yes"
        return (
            f"The model answers {answer!r} to every applicant (selection rate {rate:g}): its "
            "F1 and the disparities below describe a constant, not evidence of fairness."
        )
    groups = bias.get("groups")
    constant = [
        f"{g.get('feature')}={g.get('group')}"
        for g in (groups if isinstance(groups, list) else [])
        if isinstance(g, dict)
        and not g.get("too_small")
        and get(g, "selection_rate.value") in (0, 1)
        and not isinstance(get(g, "selection_rate.value"), bool)
    ]
    if constant:
        return (
            "The model gives one answer to everyone in "
            + ", ".join(constant[:5])
            + (f" and {len(constant) - 5} more" if len(constant) > 5 else "")
            + ": disparities involving those groups compare a constant."
        )
    return None


def gate_view(ev: Evidence) -> GateView:
    """The last gate decision and whether the evidence it judged is still the evidence."""
    if not ev.gates:
        return GateView(present=False, passed=None, policy_id=None, current=False)
    last = ev.gates[-1]
    raw = last.get("evidence")
    read: dict[str, Any] = raw if isinstance(raw, dict) else {}
    changed = sorted(
        str(path)
        for path, sha in read.items()
        if path != "ledger.jsonl" and ev.files.get(str(path)) != sha
    )
    added = sorted(
        path
        for path in ev.files
        if path.startswith("evidence/")
        and not path.startswith("evidence/gate/")
        and path not in read
    )
    passed = last.get("passed")
    return GateView(
        present=True,
        passed=passed if isinstance(passed, bool) else None,
        policy_id=str(last.get("policy_id")) if last.get("policy_id") else None,
        current=not changed and not added,
        changed=tuple(changed),
        added=tuple(added),
    )
