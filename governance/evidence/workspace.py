"""Records of the workspace itself: its metadata, its manifest and its ledger entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from finetrail.governance.evidence.base import EvidenceRecord, Frozen
from finetrail.governance.io import canonical_json, sha256_bytes

SHA256_PATTERN = r"^[0-9a-f]{64}$"
GENESIS = "0" * 64


WORKSPACE_ID_PATTERN = r"^[0-9a-f]{32}$"


class WorkspaceMetadata(EvidenceRecord):
    """``workspace.json``: which model release this workspace documents.

    ``workspace_id`` is a random 128-bit id (hex) made at ``init``; checkpoints, gate
    attestations and approvals name it, so that they cannot be replayed into another workspace.
    Workspaces made before it have none (``verify`` reports that); their ``workspace.json`` keeps
    its bytes (the field is left out of the JSON when absent).
    """

    record_type: Literal["workspace"] = "workspace"
    workspace_id: str | None = Field(default=None, pattern=WORKSPACE_ID_PATTERN)
    model: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=100)
    owner: str = Field(min_length=1, max_length=200)
    created: datetime
    description: str = ""
    intended_purpose: str = ""
    provider: str = ""
    contacts: tuple[str, ...] = ()

    def to_json_dict(self) -> dict[str, Any]:
        data = super().to_json_dict()
        if data.get("workspace_id") is None:
            data.pop("workspace_id", None)
        return data


class ManifestFile(Frozen):
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)


class LedgerAnchor(Frozen):
    entries: int = Field(ge=0)
    head: str = Field(pattern=SHA256_PATTERN)


class LedgerSummary(EvidenceRecord):
    """Computed at gate time from the ledger (policy kind ``ledger``): how its entries are
    signed. ``not_trusted`` counts entries that are unsigned or whose signature does not count
    under the trust root for the entry's role; it is null without a trust root (null never
    passes a rule)."""

    record_type: Literal["ledger"] = "ledger"
    entries: int = Field(ge=0)
    unsigned: int = Field(ge=0)
    not_trusted: int | None = None
    workspace_id: str | None = None
    checkpoints: int = Field(default=0, ge=0)


class Manifest(EvidenceRecord):
    """``manifest.json``: SHA-256 of every evidence file and artifact, and the ledger's head.

    Reviews sign :meth:`files_digest`, the digest of the file map alone, so an approval binds
    to exactly those files.
    """

    record_type: Literal["manifest"] = "manifest"
    files: dict[str, ManifestFile] = Field(default_factory=dict)
    ledger: LedgerAnchor

    def files_digest(self) -> str:
        return sha256_bytes(canonical_json({k: v.model_dump() for k, v in self.files.items()}))


class LedgerEntry(EvidenceRecord):
    """One line of ``ledger.jsonl``.

    ``digest`` is the SHA-256 of the entry's canonical JSON without ``digest``; ``prev`` is the
    previous entry's digest (zeros for the first). ``signature`` (base64 Ed25519 over
    :meth:`signing_bytes`) and ``signer`` are set by signed events such as reviews.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    record_type: Literal["ledger_entry"] = "ledger_entry"
    seq: int = Field(ge=0)
    kind: str = Field(min_length=1, pattern=r"^[a-z0-9_.-]+$")
    time: datetime
    actor: str = Field(min_length=1)
    payload: dict[str, Any] = Field(default_factory=dict)
    payload_digest: str = Field(pattern=SHA256_PATTERN)
    prev: str = Field(pattern=SHA256_PATTERN)
    signer: str | None = None
    signature: str | None = None
    digest: str = Field(pattern=SHA256_PATTERN)

    @field_validator("time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("time must carry a timezone")
        return v

    def body(self, *, with_signature: bool = True) -> dict[str, Any]:
        data = self.to_json_dict()
        data.pop("digest")
        if not with_signature:
            data.pop("signature")
            data.pop("signer")
        return data

    def compute_digest(self) -> str:
        return sha256_bytes(canonical_json(self.body()))

    def signing_bytes(self) -> bytes:
        """What a signer signs: the entry without digest, signer and signature."""
        return canonical_json(self.body(with_signature=False))

    def line(self) -> bytes:
        """The entry as one ledger line (canonical JSON, newline-terminated)."""
        return self.canonical_bytes()
