"""``evidence/gate/<n>.json``: one release-gate decision (its attestation is ``<n>.dsse.json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from finetrail.governance.evidence.base import EvidenceRecord, Frozen
from finetrail.governance.evidence.workspace import SHA256_PATTERN

Outcome = Literal["pass", "fail", "waived", "error"]


class MeasuredValue(Frozen):
    pointer: str  # the concrete path, e.g. datasets[1].pii.residual
    value: Any


class EvidenceDigest(Frozen):
    path: str  # workspace-relative file ("ledger.jsonl" for computed kinds)
    sha256: str | None


class AppliedWaiver(Frozen):
    justification: str
    approver: str
    expires: str
    applied: bool
    note: str


class RuleOutcome(Frozen):
    rule: str
    title: str
    severity: Literal["error", "warning"]
    outcome: Outcome
    # ok, threshold, null, missing, stale, tampered, unparseable, type, integrity, approvals
    reason: str
    message: str
    path: str | None = None
    op: str | None = None
    threshold: Any = None
    ref: str | None = None
    reference_values: tuple[Any, ...] = ()
    measured: tuple[MeasuredValue, ...] = ()
    evidence: tuple[EvidenceDigest, ...] = ()
    controls: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    waiver: AppliedWaiver | None = None
    policy_line: int | None = None

    @property
    def blocking(self) -> bool:
        return self.severity == "error" and self.outcome in ("fail", "error")


class GateSubject(Frozen):
    adapter_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    adapter_path: str | None = None
    manifest_files_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)


class Integrity(Frozen):
    ok: bool
    errors: int
    warnings: int
    findings: tuple[str, ...] = ()  # the first problems verify reported


class ApprovalState(Frozen):
    required: bool
    satisfied: bool
    approvers: tuple[str, ...] = ()  # current, valid, counted approvals ("name (role)")
    problems: tuple[str, ...] = ()


class Signer(Frozen):
    keyid: str = Field(pattern=SHA256_PATTERN)
    public_key: str  # base64 of the raw 32-byte Ed25519 public key


class ReleaseBinding(Frozen):
    """Which release a decision was taken for (signed with it, so that it cannot be replayed).

    ``workspace_sha256`` is the digest of ``workspace.json`` that the ledger's first event
    records (model, version, owner, creation time: the workspace's identity);
    ``ledger_entries``/``ledger_head`` name the ledger the gate judged (its length and the digest
    of its last entry), so the decision holds only in a workspace with that very history.
    """

    model: str
    version: str
    workspace_sha256: str = Field(pattern=SHA256_PATTERN)
    ledger_entries: int = Field(ge=0)
    ledger_head: str | None = Field(default=None, pattern=SHA256_PATTERN)
    # the workspace id and the RFC 9162 root of the judged log (its checkpoint: size
    # ``ledger_entries``, this root); absent in decisions taken before checkpoints
    workspace_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    ledger_root: str | None = Field(default=None, pattern=SHA256_PATTERN)


class GateDecision(EvidenceRecord):
    record_type: Literal["gate"] = "gate"
    sequence: int = Field(ge=1)
    time: datetime
    policy_id: str
    policy_version: str
    policy_title: str
    policy_sha256: str = Field(pattern=SHA256_PATTERN)
    policy_file: str
    written_against: dict[str, str]
    model: str
    model_version: str
    subject: GateSubject
    integrity: Integrity
    passed: bool
    approved: bool
    approvals: ApprovalState
    counts: dict[str, int]
    outcomes: tuple[RuleOutcome, ...]
    evidence: dict[str, str | None]  # every evidence file read -> sha256
    signer: Signer | None = None
    release: ReleaseBinding | None = None  # absent in decisions recorded before release binding
    trust_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)  # the trust file used
