"""Review records: the signed ledger payload of a review, the keyring, and the computed summary.

Reviews are ledger events (``review.approve``, ``review.reject``, ``review.comment``), signed with
the reviewer's Ed25519 key over the entry (:meth:`LedgerEntry.signing_bytes`). Each names the
manifest files digest it binds to. ``reviews`` is a computed evidence kind
(:class:`ReviewSummary`); policies read ``reviews.approvals``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from finetrail.governance.evidence.base import EvidenceRecord, Frozen
from finetrail.governance.evidence.workspace import SHA256_PATTERN

Decision = Literal["approve", "reject", "comment"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"


class ReviewPayload(Frozen):
    decision: Decision
    reviewer: str = Field(pattern=NAME_PATTERN)
    role: str = Field(min_length=1, max_length=100)
    note: str = Field(max_length=10_000)
    manifest_sha256: str = Field(pattern=SHA256_PATTERN)
    keyid: str = Field(pattern=SHA256_PATTERN)
    model: str
    version: str
    # the digest of workspace.json the ledger's first event records (the release's identity);
    # absent in reviews signed before release binding
    workspace_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    # the workspace id and the log checkpoint (size, RFC 9162 root) the reviewer signed after;
    # absent in reviews signed before checkpoints
    workspace_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    ledger_size: int | None = Field(default=None, ge=0)
    ledger_root: str | None = Field(default=None, pattern=SHA256_PATTERN)


class TrustedKey(Frozen):
    name: str = Field(pattern=NAME_PATTERN)
    keyid: str = Field(pattern=SHA256_PATTERN)  # sha256 of the raw public key
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    roles: tuple[str, ...] = ()  # roles this person may review in ("gate" for a CI signer)


class Keyring(EvidenceRecord):
    """``keyring.json``: the public keys of trusted reviewers (and gate signers)."""

    record_type: Literal["keyring"] = "keyring"
    keys: tuple[TrustedKey, ...] = ()

    @field_validator("keys")
    @classmethod
    def _unique(cls, v: tuple[TrustedKey, ...]) -> tuple[TrustedKey, ...]:
        names = [k.name for k in v]
        ids = [k.keyid for k in v]
        if len(set(names)) != len(names):
            raise ValueError("a name appears twice")
        if len(set(ids)) != len(ids):
            raise ValueError("a key appears twice")
        return v

    def by_keyid(self, keyid: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.keyid == keyid), None)

    def by_name(self, name: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.name == name), None)


class ReviewSummary(EvidenceRecord):
    """Computed at gate time from the ledger: the reviews that count now."""

    record_type: Literal["reviews"] = "reviews"
    manifest_sha256: str | None = None
    approvals: int = 0  # current, signed, trusted approvals by distinct people (authors excluded)
    rejections: int = 0  # current rejections
    comments: int = 0
    stale: int = 0  # approvals bound to files that have changed since
    invalid: int = 0  # entries with unknown keys or bad signatures
    approvers: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
