"""EU AI Act packs: Annex IV technical documentation, Article 10 data governance, and the
general-purpose-model section (Art. 53, Annexes XI and XII, the fine-tuner compute test).

The Annex IV entries (25: nine points and their lettered items) come from the shipped reference
``eu_annex_iv.json``; this module adds which evidence answers each one and whom to ask otherwise.
The mapping is ours, not official (see ``shared/reference/regulatory.md`` section 6).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from finetrail.reports.coverage import (
    DATA,
    ML,
    PRODUCT,
    PROVIDER,
    REVIEWER,
    SECURITY,
    Requirement,
    RequirementSet,
)
from finetrail.reports.loader import Evidence, get, num
from finetrail.reports.release import build_release

# Which text was checked. The amendment is reported (EUR-Lex diff), see regulatory.md section 0.
REGULATION = "Regulation (EU) 2024/1689 (CELEX 32024R1689)"
AMENDMENT = "Regulation (EU) 2026/1744 (Digital Omnibus on AI)"
REGIME_VERSION = "eu-ai-act@02024R1689-20260727"
TEXT_VERSION_NOTE = (
    f"Checked against {REGULATION} as amended by {AMENDMENT}, consolidated version "
    "02024R1689-20260727 (in force 27 July 2026; the amendment is reported by a machine-generated "
    "EUR-Lex diff and should be confirmed on EUR-Lex). The amendment leaves Articles 12 to 15 and 53 "
    "and Annexes IV, XI and XII unchanged; it moves Art. 10(5) (special categories of personal data "
    "for bias detection) to a new Art. 4a, and Art. 10(1) and 10(6) now refer to Art. 10(2) to (4) "
    "plus Art. 4a(1). Requirement texts below are short paraphrases, not the legal text."
)

# Annex IV id -> (facts, whom to ask, needs a human statement too)
_ANNEX_IV_MAP: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "1": (("workspace.intended_purpose", "workspace.provider"), PROVIDER, True),
    "1(a)": (
        ("workspace.intended_purpose", "workspace.provider", "workspace.version"),
        PROVIDER,
        False,
    ),
    "1(b)": ((), PRODUCT, True),
    "1(c)": (("training",), ML, True),
    "1(d)": ((), PRODUCT, True),
    "1(e)": (("training.compute.device",), PRODUCT, True),
    "1(f)": ((), PRODUCT, True),
    "1(g)": ((), PRODUCT, True),
    "1(h)": ((), PRODUCT, True),
    "2": (("training", "datasets"), ML, True),
    "2(a)": (("training.method", "training.base_model.weights_sha256"), ML, False),
    "2(b)": (("training.method", "training.dp"), ML, True),
    "2(c)": (("training.compute.flops", "training.compute.device"), ML, True),
    "2(d)": (("datasets",), DATA, False),
    "2(e)": (("reviews",), PROVIDER, True),
    "2(f)": ((), PROVIDER, True),
    "2(g)": (
        ("bias", "probes.membership", "probes.exposure", "probes.extraction", "gate", "reviews"),
        REVIEWER,
        False,
    ),
    "2(h)": (("probes.membership", "probes.extraction", "ledger"), SECURITY, True),
    "3": (("bias",), PROVIDER, True),
    "4": (("bias", "probes.membership"), ML, True),
    "5": (("gate",), PROVIDER, True),
    "6": (("ledger",), PROVIDER, True),
    "7": ((), PROVIDER, True),
    "8": ((), PROVIDER, True),
    "9": ((), PROVIDER, True),
}


def annex_iv_entries() -> list[dict[str, str]]:
    text = resources.files("finetrail.templates").joinpath("eu_annex_iv.json").read_text("utf-8")
    entries: list[dict[str, str]] = json.loads(text)
    return entries


def annex_iv_set() -> RequirementSet:
    reqs = []
    for e in annex_iv_entries():
        facts, ask, human = _ANNEX_IV_MAP[e["id"]]
        point = e["id"].split("(")[0]
        reqs.append(
            Requirement(
                id=e["id"],
                title=e["title"],
                group=f"Point {point}",
                facts=facts,
                ask=ask,
                human=human,
            )
        )
    return RequirementSet(
        key="eu-ai-act-annex-iv",
        title="EU AI Act Annex IV technical documentation",
        regime_version=REGIME_VERSION,
        missing="needs input",
        requirements=tuple(reqs),
    )


ARTICLE_10 = RequirementSet(
    key="eu-ai-act-art-10",
    title="EU AI Act Article 10 data and data governance",
    regime_version=REGIME_VERSION,
    missing="needs input",
    requirements=(
        Requirement(
            "10(2)(a)", "Relevant design choices", "Art. 10(2)", ("training.method",), ML, True
        ),
        Requirement(
            "10(2)(b)",
            "Data collection processes, origin of data, original purpose of personal data",
            "Art. 10(2)",
            ("datasets.source", "datasets.collection", "datasets.purpose"),
            DATA,
        ),
        Requirement(
            "10(2)(c)",
            "Data preparation: annotation, labelling, cleaning, enrichment, aggregation",
            "Art. 10(2)",
            ("datasets.transform", "datasets.pii"),
            DATA,
            True,
        ),
        Requirement(
            "10(2)(d)",
            "Assumptions about what the data measures and represents",
            "Art. 10(2)",
            (),
            DATA,
            True,
        ),
        Requirement(
            "10(2)(e)",
            "Availability, quantity and suitability of the data sets",
            "Art. 10(2)",
            ("datasets.records",),
            DATA,
            True,
        ),
        Requirement("10(2)(f)", "Examination for possible biases", "Art. 10(2)", ("bias",), DATA),
        Requirement(
            "10(2)(g)",
            "Measures to detect, prevent and mitigate the biases found",
            "Art. 10(2)",
            ("bias.finetune_effect",),
            DATA,
            True,
        ),
        Requirement(
            "10(2)(h)",
            "Data gaps or shortcomings and how they are addressed",
            "Art. 10(2)",
            ("bias.too_small_groups",),
            DATA,
            True,
        ),
        Requirement(
            "10(3)",
            "Relevant, representative, as far as possible error-free and complete data",
            "Art. 10(3)-(4)",
            ("bias", "datasets.records"),
            DATA,
            True,
        ),
        Requirement(
            "10(4)",
            "Data reflect the geographical, contextual, behavioural or functional setting",
            "Art. 10(3)-(4)",
            (),
            DATA,
            True,
        ),
        Requirement(
            "4a(1) [ex 10(5)]",
            "Special categories of personal data for bias detection: "
            "necessity, re-use limits, privacy-preserving measures, access control, deletion",
            "Art. 4a (ex 10(5))",
            ("datasets.legal_basis", "training.dp"),
            PROVIDER,
            True,
        ),
    ),
)

GPAI = RequirementSet(
    key="eu-ai-act-gpai",
    title="EU AI Act general-purpose AI model obligations (Art. 53, Annexes XI, XII)",
    regime_version=REGIME_VERSION,
    missing="needs input",
    requirements=(
        Requirement(
            "53(1)(a)",
            "Technical documentation of the model (at least Annex XI), limited to "
            "the modification for a downstream modifier",
            "Art. 53",
            ("training", "datasets"),
            ML,
            True,
        ),
        Requirement(
            "53(1)(b)",
            "Information for downstream providers (at least Annex XII)",
            "Art. 53",
            ("training", "bias"),
            PROVIDER,
            True,
        ),
        Requirement(
            "53(1)(c)",
            "Copyright policy, honouring text-and-data-mining opt-outs",
            "Art. 53",
            ("datasets.license",),
            PROVIDER,
            True,
        ),
        Requirement(
            "53(1)(d)",
            "Public summary of the training content (AI Office template)",
            "Art. 53",
            ("datasets",),
            DATA,
            True,
        ),
        Requirement(
            "XI 1.2(c)",
            "Training data: type, provenance, curation, size, selection, "
            "unsuitable-source and bias detection",
            "Annex XI",
            ("datasets", "bias"),
            DATA,
        ),
        Requirement(
            "XI 1.2(d)",
            "Compute used for training (FLOPs), training time",
            "Annex XI",
            ("training.compute.flops", "training.compute.wall_seconds"),
            ML,
        ),
        Requirement(
            "XI 1.2(e)",
            "Known or estimated energy consumption",
            "Annex XI",
            ("training.compute.energy_kwh",),
            ML,
        ),
        Requirement(
            "XII 2(b)",
            "Input/output modality, format and maximum size (context window)",
            "Annex XII",
            ("training.base_model",),
            ML,
            True,
        ),
        Requirement(
            "GL 3.2",
            "Downstream-modifier compute test (one third of the original training compute)",
            "Commission GPAI Guidelines",
            ("training.compute.flops", "training.eu_ai_act.modification_threshold_flops"),
            ML,
        ),
    ),
)

# Fallback thresholds when the original model's compute is unknown (guidelines section 3.2).
FALLBACK_THRESHOLD_FLOPS = 1e23 / 3
FALLBACK_THRESHOLD_SYSTEMIC_FLOPS = 1e25 / 3


@dataclass(frozen=True)
class ComputeTest:
    flops: float | None
    threshold: float | None
    threshold_source: str
    ratio: float | None
    outcome: str  # "below", "above", "unknown"
    statement: str


def compute_test(ev: Evidence) -> ComputeTest:
    """The downstream-modifier compute test from the training evidence."""
    flops = num(get(ev.training, "compute.flops"))
    threshold = num(get(ev.training, "eu_ai_act.modification_threshold_flops"))
    source = "training evidence (eu_ai_act.modification_threshold_flops)"
    if threshold is None:
        threshold = FALLBACK_THRESHOLD_FLOPS
        source = (
            "fallback: one third of 10^23 FLOP (original compute unknown, not a systemic-risk "
            "model)"
        )
    flagged = get(ev.training, "eu_ai_act.substantial_modification")
    if flops is None:
        return ComputeTest(
            None,
            threshold,
            source,
            None,
            "unknown",
            "Needs input: the training evidence records no compute.flops; the test cannot be run.",
        )
    ratio = flops / threshold if threshold else None
    above = flops > threshold
    outcome = "above" if above else "below"
    text = (
        f"Fine-tuning compute {flops:.3g} FLOP is {'above' if above else 'below'} the threshold "
        f"{threshold:.3g} FLOP ({source}); ratio {ratio:.3g}. "
    )
    text += (
        "By the indicative criterion the modifier is presumed to be the provider of the modified "
        "general-purpose model (Art. 53 obligations limited to the modification)."
        if above
        else "By the indicative criterion the modification alone does not make the modifier the "
        "provider of a general-purpose model; Art. 53 obligations stay with the original provider."
    )
    if isinstance(flagged, bool) and flagged != above:
        text += (
            f" Note: the training evidence records substantial_modification={flagged}, which "
            "disagrees with this comparison; check the recorded threshold."
        )
    return ComputeTest(flops, threshold, source, ratio, outcome, text)


def training_content_summary(ev: Evidence) -> dict[str, Any]:
    """Sections of the AI Office training-content template, filled from dataset evidence.

    For a downstream modifier the summary covers only the data used in the modification."""
    sources = []
    for view in build_release(ev).trained_on:  # the data the run read and its ancestors
        d = view.record or {}
        sources.append(
            {
                "name": view.name,
                "sha256": view.sha256,
                "records": d.get("records"),
                "source": d.get("source"),
                "license": d.get("license"),
                "collection": d.get("collection"),
                "role": view.role_text,
            }
        )
    total = sum(int(s["records"]) for s in sources if isinstance(s["records"], int))
    tokens = num(get(ev.training, "compute.tokens"))
    return {
        "modalities": "text" if sources else None,
        "records": total if sources else None,
        "tokens": tokens,
        "sources": sources,
        "base_model": get(ev.training, "base_model"),
    }
