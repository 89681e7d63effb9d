"""NIST AI RMF 1.0 profile (all 72 subcategories) and the NIST AI 600-1 risks our evidence speaks to.

Subcategory ids and paraphrases come from the shipped ``nist_ai_rmf_subcategories.json``. The
mapping from evidence to subcategories is ours (``shared/reference/regulatory.md`` section 6);
a subcategory no evidence speaks to is "not addressed".
"""

from __future__ import annotations

import json
from importlib import resources

from finetrail.reports.coverage import (
    DATA,
    ML,
    PROVIDER,
    REVIEWER,
    SECURITY,
    Requirement,
    RequirementSet,
)

RMF_VERSION = "nist-ai-rmf@AI-100-1 (1.0, January 2023)"
GAI_VERSION = "nist-ai-600-1@2024-07-26"
FUNCTIONS: tuple[str, ...] = ("GOVERN", "MAP", "MEASURE", "MANAGE")

_PROBES = ("probes.exposure", "probes.extraction", "probes.membership")

# subcategory -> (facts, whom to ask, needs a human statement too)
_RMF_MAP: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "GOVERN 1.1": (("gate",), PROVIDER, True),
    "GOVERN 1.4": (("gate",), PROVIDER, True),
    "GOVERN 2.1": (("reviews",), PROVIDER, True),
    "GOVERN 3.2": (("reviews",), PROVIDER, True),
    "GOVERN 4.3": (_PROBES, SECURITY, True),
    "GOVERN 6.1": (("datasets.license",), PROVIDER, True),
    "MAP 2.1": (("training.method",), ML, False),
    "MAP 2.3": (("probes.dp_audit", "bias"), ML, True),
    "MAP 4.1": (("datasets", "training.base_model.weights_sha256"), DATA, True),
    "MAP 4.2": (("gate",), PROVIDER, True),
    "MAP 5.1": (("bias",), PROVIDER, True),
    "MEASURE 1.1": (("probes.exposure", "probes.membership", "bias"), ML, True),
    "MEASURE 2.1": (("bias", *_PROBES), ML, False),
    "MEASURE 2.3": (("bias",), ML, True),
    "MEASURE 2.5": (("training.val_loss",), ML, True),
    "MEASURE 2.7": (("probes.membership", "probes.extraction"), SECURITY, False),
    "MEASURE 2.10": (("training.dp", "datasets.pii", *_PROBES, "probes.dp_audit"), ML, False),
    "MEASURE 2.11": (("bias",), ML, False),
    "MEASURE 2.12": (("training.compute",), ML, True),
    "MEASURE 2.13": (("probes.dp_audit",), ML, True),
    "MANAGE 1.1": (("gate",), REVIEWER, False),
    "MANAGE 3.1": (("datasets",), DATA, True),
    "MANAGE 3.2": (("training.base_model.weights_sha256",), ML, True),
}

# The 12 generative-AI risks of NIST AI 600-1 (section 2), with the evidence that speaks to them.
GAI_RISKS: tuple[tuple[str, tuple[str, ...], str, bool], ...] = (
    ("CBRN Information or Capabilities", (), SECURITY, True),
    ("Confabulation", (), ML, True),
    ("Dangerous, Violent, or Hateful Content", (), PROVIDER, True),
    ("Data Privacy", ("training.dp", "datasets.pii", *_PROBES, "probes.dp_audit"), ML, False),
    ("Environmental Impacts", ("training.compute",), ML, True),
    ("Harmful Bias and Homogenization", ("bias",), ML, True),
    ("Human-AI Configuration", (), PROVIDER, True),
    ("Information Integrity", (), PROVIDER, True),
    ("Information Security", ("probes.membership", "probes.extraction", "gate"), SECURITY, True),
    ("Intellectual Property", ("datasets.license",), PROVIDER, True),
    ("Obscene, Degrading, and/or Abusive Content", (), PROVIDER, True),
    (
        "Value Chain and Component Integration",
        ("training.base_model.weights_sha256", "datasets"),
        ML,
        True,
    ),
)


def subcategories() -> list[dict[str, str]]:
    text = (
        resources.files("finetrail.templates")
        .joinpath("nist_ai_rmf_subcategories.json")
        .read_text("utf-8")
    )
    entries: list[dict[str, str]] = json.loads(text)
    return entries


def rmf_set() -> RequirementSet:
    reqs = []
    for e in subcategories():
        facts, ask, human = _RMF_MAP.get(e["id"], ((), PROVIDER, True))
        reqs.append(
            Requirement(
                id=e["id"],
                title=e["paraphrase"],
                group=e["function"],
                facts=facts,
                ask=ask,
                human=human,
            )
        )
    return RequirementSet(
        key="nist-ai-rmf",
        title="NIST AI RMF 1.0 profile",
        regime_version=RMF_VERSION,
        missing="not addressed",
        requirements=tuple(reqs),
    )


def gai_set() -> RequirementSet:
    reqs = tuple(
        Requirement(
            id=f"GAI-{i:02d}",
            title=name,
            group="NIST AI 600-1 risks",
            facts=facts,
            ask=ask,
            human=human,
        )
        for i, (name, facts, ask, human) in enumerate(GAI_RISKS, start=1)
    )
    return RequirementSet(
        key="nist-ai-600-1",
        title="NIST AI 600-1 generative-AI risks",
        regime_version=GAI_VERSION,
        missing="not addressed",
        requirements=reqs,
    )
