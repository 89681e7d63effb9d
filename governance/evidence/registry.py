"""The literal registry of evidence kinds: each kind's record class and where it lives.

This is the only place a workspace's evidence locations are spelled; everything else asks
:func:`location` (or one of the helpers below) and reads through
:class:`~finetrail.governance.evidence.store.EvidenceSet`.

Policies address evidence by dotted paths whose first part(s) name a kind from this registry:
``training.dp.epsilon``, ``datasets[*].license``, ``probes.exposure.max_bits``. A kind with
``many=True`` is a list (address its items with ``[*]`` or ``[N]``). Kinds computed from the
ledger rather than read from a file (``reviews``) are :data:`COMPUTED_KINDS`.

Adding an evidence kind: write its record class in ``governance/evidence/<kind>.py`` and add one
line to :data:`EVIDENCE_KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.bias import BiasAuditEvidence
from finetrail.governance.evidence.dataset import DatasetRecord, TrainingDataSummary
from finetrail.governance.evidence.gate import GateDecision
from finetrail.governance.evidence.mechanism import MechanismEvidence
from finetrail.governance.evidence.probes import (
    DPAuditEvidence,
    ExposureEvidence,
    ExtractionEvidence,
    MembershipEvidence,
)
from finetrail.governance.evidence.review import ReviewSummary
from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.evidence.workspace import LedgerSummary, WorkspaceMetadata


@dataclass(frozen=True)
class EvidenceKind:
    name: str  # the policy path prefix, e.g. "training" or "probes.exposure"
    model: type[EvidenceRecord]
    location: str  # path (or glob, when many) relative to the workspace
    many: bool = False


@dataclass(frozen=True)
class ComputedKind:
    """A kind computed at gate time from the ledger (``reviews``), addressed like file kinds."""

    name: str
    model: type[EvidenceRecord]


EVIDENCE_DIR = "evidence"
DATASETS_DIR = f"{EVIDENCE_DIR}/datasets"
PROBES_DIR = f"{EVIDENCE_DIR}/probes"
GATE_DIR = f"{EVIDENCE_DIR}/gate"

# fmt: off
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = (
    EvidenceKind("workspace", WorkspaceMetadata, "workspace.json"),
    EvidenceKind("gate", GateDecision, f"{GATE_DIR}/*[0-9].json", many=True),
    EvidenceKind("bias", BiasAuditEvidence, f"{EVIDENCE_DIR}/bias.json"),
    EvidenceKind("training", TrainingEvidence, f"{EVIDENCE_DIR}/training.json"),
    EvidenceKind("mechanism", MechanismEvidence, f"{EVIDENCE_DIR}/mechanism.json"),
    EvidenceKind("datasets", DatasetRecord, f"{DATASETS_DIR}/*.json", many=True),
    EvidenceKind("probes.exposure", ExposureEvidence, f"{PROBES_DIR}/exposure.json"),
    EvidenceKind("probes.extraction", ExtractionEvidence, f"{PROBES_DIR}/extraction.json"),
    EvidenceKind("probes.membership", MembershipEvidence, f"{PROBES_DIR}/membership.json"),
    EvidenceKind("probes.dp_audit", DPAuditEvidence, f"{PROBES_DIR}/dp_audit.json"),
)
COMPUTED_KINDS: tuple[ComputedKind, ...] = (
    ComputedKind("reviews", ReviewSummary),
    ComputedKind("training_data", TrainingDataSummary),
    ComputedKind("ledger", LedgerSummary),
)
# fmt: on

PROBE_NAMES: tuple[str, ...] = tuple(
    k.name.removeprefix("probes.") for k in EVIDENCE_KINDS if k.name.startswith("probes.")
)


def record_class(kind: EvidenceKind | ComputedKind) -> type[EvidenceRecord]:
    return kind.model


def kind_by_name(name: str) -> EvidenceKind | None:
    for kind in EVIDENCE_KINDS:
        if kind.name == name:
            return kind
    return None


def computed_kind(name: str) -> ComputedKind | None:
    return next((k for k in COMPUTED_KINDS if k.name == name), None)


def location(name: str) -> str:
    """The workspace-relative file of a single-record kind (``training``, ``probes.exposure``)."""
    kind = kind_by_name(name)
    if kind is None or kind.many:
        raise KeyError(f"{name!r} is not a single-record evidence kind")
    return kind.location


def probe_location(probe: str) -> str:
    """``probes.<probe>``'s file."""
    return location(f"probes.{probe}")


def dataset_location(sha256: str) -> str:
    """The record of the dataset whose file has this SHA-256."""
    return f"{DATASETS_DIR}/{sha256}.json"


def gate_location(seq: int) -> str:
    """The ``seq``-th gate decision."""
    return f"{GATE_DIR}/{seq:04d}.json"


def gate_envelope_location(seq: int) -> str:
    """The DSSE envelope attesting the ``seq``-th gate decision."""
    return f"{GATE_DIR}/{seq:04d}.dsse.json"
