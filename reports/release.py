"""The typed view of a release that every output renders: what was trained on, what is known
about each dataset's personal data and licence, what the model is, and whether the gate's
decision still describes the evidence.

Every field is computed from evidence, and every unknown is a value of its own (``"unknown"``,
``None``) with the command that would record it, never a default that reads as a fact:

- **Lineage decides what was trained on.** ``trained_on`` is exactly the datasets
  ``training.json`` says the run read for training (roles ``train`` and ``generic``) and, through
  ``derived_from``, all their ancestors. A registered dataset that training did not read is
  listed as registered, never as trained on.
- **PII status** is ``present`` (a scan found personal data, or an ancestor's did and this set was
  never scanned itself), ``absent`` (a scan found none, or a sanitised set's re-scan found none)
  or ``unknown`` (never scanned and nothing inherited). A clean parent does not make an unscanned
  child clean: a transform can add data.
- **Licences** are SPDX license expressions when they parse as one (``CC0-1.0``,
  ``MIT OR Apache-2.0``), free text otherwise.
- **The gate's decision is current** only when every evidence file it read still has the digest
  it recorded and no evidence was recorded after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from finetrail.reports.loader import Evidence, get

LICENSE_REF = re.compile(r"LicenseRef-[A-Za-z0-9.-]+")

PiiState = Literal["present", "absent", "unknown"]
TRAINING_READ_ROLES: tuple[str, ...] = ("train", "generic")
SANITISING_TRANSFORMS: tuple[str, ...] = ("pii-sanitize",)
SCAN_COMMAND = "finetrail data register FILE --workspace WORKSPACE --scan"
REGISTER_COMMAND = "finetrail data register FILE --workspace WORKSPACE"

METHOD_LABELS: dict[str, str] = {
    "lora": "LoRA adapter",
    "prefix": "prefix-tuning adapter",
    "ia3": "IA3 adapter",
    "full": "full fine-tune (every weight updated)",
}
PEFT_METHODS: tuple[str, ...] = ("lora", "prefix", "ia3")


@dataclass(frozen=True)
class PiiView:
    """What the evidence says about personal data in one dataset."""

    state: PiiState
    basis: Literal["scan", "sanitised", "inherited", "not scanned", "not registered"]
    text: str  # one sentence for people
    entities: tuple[str, ...] = ()  # entity types found (scan) or inherited
    inherited_from: tuple[str, ...] = ()  # sha256 of the ancestors the state comes from


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
class DatasetView:
    sha256: str
    name: str
    registered: bool  # a dataset record exists in this workspace
    record: dict[str, Any] | None
    roles: tuple[str, ...]  # train / validation / generic (training.json), eval (bias audit)
    read_by_training: bool  # training read it for training (train or generic role)
    trained_on: bool  # read for training, or an ancestor of such a set
    parents: tuple[str, ...]
    licence: LicenceView
    pii: PiiView

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


def _own_pii(record: dict[str, Any]) -> PiiView | None:
    """The state a dataset's own scan establishes (None: never scanned)."""
    pii = record.get("pii")
    if not isinstance(pii, dict):
        return None
    counts = {str(k): v for k, v in (pii.get("counts") or {}).items() if isinstance(v, int) and v}
    residual = pii.get("residual")
    left = (
        {str(k): v for k, v in residual.items() if isinstance(v, int) and v}
        if isinstance(residual, dict)
        else {}
    )
    found = pii.get("records_with_pii")
    engine = get(pii, "engine.analyzer") or "the recorded engine"
    if left or (isinstance(found, int) and found > 0) or counts:
        entities = tuple(sorted(set(counts) | set(left)))
        return PiiView(
            "present",
            "scan",
            f"personal data found by the scan ({engine}): "
            f"{found if isinstance(found, int) else 'some'} records; "
            + ", ".join(entities or ("entity types not recorded",)),
            entities,
        )
    if record.get("transform") in SANITISING_TRANSFORMS and isinstance(residual, dict):
        return PiiView(
            "absent",
            "sanitised",
            f"sanitised; the re-scan ({engine}) found no personal data of the types it looks for",
        )
    return PiiView(
        "absent", "scan", f"the scan ({engine}) found no personal data of the types it looks for"
    )


def build_release(ev: Evidence) -> Release:
    records = {str(d.get("sha256")): d for d in ev.datasets}
    t = ev.training
    roles: dict[str, list[str]] = {}
    for use in get(t, "datasets") or []:
        if isinstance(use, dict) and isinstance(use.get("sha256"), str):
            roles.setdefault(use["sha256"], [])
            if use.get("role") and use["role"] not in roles[use["sha256"]]:
                roles[use["sha256"]].append(str(use["role"]))
    eval_sha = get(ev.bias, "subject.eval_sha256")
    if isinstance(eval_sha, str):
        roles.setdefault(eval_sha, []).append("eval")

    def parents(sha: str) -> tuple[str, ...]:
        rec = records.get(sha)
        return tuple(str(p) for p in (rec or {}).get("derived_from") or [])

    read = {s for s, r in roles.items() if set(r) & set(TRAINING_READ_ROLES)}
    trained: set[str] = set()
    stack = sorted(read)
    while stack:
        sha = stack.pop()
        if sha in trained:
            continue
        trained.add(sha)
        stack += [p for p in parents(sha) if p not in trained]

    pii_memo: dict[str, PiiView] = {}

    def pii_of(sha: str, seen: frozenset[str] = frozenset()) -> PiiView:
        if sha in pii_memo:
            return pii_memo[sha]
        rec = records.get(sha)
        if rec is None:
            view = PiiView(
                "unknown",
                "not registered",
                f"not registered, so not scanned: register and scan it ({SCAN_COMMAND})",
            )
        else:
            own = _own_pii(rec)
            if own is not None:
                view = own
            else:
                sources = [p for p in parents(sha) if p not in seen]
                present = [p for p in sources if pii_of(p, seen | {sha}).state == "present"]
                if present:
                    entities = sorted({e for p in present for e in pii_of(p).entities})
                    names = ", ".join(str(records.get(p, {}).get("name", p[:12])) for p in present)
                    view = PiiView(
                        "present",
                        "inherited",
                        f"not scanned itself; derived from {names}, where the scan found "
                        f"personal data ({', '.join(entities) or 'types not recorded'})",
                        tuple(entities),
                        tuple(present),
                    )
                else:
                    view = PiiView(
                        "unknown",
                        "not scanned",
                        f"not scanned for personal data: {SCAN_COMMAND}",
                    )
        pii_memo[sha] = view
        return view

    shas = sorted(set(records) | set(roles))
    views = []
    for sha in shas:
        rec = records.get(sha)
        views.append(
            DatasetView(
                sha256=sha,
                name=str(rec.get("name")) if rec else f"unregistered dataset {sha[:12]}...",
                registered=rec is not None,
                record=rec,
                roles=tuple(roles.get(sha, ())),
                read_by_training=sha in read,
                trained_on=sha in trained,
                parents=parents(sha),
                licence=_licence(rec),
                pii=pii_of(sha),
            )
        )
    views.sort(key=lambda d: (not d.trained_on, d.name, d.sha256))

    states = {pii_of(s).state for s in trained}
    uses: PiiState = (
        "present"
        if "present" in states
        else "unknown"
        if "unknown" in states or not trained
        else "absent"
    )
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
    )


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
