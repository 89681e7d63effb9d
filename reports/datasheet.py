"""Datasheets for Datasets (Gebru et al.): the seven sections for each dataset, from its provenance
evidence; every question the evidence cannot answer says "needs input" and whom to ask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finetrail.reports.coverage import DATA, ML, PROVIDER
from finetrail.reports.loader import get
from finetrail.reports.model import ReportModel, fmt

SECTIONS: tuple[str, ...] = (
    "Motivation",
    "Composition",
    "Collection process",
    "Preprocessing, cleaning, labelling",
    "Uses",
    "Distribution",
    "Maintenance",
)


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str | None  # None: needs input
    ask: str


@dataclass(frozen=True)
class Datasheet:
    name: str
    sha256: str
    slug: str
    sections: tuple[tuple[str, tuple[Answer, ...]], ...]


def _text(v: Any) -> str | None:
    if v in (None, "", [], {}):
        return None
    if isinstance(v, dict):
        return ", ".join(f"{k}: {fmt(x)}" for k, x in sorted(v.items()))
    if isinstance(v, list):
        return ", ".join(fmt(x) for x in v)
    return fmt(v)


def datasheet(m: ReportModel, d: dict[str, Any]) -> Datasheet:
    sha = str(d.get("sha256"))
    role = m.dataset_roles.get(sha)
    known = {str(x.get("sha256")) for x in m.ev.datasets}
    derived = [
        f"{m.dataset_name(str(p))} ({str(p)[:12]}...)"
        if str(p) in known
        else f"dataset {str(p)[:12]}... (no evidence in this workspace)"
        for p in d.get("derived_from") or []
    ]
    pii_counts = get(d, "pii.counts")
    pii_text = None
    if isinstance(get(d, "pii"), dict):
        # a sanitised dataset's scan is the re-scan after masking (its residual is set)
        when = "after masking" if get(d, "pii.residual") is not None else "when registered"
        pii_text = (
            f"{fmt(get(d, 'pii.records_with_pii'))} of {fmt(d.get('records'))} records held PII "
            f"{when}; detections by entity: {_text(pii_counts) or 'none'}; score "
            f"threshold {fmt(get(d, 'pii.score_threshold'))}; residual after masking: "
            f"{_text(get(d, 'pii.residual')) or 'none recorded'}"
        )
    view = m.release.dataset(sha)
    if pii_text is None and view is not None:  # not scanned: unknown, or inherited from a parent
        pii_text = view.pii.text
    coverage = _text(get(d, "pii.coverage"))
    used_in = (
        f"{role}; {'trained on' if view.trained_on else 'not trained on'} in this release"
        if role and view is not None
        else None
    )
    S = Answer
    sections = (
        (
            "Motivation",
            (
                S("For what purpose was the dataset created?", _text(d.get("purpose")), DATA),
                S("Who created it, on whose behalf, and who funded it?", None, DATA),
            ),
        ),
        (
            "Composition",
            (
                S("How many instances are there?", _text(d.get("records")), DATA),
                S(
                    "Content fingerprint (SHA-256 of the file; Merkle root of the records)",
                    f"{sha} / {d.get('merkle_root') or 'n/a'}",
                    DATA,
                ),
                S("Does it contain confidential or personal data?", pii_text, DATA),
                S("Which recognisers covered each entity type?", coverage, DATA),
                S(
                    "Is it a sample of a larger set; are there recommended splits, errors or noise?",
                    None,
                    DATA,
                ),
            ),
        ),
        (
            "Collection process",
            (
                S(
                    "How, from where and when was the data collected?",
                    "; ".join(x for x in (_text(d.get("source")), _text(d.get("collection"))) if x)
                    or None,
                    DATA,
                ),
                S(
                    "Legal basis for processing personal data",
                    _text(d.get("legal_basis")),
                    PROVIDER,
                ),
                S(
                    "Were the people concerned notified, did they consent, can they revoke consent?",
                    None,
                    PROVIDER,
                ),
            ),
        ),
        (
            "Preprocessing, cleaning, labelling",
            (
                S("What transformation produced this dataset?", _text(d.get("transform")), DATA),
                S(
                    "What was it derived from?",
                    ", ".join(derived)
                    or (
                        "an original source (no parent dataset recorded)"
                        if "derived_from" in d
                        else None
                    ),
                    DATA,
                ),
                S("Is the raw data kept?", None, DATA),
            ),
        ),
        (
            "Uses",
            (
                S("How is it used in this release?", used_in, ML),
                S("Tasks it should not be used for; risks from its composition", None, DATA),
            ),
        ),
        (
            "Distribution",
            (
                S("Licence or terms of use", _text(d.get("license")), PROVIDER),
                S("Is it distributed to third parties; export controls?", None, PROVIDER),
            ),
        ),
        (
            "Maintenance",
            (
                S("Who maintains it, and how are errata and updates handled?", None, DATA),
                S("Retention limits for data about people", None, PROVIDER),
            ),
        ),
    )
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(d.get("name")).lower())[:40]
    return Datasheet(
        name=str(d.get("name")),
        sha256=sha,
        slug=f"{slug.strip('-') or 'dataset'}-{sha[:8]}",
        sections=sections,
    )


def datasheets(m: ReportModel) -> list[Datasheet]:
    return [datasheet(m, d) for d in m.ev.datasets]
