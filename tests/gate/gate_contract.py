"""Test support for the gate: evidence written per docs/evidence-contract.md.

The record classes of datasets, training, probes and bias are written by other layers. Until they
are registered in EVIDENCE_KINDS, :func:`use_contract_kinds` registers the test-local classes below
(which carry exactly the contract's field names); once the real classes are registered, they are
used instead and the JSON built here must validate against them.

:func:`build_workspace` writes a complete workspace through the Workspace API whose evidence passes
every shipped policy; ``omit`` leaves kinds out, ``override`` changes values by dotted key.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from finetrail.governance.evidence import registry
from finetrail.governance.evidence.base import EvidenceRecord, Frozen
from finetrail.governance.evidence.registry import EvidenceKind
from finetrail.governance.workspace import Workspace

HERE = Path(__file__).resolve().parent


# -- test-local record classes (contract field names) --------------------------------------------
class Pii(Frozen):
    records_with_pii: int
    counts: dict[str, int]
    coverage: dict[str, str]
    score_threshold: float
    residual: int | None = None


class DatasetRecord(EvidenceRecord):
    record_type: Literal["dataset"] = "dataset"
    name: str
    sha256: str
    merkle_root: str
    records: int
    license: str | None
    source: str
    collection: str
    legal_basis: str
    purpose: str
    derived_from: tuple[str, ...] = ()
    transform: str | None = None
    pii: Pii


class BaseModelRef(Frozen):
    config_sha256: str
    weights_sha256: str
    tokenizer_sha256: str


class AdapterRef(Frozen):
    sha256: str
    path: str


class TrainingDataset(Frozen):
    sha256: str
    role: str


class DP(Frozen):
    enabled: bool
    epsilon: float | None
    epsilon_rdp: float | None
    delta: float | None
    accountant: str | None
    noise_multiplier: float | None
    sample_rate: float | None
    steps: int
    max_grad_norm: float | None
    clipping_mode: str | None


class Compute(Frozen):
    wall_seconds: float
    tokens: int
    flops: float | None
    device: str


class EUAIAct(Frozen):
    modification_threshold_flops: float | None
    substantial_modification: bool


class EarlyStopping(Frozen):
    stopped_early: bool


class MLflowRef(Frozen):
    run_id: str | None
    registered_model: str | None = None
    model_version: str | None = None
    tracking_uri: str | None = None


class TrainingEvidence(EvidenceRecord):
    record_type: Literal["training"] = "training"
    completed: bool
    method: Literal["lora", "prefix", "ia3", "full"]
    trainable_parameters: int
    base_model: BaseModelRef
    adapter: AdapterRef
    datasets: tuple[TrainingDataset, ...]
    dp: DP
    compute: Compute
    eu_ai_act: EUAIAct
    early_stopping: EarlyStopping
    val_loss: tuple[float, ...]
    mlflow: MLflowRef


class Subject(Frozen):
    adapter_sha256: str
    base_weights_sha256: str | None = None


class RepStats(Frozen):
    mean_bits: float
    max_bits: float
    n: int


class ExposureEvidence(EvidenceRecord):
    record_type: Literal["probe.exposure"] = "probe.exposure"
    subject: Subject
    max_bits: float
    space_bits: float
    by_repetition: dict[str, RepStats]


class ExtractionEvidence(EvidenceRecord):
    record_type: Literal["probe.extraction"] = "probe.extraction"
    subject: Subject
    memorized_identifiers: int
    memorized_rate: float
    base_model_matches: int
    prompts: int


class Attack(Frozen):
    auc: float
    tpr_at_1pct_fpr: float


class MembershipEvidence(EvidenceRecord):
    record_type: Literal["probe.membership"] = "probe.membership"
    subject: Subject
    max_auc: float
    attacks: dict[str, Attack]


class DPAuditEvidence(EvidenceRecord):
    record_type: Literal["probe.dp_audit"] = "probe.dp_audit"
    subject: Subject
    claimed_epsilon: float | None
    empirical_epsilon_lower_bound: float
    confidence: float
    verdict: Literal["consistent", "contradicted", "no_claim"]


class Task(Frozen):
    accuracy: float
    f1: float


class Interval(Frozen):
    value: float
    ci_low: float
    ci_high: float


class Delta(Frozen):
    delta: float
    ci_low: float
    ci_high: float


class BiasAuditEvidence(EvidenceRecord):
    record_type: Literal["bias"] = "bias"
    subject: Subject
    task: Task
    disparities: dict[str, Interval]
    finetune_effect: dict[str, Delta]
    too_small_groups: tuple[str, ...] = ()


# name, local class, location, many, file written by the builder (None for many kinds)
CONTRACT: tuple[tuple[str, str, str, bool], ...] = (
    ("datasets", "DatasetRecord", "evidence/datasets/*.json", True),
    ("training", "TrainingEvidence", "evidence/training.json", False),
    ("probes.exposure", "ExposureEvidence", "evidence/probes/exposure.json", False),
    ("probes.extraction", "ExtractionEvidence", "evidence/probes/extraction.json", False),
    ("probes.membership", "MembershipEvidence", "evidence/probes/membership.json", False),
    ("probes.dp_audit", "DPAuditEvidence", "evidence/probes/dp_audit.json", False),
    ("bias", "BiasAuditEvidence", "evidence/bias.json", False),
)
CONTRACT_NAMES = tuple(c[0] for c in CONTRACT)


def contract_kinds() -> tuple[EvidenceKind, ...]:
    """EVIDENCE_KINDS plus the test-local class of every contract kind not yet registered."""
    kinds = list(registry.EVIDENCE_KINDS)
    for name, cls, location, many in CONTRACT:
        if registry.kind_by_name(name) is None:
            kinds.append(EvidenceKind(name, f"gate_contract:{cls}", location, many))
    return tuple(kinds)


@pytest.fixture(name="use_contract_kinds")
def use_contract_kinds_fixture(monkeypatch: pytest.MonkeyPatch) -> tuple[EvidenceKind, ...]:
    """Register the test-local class of every contract kind that is not yet registered."""
    monkeypatch.syspath_prepend(str(HERE))
    kinds = contract_kinds()
    monkeypatch.setattr(registry, "EVIDENCE_KINDS", kinds)
    return kinds


# -- evidence that passes every shipped policy ---------------------------------------------------
def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


RAW_SHA = _h("raw support tickets")
CLEAN_SHA = _h("sanitised support tickets")


def evidence_data(adapter_sha: str, adapter_path: str) -> dict[str, Any]:
    """One JSON document per contract file (workspace-relative path -> data)."""
    subject = {"adapter_sha256": adapter_sha, "base_weights_sha256": _h("base weights")}
    dataset = {
        "records": 1000,
        "license": "CC-BY-4.0",
        "source": "synthetic support tickets (Faker)",
        "collection": "generated 2026-09 by the demo",
        "legal_basis": "no personal data (synthetic)",
        "purpose": "fine-tune a support assistant",
    }
    return {
        f"evidence/datasets/{RAW_SHA}.json": {
            **dataset,
            "name": "tickets-raw",
            "sha256": RAW_SHA,
            "merkle_root": _h("m1"),
            "derived_from": [],
            "transform": None,
            "pii": {
                "records_with_pii": 640,
                "counts": {"EMAIL_ADDRESS": 500, "US_SSN": 40},
                "coverage": {"EMAIL_ADDRESS": "EmailRecognizer", "US_SSN": "UsSsnRecognizer"},
                "score_threshold": 0.5,
                "residual": None,
            },
        },
        f"evidence/datasets/{CLEAN_SHA}.json": {
            **dataset,
            "name": "tickets-sanitised",
            "sha256": CLEAN_SHA,
            "merkle_root": _h("m2"),
            "derived_from": [RAW_SHA],
            "transform": "presidio-replace",
            "pii": {
                "records_with_pii": 0,
                "counts": {},
                "coverage": {"US_SSN": "UsSsnRecognizer"},
                "score_threshold": 0.5,
                "residual": 0,
            },
        },
        "evidence/training.json": {
            "completed": True,
            "method": "lora",
            "trainable_parameters": 73728,
            "base_model": {
                "config_sha256": _h("config"),
                "weights_sha256": _h("base weights"),
                "tokenizer_sha256": _h("tokenizer"),
            },
            "adapter": {"sha256": adapter_sha, "path": adapter_path},
            "datasets": [{"sha256": CLEAN_SHA, "role": "train"}],
            "dp": {
                "enabled": True,
                "epsilon": 3.0,
                "epsilon_rdp": 3.2,
                "delta": 1e-6,
                "accountant": "prv",
                "noise_multiplier": 0.9,
                "sample_rate": 0.064,
                "steps": 51,
                "max_grad_norm": 1.0,
                "clipping_mode": "flat",
            },
            "compute": {"wall_seconds": 71.0, "tokens": 620000, "flops": 3.1e12, "device": "cpu"},
            "eu_ai_act": {
                "modification_threshold_flops": 1.0e22,
                "substantial_modification": False,
            },
            "early_stopping": {"stopped_early": False},
            "val_loss": [1.71, 1.68, 1.655],
            "mlflow": {"run_id": "0123456789abcdef"},
        },
        "evidence/probes/exposure.json": {
            "subject": subject,
            "max_bits": 3.1,
            "space_bits": 19.93,
            "by_repetition": {
                "1": {"mean_bits": 1.5, "max_bits": 3.1, "n": 7},
                "4": {"mean_bits": 1.2, "max_bits": 2.0, "n": 7},
                "16": {"mean_bits": 1.8, "max_bits": 2.9, "n": 6},
            },
        },
        "evidence/probes/extraction.json": {
            "subject": subject,
            "memorized_identifiers": 0,
            "memorized_rate": 0.0,
            "base_model_matches": 0,
            "prompts": 200,
        },
        "evidence/probes/membership.json": {
            "subject": subject,
            "max_auc": 0.53,
            "attacks": {
                "loss": {"auc": 0.53, "tpr_at_1pct_fpr": 0.012},
                "zlib": {"auc": 0.51, "tpr_at_1pct_fpr": 0.01},
            },
        },
        "evidence/probes/dp_audit.json": {
            "subject": subject,
            "claimed_epsilon": 3.0,
            "empirical_epsilon_lower_bound": 0.4,
            "confidence": 0.95,
            "verdict": "consistent",
        },
        "evidence/bias.json": {
            "subject": subject,
            "task": {"accuracy": 0.84, "f1": 0.81},
            "disparities": {
                "demographic_parity_difference": {"value": 0.04, "ci_low": 0.01, "ci_high": 0.09},
                "demographic_parity_ratio": {"value": 0.95, "ci_low": 0.88, "ci_high": 0.99},
                "equalized_odds_difference": {"value": 0.05, "ci_low": 0.02, "ci_high": 0.11},
                "equalized_odds_ratio": {"value": 0.93, "ci_low": 0.85, "ci_high": 0.98},
                "accuracy_difference": {"value": 0.02, "ci_low": 0.0, "ci_high": 0.05},
            },
            "finetune_effect": {
                "demographic_parity_difference": {"delta": 0.01, "ci_low": -0.02, "ci_high": 0.04},
            },
            "too_small_groups": [],
        },
    }


def kind_of(rel: str) -> str:
    for name, _, location, many in CONTRACT:
        if (many and rel.startswith(location.rsplit("/", 1)[0] + "/")) or rel == location:
            return name
    raise KeyError(rel)


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        data = data[k]
    data[keys[-1]] = value


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
) -> Built:
    """Write a workspace with contract evidence (needs :func:`use_contract_kinds` active)."""
    ws = Workspace.init(
        root,
        model="support-assistant",
        version="1.0.0",
        owner=owner,
        intended_purpose=purpose,
        provider=provider,
    )
    adapter_bytes = b"safetensors-adapter:" + hashlib.sha256(str(root).encode()).digest()
    adapter_rel = "artifacts/adapter/adapter_model.safetensors"
    ws.write_bytes(adapter_rel, adapter_bytes, event="artifact.added", actor=owner)
    adapter_sha = hashlib.sha256(adapter_bytes).hexdigest()
    docs = copy.deepcopy(evidence_data(adapter_sha, adapter_rel))
    for kind_key, changes in (override or {}).items():
        for rel, doc in docs.items():
            if rel == kind_key or kind_of(rel) == kind_key:
                for dotted, value in changes.items():
                    set_dotted(doc, dotted, value)
    files = {}
    for rel, doc in docs.items():
        kind = kind_of(rel)
        if kind in omit:
            continue
        cls = registry.record_class(registry.kind_by_name(kind))  # type: ignore[arg-type]
        record = cls.parse(doc, source=rel)
        ws.write_record(rel, record, event=f"{kind}.recorded", actor=owner)
        files[rel] = kind
    return Built(ws, adapter_sha, files)


# -- reviewers -------------------------------------------------------------------------------------
REVIEWERS = {"bob": ("model-risk", "risk-owner"), "carol": ("privacy",), "dave": ("risk-owner",)}
APPROVALS = (("bob", "model-risk"), ("carol", "privacy"), ("dave", "risk-owner"))


def make_key(keydir: Path, name: str) -> tuple[Path, Path]:
    from finetrail.governance import attest

    keydir.mkdir(parents=True, exist_ok=True)
    key = attest.generate_key()
    private, public = keydir / f"{name}.key", keydir / f"{name}.pub"
    private.write_bytes(attest.private_pem(key))
    public.write_bytes(attest.public_pem(key.public_key()))
    return private, public


def add_reviewers(
    root: Path, keydir: Path, reviewers: dict[str, tuple[str, ...]] | None = None
) -> dict[str, Path]:
    """Keys for each reviewer, trusted in the workspace keyring; returns name -> private key file."""
    from finetrail.governance.review import trust_in_workspace

    keys = {}
    for name, roles in (reviewers or REVIEWERS).items():
        private, public = make_key(keydir, name)
        trust_in_workspace(root, name=name, public_key_file=str(public), roles=roles, actor="alice")
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
