"""The literal registry of evidence kinds: where each lives in a workspace and its record class.

Policies address evidence by dotted paths whose first part(s) name a kind from this registry:
``training.dp.epsilon``, ``datasets[*].license``, ``probes.exposure.max_bits``. A kind with
``many=True`` is a list (address its items with ``[*]`` or ``[N]``).

Each layer adds its kinds here, one line each. ``model`` is an import string so this module stays
light; :func:`record_class` resolves it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from finetrail.governance.evidence.base import EvidenceRecord


@dataclass(frozen=True)
class EvidenceKind:
    name: str  # the policy path prefix, e.g. "training" or "probes.exposure"
    model: str  # "module:Class"
    location: str  # path (or glob, when many) relative to the workspace
    many: bool = False


# fmt: off
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = (
    EvidenceKind("workspace", "finetrail.governance.evidence.workspace:WorkspaceMetadata", "workspace.json"),
    EvidenceKind("gate", "finetrail.governance.evidence.gate:GateDecision", "evidence/gate/*[0-9].json", many=True),
    EvidenceKind("bias", "finetrail.governance.evidence.bias:BiasAuditEvidence", "evidence/bias.json"),
    EvidenceKind("training", "finetrail.governance.evidence.training:TrainingEvidence", "evidence/training.json"),
    EvidenceKind("datasets", "finetrail.governance.evidence.dataset:DatasetRecord", "evidence/datasets/*.json", many=True),
    EvidenceKind("probes.exposure", "finetrail.governance.evidence.probes:ExposureEvidence", "evidence/probes/exposure.json"),
    EvidenceKind("probes.extraction", "finetrail.governance.evidence.probes:ExtractionEvidence", "evidence/probes/extraction.json"),
    EvidenceKind("probes.membership", "finetrail.governance.evidence.probes:MembershipEvidence", "evidence/probes/membership.json"),
    EvidenceKind("probes.dp_audit", "finetrail.governance.evidence.probes:DPAuditEvidence", "evidence/probes/dp_audit.json"),
)
# fmt: on


def record_class(kind: EvidenceKind) -> type[EvidenceRecord]:
    module, _, name = kind.model.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, EvidenceRecord)):
        raise TypeError(f"{kind.model} is not an EvidenceRecord")
    return cls


def kind_by_name(name: str) -> EvidenceKind | None:
    for kind in EVIDENCE_KINDS:
        if kind.name == name:
            return kind
    return None
