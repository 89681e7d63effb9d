"""Coverage: for every requirement, the evidence that answers it and a status.

A requirement lists *facts*: evidence kinds (``training``, ``probes.membership``) or dotted fields
of them (``training.compute.flops``, ``datasets.license`` = that field on every dataset,
``workspace.intended_purpose``). Status:

- ``evidence``: every fact is present and evidence alone can answer the requirement;
- ``partial``: some facts are present, or the requirement also needs a human's statement;
- ``needs input`` (EU AI Act) / ``not addressed`` (NIST): no fact is present; the row names the
  owner to ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finetrail.governance.evidence.registry import dataset_location, probe_location
from finetrail.reports.loader import Evidence, get

EVIDENCE = "evidence"
PARTIAL = "partial"
STATUSES: tuple[str, ...] = (EVIDENCE, PARTIAL, "needs input", "not addressed")

# Who to ask when a requirement lacks evidence.
PROVIDER = "provider (compliance lead)"
ML = "ML engineer (training owner)"
DATA = "data owner"
PRODUCT = "product owner"
SECURITY = "security lead"
REVIEWER = "release reviewer"


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    group: str
    facts: tuple[str, ...]
    ask: str
    human: bool = False  # evidence can support it but a person must also state something


@dataclass(frozen=True)
class RequirementSet:
    key: str  # e.g. "eu-ai-act-annex-iv"
    title: str
    regime_version: str
    missing: str  # "needs input" or "not addressed"
    requirements: tuple[Requirement, ...]


@dataclass(frozen=True)
class EvidenceRef:
    fact: str
    file: str
    sha256: str
    summary: str


@dataclass(frozen=True)
class Row:
    id: str
    title: str
    group: str
    status: str
    evidence: tuple[EvidenceRef, ...]
    missing_facts: tuple[str, ...]
    ask: str


@dataclass(frozen=True)
class Coverage:
    key: str
    title: str
    regime_version: str
    rows: tuple[Row, ...]

    @property
    def totals(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for r in self.rows:
            out[r.status] += 1
        out = {k: v for k, v in out.items() if v or k in (EVIDENCE, PARTIAL)}
        out["total"] = len(self.rows)
        return out

    def groups(self) -> list[tuple[str, list[Row]]]:
        seen: dict[str, list[Row]] = {}
        for r in self.rows:
            seen.setdefault(r.group, []).append(r)
        return list(seen.items())


def _present(value: Any) -> bool:
    return value not in (None, "", [], {})


def fact_present(ev: Evidence, fact: str) -> bool:
    kind, _, rest = fact.partition(".")
    if kind == "workspace":
        return _present(get(ev.workspace, rest)) if rest else True
    if kind == "ledger":
        return len(ev.ledger_kinds) > 1
    if kind == "datasets":
        if not ev.datasets:
            return False
        return all(_present(get(d, rest)) for d in ev.datasets) if rest else True
    if kind == "probes":
        name, _, field = rest.partition(".")
        rec = ev.probes.get(name)
        return rec is not None and (not field or _present(get(rec, field)))
    if kind in ("gate", "reviews"):
        return ev.has(kind)
    if kind == "training":
        return ev.training is not None and (not rest or _present(get(ev.training, rest)))
    if kind == "bias":
        return ev.bias is not None and (not rest or _present(get(ev.bias, rest)))
    raise KeyError(f"unknown evidence fact {fact!r}")


def _refs_for(ev: Evidence, fact: str, summaries: dict[str, str]) -> list[tuple[str, str]]:
    """(file, what it says) pairs for one present fact."""
    kind, _, rest = fact.partition(".")
    if kind == "workspace":
        value = get(ev.workspace, rest) if rest else None
        return [("workspace.json", f"{rest}: {value}" if rest else summaries.get("workspace", ""))]
    if kind == "ledger":
        return [("ledger.jsonl", summaries.get("ledger", ""))]
    if kind == "datasets":
        out = []
        for d in ev.datasets:
            sha = str(d.get("sha256"))
            text = summaries.get(f"datasets:{sha}", "")
            if rest:
                value = get(d, rest)
                shown = (
                    ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
                    if isinstance(value, dict)
                    else value
                )
                text = summaries.get(f"datasets:{sha}.{rest}") or f"{d.get('name')}: {rest} {shown}"
            out.append((dataset_location(sha), text))
        return out
    if kind == "probes":
        name = rest.partition(".")[0]
        return [(probe_location(name), summaries.get(f"probes.{name}", ""))]
    if kind == "gate":
        return [(str(g["_file"]), summaries.get("gate", "")) for g in ev.gates[-1:]]
    if kind == "reviews":
        return [("ledger.jsonl", summaries.get("reviews", ""))]
    return [(f"evidence/{kind}.json", summaries.get(fact) or summaries.get(kind, ""))]


def evaluate(ev: Evidence, rs: RequirementSet, summaries: dict[str, str]) -> Coverage:
    """Evaluate one requirement set against the evidence. ``summaries`` maps a fact's kind to a
    one-line statement of what that evidence says (see :func:`finetrail.reports.model.summaries`)."""
    rows = []
    for req in rs.requirements:
        present = [f for f in req.facts if fact_present(ev, f)]
        missing = tuple(f for f in req.facts if f not in present)
        merged: dict[tuple[str, str], list[str]] = {}
        for f in present:
            for file, summary in _refs_for(ev, f, summaries):
                merged.setdefault((file, summary), []).append(f)
        refs = [
            EvidenceRef(
                fact=", ".join(facts), file=file, sha256=ev.files.get(file, ""), summary=summary
            )
            for (file, summary), facts in merged.items()
        ]
        if not present:
            status = rs.missing
        elif missing or req.human:
            status = PARTIAL
        else:
            status = EVIDENCE
        rows.append(
            Row(
                id=req.id,
                title=req.title,
                group=req.group,
                status=status,
                evidence=tuple(refs),
                missing_facts=missing,
                ask=req.ask,
            )
        )
    return Coverage(key=rs.key, title=rs.title, regime_version=rs.regime_version, rows=tuple(rows))


def coverage_json(
    coverages: list[Coverage],
    *,
    generated: str,
    manifest_digest: str | None,
    workspace: dict[str, Any],
) -> dict[str, Any]:
    """The machine-readable coverage matrix (``dossier/coverage.json``)."""
    return {
        "generated": generated,
        "workspace": {k: workspace.get(k) for k in ("model", "version", "owner", "provider")},
        "manifest_digest": manifest_digest,
        "frameworks": {
            c.key: {
                "title": c.title,
                "regime_version": c.regime_version,
                "totals": c.totals,
                "requirements": [
                    {
                        "id": r.id,
                        "title": r.title,
                        "group": r.group,
                        "status": r.status,
                        "evidence": [
                            {
                                "fact": e.fact,
                                "file": e.file,
                                "sha256": e.sha256,
                                "summary": e.summary,
                            }
                            for e in r.evidence
                        ],
                        "missing": list(r.missing_facts),
                        "ask": r.ask if r.status != EVIDENCE else None,
                    }
                    for r in c.rows
                ],
            }
            for c in coverages
        },
    }
