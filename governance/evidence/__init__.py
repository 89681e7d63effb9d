"""Evidence records: the one format in which every layer states what it did.

Every record is a frozen pydantic model with ``extra="forbid"``, a ``schema_version`` and the
``finetrail_version``, written as canonical JSON and addressed by the SHA-256 of those bytes.
:mod:`finetrail.governance.evidence.registry` lists where each kind lives in a workspace and the
dotted paths policies may read.
"""

from finetrail.governance.evidence.base import EvidenceRecord, Frozen
from finetrail.governance.evidence.workspace import (
    GENESIS,
    LedgerAnchor,
    LedgerEntry,
    Manifest,
    ManifestFile,
    WorkspaceMetadata,
)

__all__ = [
    "GENESIS",
    "EvidenceRecord",
    "Frozen",
    "LedgerAnchor",
    "LedgerEntry",
    "Manifest",
    "ManifestFile",
    "WorkspaceMetadata",
]
