"""Test support for the gate: a workspace whose evidence passes every shipped policy.

The evidence is built by the shared factory (tests/evidence_factory.py) with the real record
classes registered in ``governance/evidence/registry.py``. :func:`build_workspace` writes a
complete workspace through the Workspace API; ``omit`` leaves kinds out, ``override`` changes
values by dotted key before the record's class validates them (so an override the class rejects
fails here, not in the gate).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetrail.governance.evidence import registry
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.bias import BiasAuditEvidence
from finetrail.governance.evidence.dataset import DatasetRecord
from finetrail.governance.evidence.mechanism import MechanismEvidence
from finetrail.governance.evidence.probes import (
    DPAuditEvidence,
    ExposureEvidence,
    ExtractionEvidence,
    MembershipEvidence,
)
from finetrail.governance.evidence.registry import EvidenceKind
from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.workspace import Workspace
from tests.support.evidence import add_adapter, evolve, kind_of, standard_records, write_records
from tests.support.trust import fixture_signing

# the kinds of docs/evidence-contract.md that are evidence files, and their record classes
CONTRACT: tuple[tuple[str, type[EvidenceRecord]], ...] = (
    ("datasets", DatasetRecord),
    ("training", TrainingEvidence),
    ("probes.exposure", ExposureEvidence),
    ("probes.extraction", ExtractionEvidence),
    ("probes.membership", MembershipEvidence),
    ("probes.dp_audit", DPAuditEvidence),
    ("bias", BiasAuditEvidence),
    ("mechanism", MechanismEvidence),
)
CONTRACT_NAMES = tuple(c[0] for c in CONTRACT)


def contract_kinds() -> tuple[EvidenceKind, ...]:
    """The registered kinds; every contract kind must be registered with its real class."""
    missing = [
        (name, model)
        for name, model in CONTRACT
        if (kind := registry.kind_by_name(name)) is None or kind.model is not model
    ]
    assert not missing, f"contract kinds not registered with their record class: {missing}"
    return registry.EVIDENCE_KINDS


@dataclass
class Built:
    ws: Workspace
    adapter_sha: str
    files: dict[str, str]  # rel -> kind

    @property
    def root(self) -> Path:
        return self.ws.root


def build_workspace(
    root: Path,
    *,
    omit: frozenset[str] | set[str] = frozenset(),
    override: dict[str, dict[str, Any]] | None = None,
    owner: str = "alice",
    purpose: str = "answer customer-support questions",
    provider: str = "Example Org",
    signed: bool = True,
) -> Built:
    """Write a workspace whose evidence passes every shipped policy.

    ``override`` maps a kind (or one file, e.g. ``evidence/datasets/<sha>.json``) to dotted
    changes applied to every record of that kind. Every ledger entry is signed with the
    fixtures' role keys (tests/support/trust.py ``fixture_signing``, named by ``trust_for``)
    unless a key is already set, or ``signed`` is false (development mode: unsigned entries).
    """
    with fixture_signing(signed):
        return _build_workspace(
            root, omit=omit, override=override, owner=owner, purpose=purpose, provider=provider
        )


def _build_workspace(
    root: Path,
    *,
    omit: frozenset[str] | set[str],
    override: dict[str, dict[str, Any]] | None,
    owner: str,
    purpose: str,
    provider: str,
) -> Built:
    ws = Workspace.init(
        root,
        model="support-assistant",
        version="1.0.0",
        owner=owner,
        intended_purpose=purpose,
        provider=provider,
    )
    adapter_sha = add_adapter(ws, actor=owner)
    records = standard_records(adapter_sha)
    for key, changes in (override or {}).items():
        hits = [rel for rel, rec in records.items() if rel == key or kind_of(rec) == key]
        assert hits, f"override names no record: {key}"
        for rel in hits:
            records[rel] = evolve(records[rel], changes)
    kept = {rel: rec for rel, rec in records.items() if kind_of(rec) not in omit}
    files = write_records(ws, kept, actor=owner)
    return Built(ws, adapter_sha, files)


# -- reviewers -------------------------------------------------------------------------------------
REVIEWERS = {"bob": ("model-risk", "risk-owner"), "carol": ("privacy",), "dave": ("risk-owner",)}
APPROVALS = (("bob", "model-risk"), ("carol", "privacy"), ("dave", "risk-owner"))


def make_key(keydir: Path, name: str) -> tuple[Path, Path]:
    from finetrail.governance import keys as ed25519

    keydir.mkdir(parents=True, exist_ok=True)
    key = ed25519.generate_key()
    private, public = keydir / f"{name}.key", keydir / f"{name}.pub"
    private.write_bytes(ed25519.private_pem(key))
    public.write_bytes(ed25519.public_pem(key.public_key()))
    return private, public


def add_reviewers(
    root: Path, keydir: Path, reviewers: dict[str, tuple[str, ...]] | None = None
) -> dict[str, Path]:
    """Keys for each reviewer, trusted in the workspace keyring; returns name -> private key file."""
    from finetrail.governance.review import trust_in_workspace

    keys = {}
    with fixture_signing():
        for name, roles in (reviewers or REVIEWERS).items():
            private, public = make_key(keydir, name)
            trust_in_workspace(
                root, name=name, public_key_file=str(public), roles=roles, actor="alice"
            )
            keys[name] = private
    return keys


def approve(
    root: Path, keys: dict[str, Path], approvals: tuple[tuple[str, str], ...] = APPROVALS
) -> None:
    from finetrail.governance.review import record_review

    for name, role in approvals:
        record_review(
            root,
            decision="approve",
            reviewer=name,
            role=role,
            key_file=keys[name],
            note=f"reviewed as {role}",
        )
