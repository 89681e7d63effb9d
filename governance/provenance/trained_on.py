"""What a release was trained on, and what is known about the personal data in each dataset.

One home for the rule, read by the gate (the computed ``training_data`` kind) and by every report
(:mod:`finetrail.reports.release`):

- **Lineage decides what was trained on.** The datasets ``training.json`` says the run read for
  training (roles ``train`` and ``generic``) and, through ``derived_from``, all their ancestors.
  A registered dataset that training did not read is registered, never trained on.
- **PII state** is ``present`` (a scan found personal data, or an ancestor's did and this set was
  never scanned itself), ``absent`` (a scan found none, or a sanitised set's re-scan found none) or
  ``unknown`` (never scanned and nothing inherited, or not registered at all). A clean parent does
  not make an unscanned child clean: a transform can add data.

Pure functions over the records' JSON (dicts), so the gate and the reports agree byte for byte and
nothing heavy is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "REGISTER_COMMAND",
    "SANITISING_TRANSFORMS",
    "SCAN_COMMAND",
    "TRAINING_READ_ROLES",
    "DatasetLineage",
    "PiiState",
    "PiiView",
    "lineage",
]

PiiState = Literal["present", "absent", "unknown"]
TRAINING_READ_ROLES: tuple[str, ...] = ("train", "generic")
SANITISING_TRANSFORMS: tuple[str, ...] = ("pii-sanitize",)
SCAN_COMMAND = "finetrail data register FILE --workspace WORKSPACE --scan"
REGISTER_COMMAND = "finetrail data register FILE --workspace WORKSPACE"


@dataclass(frozen=True)
class PiiView:
    """What the evidence says about personal data in one dataset."""

    state: PiiState
    basis: Literal["scan", "sanitised", "inherited", "not scanned", "not registered"]
    text: str  # one sentence for people
    entities: tuple[str, ...] = ()  # entity types found (scan) or inherited
    inherited_from: tuple[str, ...] = ()  # sha256 of the ancestors the state comes from


@dataclass(frozen=True)
class DatasetLineage:
    sha256: str
    name: str
    registered: bool  # a dataset record exists in the workspace
    record: Mapping[str, Any] | None
    roles: tuple[str, ...]  # train / validation / generic (training.json), eval (bias audit)
    read_by_training: bool  # training read it for training (train or generic role)
    trained_on: bool  # read for training, or an ancestor of such a set
    parents: tuple[str, ...]
    pii: PiiView


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def _own_pii(record: Mapping[str, Any]) -> PiiView | None:
    """The state a dataset's own scan establishes (None: never scanned)."""
    pii = record.get("pii")
    if not isinstance(pii, Mapping):
        return None
    raw_counts = pii.get("counts")
    counts = {
        str(k): v
        for k, v in (raw_counts.items() if isinstance(raw_counts, Mapping) else ())
        if isinstance(v, int) and v
    }
    residual = pii.get("residual")
    left = (
        {str(k): v for k, v in residual.items() if isinstance(v, int) and v}
        if isinstance(residual, Mapping)
        else {}
    )
    found = pii.get("records_with_pii")
    engine = _get(pii, "engine.analyzer") or "the recorded engine"
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
    if record.get("transform") in SANITISING_TRANSFORMS and isinstance(residual, Mapping):
        return PiiView(
            "absent",
            "sanitised",
            f"sanitised; the re-scan ({engine}) found no personal data of the types it looks for",
        )
    return PiiView(
        "absent", "scan", f"the scan ({engine}) found no personal data of the types it looks for"
    )


def lineage(
    *,
    datasets: Sequence[Mapping[str, Any]],
    training: Mapping[str, Any] | None,
    eval_sha256: str | None = None,
) -> list[DatasetLineage]:
    """Every registered dataset and every one training names, with its part in the release,
    sorted: trained-on first, then by name."""
    records = {str(d.get("sha256")): d for d in datasets if isinstance(d, Mapping)}
    roles: dict[str, list[str]] = {}
    uses = _get(training, "datasets") if training is not None else None
    for use in uses if isinstance(uses, list) else []:
        if isinstance(use, Mapping) and isinstance(use.get("sha256"), str):
            roles.setdefault(use["sha256"], [])
            if use.get("role") and use["role"] not in roles[use["sha256"]]:
                roles[use["sha256"]].append(str(use["role"]))
    if isinstance(eval_sha256, str):
        roles.setdefault(eval_sha256, []).append("eval")

    def parents(sha: str) -> tuple[str, ...]:
        rec = records.get(sha)
        raw = rec.get("derived_from") if rec else None
        return tuple(str(p) for p in raw) if isinstance(raw, list) else ()

    read = {s for s, r in roles.items() if set(r) & set(TRAINING_READ_ROLES)}
    trained: set[str] = set()
    stack = sorted(read)
    while stack:
        sha = stack.pop()
        if sha in trained:
            continue
        trained.add(sha)
        stack += [p for p in parents(sha) if p not in trained]

    memo: dict[str, PiiView] = {}

    def pii_of(sha: str, seen: frozenset[str] = frozenset()) -> PiiView:
        if sha in memo:
            return memo[sha]
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
                        "unknown", "not scanned", f"not scanned for personal data: {SCAN_COMMAND}"
                    )
        memo[sha] = view
        return view

    out = []
    for sha in sorted(set(records) | set(roles)):
        rec = records.get(sha)
        out.append(
            DatasetLineage(
                sha256=sha,
                name=str(rec.get("name")) if rec else f"unregistered dataset {sha[:12]}...",
                registered=rec is not None,
                record=rec,
                roles=tuple(roles.get(sha, ())),
                read_by_training=sha in read,
                trained_on=sha in trained,
                parents=parents(sha),
                pii=pii_of(sha),
            )
        )
    out.sort(key=lambda d: (not d.trained_on, d.name, d.sha256))
    return out


def uses_personal_data(views: Sequence[DatasetLineage]) -> PiiState:
    """Over the datasets read for training: present if any is, unknown if any is unknown or
    training read nothing, else absent."""
    states = {d.pii.state for d in views if d.read_by_training}
    if "present" in states:
        return "present"
    if "unknown" in states or not states:
        return "unknown"
    return "absent"
