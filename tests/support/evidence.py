"""Valid evidence records of every kind, built with the real record classes, for the tests.

Each builder fills a record the way its producer does (field values copied from a workspace
written by ``finetrail demo --quick``: governance/provenance/api.py for datasets,
training/evidence.py for training, governance/probes/runner.py for the probes,
governance/bias/_audit.py for the bias audit, governance/gate/evaluate.py for gate decisions) and
validates it through the class (``Class.parse``), so a record the class would reject cannot be
built here. Keyword arguments set the values tests vary; ``changes={"dotted.path": value}``
sets any other field before validation.

:func:`standard_records` gives one complete release (two datasets, training, four probes, bias)
that passes every rule of every shipped policy; :func:`write_records` writes records through
``Workspace.write_record`` with the producers' ledger events.

Tests import it as ``from evidence_factory import ...`` (``tests/`` is on ``sys.path`` because
``tests/conftest.py`` is a rootdir conftest without ``__init__.py``).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.bias import BiasAuditEvidence
from finetrail.governance.evidence.dataset import (
    DatasetRecord,
    dataset_record_path,
    leaves_artifact_path,
)
from finetrail.governance.evidence.gate import GateDecision
from finetrail.governance.evidence.probes import (
    DPAuditEvidence,
    ExposureEvidence,
    ExtractionEvidence,
    MembershipEvidence,
)
from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.workspace import Workspace

R = TypeVar("R", bound=EvidenceRecord)

TIME = "2026-01-15T12:00:00+00:00"
ADAPTER_PATH = "artifacts/adapter/adapter_model.safetensors"
TRAINING_FILE = "evidence/training.json"
BIAS_FILE = "evidence/bias.json"
MECHANISM_FILE = "evidence/mechanism.json"
PROBE_FILES = {
    "exposure": "evidence/probes/exposure.json",
    "extraction": "evidence/probes/extraction.json",
    "membership": "evidence/probes/membership.json",
    "dp_audit": "evidence/probes/dp_audit.json",
}
# record_type -> (policy kind, ledger event the producer writes)
EVENTS = {
    "dataset": ("datasets", "dataset.registered"),
    "training": ("training", "trained"),
    "probes.exposure": ("probes.exposure", "probes.exposure"),
    "probes.extraction": ("probes.extraction", "probes.extraction"),
    "probes.membership": ("probes.membership", "probes.membership"),
    "probes.dp_audit": ("probes.dp_audit", "probes.dp_audit"),
    "bias": ("bias", "bias.audited"),
    "gate": ("gate", "gate.decided"),
    "mechanism": ("mechanism", "dp.mechanism_audited"),
}


def sha(text: str) -> str:
    """A stand-in SHA-256 digest, derived from ``text`` (stable across runs)."""
    return hashlib.sha256(text.encode()).hexdigest()


BASE_WEIGHTS = sha("base weights")
CANARIES = sha("canaries.json")
TOKEN_METHOD = "characters of the text fields / 4 (estimate; no tokenizer)"
LEAF_INPUT = "each non-blank line as stored, without its line terminator"
COVERAGE = {
    "CREDIT_CARD": "CreditCardRecognizer (Presidio pattern)",
    "EMAIL_ADDRESS": "EmailRecognizer (Presidio pattern; domain checked against the bundled "
    "Public Suffix List, offline)",
    "IP_ADDRESS": "IpRecognizer (Presidio pattern)",
    "PERSON": "NameListRecognizer (finetrail deny-list of first and last names from Faker "
    "locales en_US, en_GB; first+last and title+last pairs only)",
    "PHONE_NUMBER": "PhoneRecognizer (Presidio, python-phonenumbers; regions US, GB, DE)",
    "US_SSN": "UsSsnRecognizer (Presidio pattern)",
}
ENGINE = {
    "analyzer": "presidio-analyzer 2.2.366",
    "nlp_engine": "no_op",
    "spacy_model": None,
    "language": "en",
    "name_list": {"locales": ["en_US", "en_GB"], "source": "Faker person providers"},
    "prefilter": True,
    "fields": None,
}


# -- helpers ---------------------------------------------------------------------------------------
def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``"a.b.c"`` (list items by index: ``"datasets.0.role"``)."""
    keys = dotted.split(".")
    cur: Any = data
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    if isinstance(cur, list):
        cur[int(keys[-1])] = value
    else:
        cur[keys[-1]] = value


def _parse(cls: type[R], data: dict[str, Any], changes: Mapping[str, Any] | None) -> R:
    data = copy.deepcopy(data)
    for dotted, value in (changes or {}).items():
        set_dotted(data, dotted, copy.deepcopy(value))
    if cls is DatasetRecord:
        _commit(data, changes or {})
    return cls.parse(data, source=f"evidence_factory:{cls.__name__}")


def evolve(record: R, changes: Mapping[str, Any]) -> R:
    """``record`` with dotted fields changed, validated again by its class."""
    return _parse(type(record), record.to_json_dict(), changes)


def _subject(adapter_sha256: str, training_sha256: str | None = None) -> dict[str, Any]:
    return {
        "adapter_sha256": adapter_sha256,
        "base_weights_sha256": BASE_WEIGHTS,
        "training_evidence_sha256": training_sha256,
        "canaries_sha256": CANARIES,
    }


# -- datasets --------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def merkle_leaves(sha256: str, records: int) -> tuple[str, bytes]:
    """(Merkle root, leaves file bytes) over ``records`` synthetic JSONL records, built by the
    provenance layer's RFC 6962 builder, so ``finetrail verify`` can rebuild the root."""
    from finetrail.governance.provenance.merkle import MerkleBuilder

    out = io.BytesIO()
    builder = MerkleBuilder(out)
    builder.add_records(
        [
            json.dumps({"id": i, "text": f"note {i} of {sha256[:12]}"}).encode()
            for i in range(records)
        ]
    )
    return builder.root().hex(), out.getvalue()


def _commit(data: dict[str, Any], changes: Mapping[str, Any]) -> None:
    """Fill the Merkle commitment for the record's final digest and count (unless a test set it)."""
    if "merkle_root" in changes or not isinstance(data.get("records"), int) or data["records"] < 1:
        return
    root, leaves = merkle_leaves(data["sha256"], data["records"])
    data["merkle_root"] = root
    data["merkle"] = {
        **data["merkle"],
        "leaves_artifact": leaves_artifact_path(data["sha256"]),
        "leaves_sha256": hashlib.sha256(leaves).hexdigest(),
    }


def pii_summary(
    *,
    records_scanned: int,
    records_with_pii: int = 0,
    counts: Mapping[str, int] | None = None,
    coverage: Mapping[str, str] | None = None,
    residual: Mapping[str, int] | None = None,
    masked_examples: Sequence[tuple[str, str]] = (),
    score_threshold: float = 0.4,
) -> dict[str, Any]:
    """The ``pii`` part of a dataset record; ``masked_examples`` are (entity type, masked text)."""
    return {
        "records_scanned": records_scanned,
        "texts_scanned": records_scanned,
        "records_with_pii": records_with_pii,
        "counts": dict(counts or {}),
        "coverage": dict(COVERAGE if coverage is None else coverage),
        "not_covered": ["LOCATION", "ORGANIZATION", "NRP"],
        "score_threshold": score_threshold,
        "masked_examples": [
            {"entity_type": entity, "record": i, "field": "text", "masked": text}
            for i, (entity, text) in enumerate(masked_examples)
        ],
        "residual": None if residual is None else dict(residual),
        "engine": ENGINE,
    }


def dataset_record(
    *,
    name: str = "support-notes",
    sha256: str | None = None,
    records: int = 1000,
    license: str = "CC0-1.0",
    source: str = "synthetic://finetrail-demo (Faker, seed 0)",
    collection: str = "generated customer-support notes with realistic PII",
    legal_basis: str = "synthetic data (no real persons)",
    purpose: str = "fine-tuning the support assistant",
    derived_from: Sequence[str] = (),
    transform: str | None = None,
    transform_params: Mapping[str, Any] | None = None,
    pii: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> DatasetRecord:
    """A registered dataset (``pii=None``: registered without a scan, as the producer allows)."""
    digest = sha256 or sha(f"dataset {name}")
    data = {
        "name": name,
        "sha256": digest,
        "merkle_root": sha(f"merkle {digest}"),
        "records": records,
        "format": "jsonl",
        "size_bytes": records * 122,
        "filename": f"{name}.jsonl",
        "merkle": {
            "scheme": "rfc6962-sha256",
            "leaf_input": LEAF_INPUT,
            "leaves_artifact": leaves_artifact_path(digest),
            "leaves_sha256": sha(f"leaves {digest}"),
        },
        "fields": {
            "id": {"types": ["integer"], "present": records},
            "text": {"types": ["string"], "present": records},
        },
        "tokens": {"count": records * 27, "method": TOKEN_METHOD},
        "license": license,
        "source": source,
        "collection": collection,
        "legal_basis": legal_basis,
        "purpose": purpose,
        "derived_from": list(derived_from),
        "transform": transform,
        "transform_params": dict(transform_params or {}),
        "pii": None if pii is None else dict(pii),
        "registered": TIME,
    }
    return _parse(DatasetRecord, data, changes)


def sanitised_params(entities: Iterable[str]) -> dict[str, Any]:
    """``transform_params`` of ``finetrail data sanitize`` (operator replace)."""
    return {
        "operator": "replace",
        "entities": sorted(entities),
        "score_threshold": 0.4,
        "analyzer": "presidio-analyzer (see pii.engine)",
    }


# -- training --------------------------------------------------------------------------------------
def training_evidence(
    *,
    adapter_sha256: str,
    adapter_path: str = ADAPTER_PATH,
    datasets: Sequence[tuple[str, str, int]] = (),
    dp_enabled: bool = True,
    epsilon: float = 3.0,
    epsilon_rdp: float | None = None,
    delta: float = 1e-6,
    noise_multiplier: float = 0.9,
    sample_rate: float = 0.064,
    steps: int = 51,
    max_grad_norm: float = 1.0,
    method: str = "lora",
    trainable_parameters: int = 94208,
    flops: float = 3.1e12,
    wall_seconds: float = 71.0,
    tokens: int = 620000,
    threshold_flops: float = 1.0e22,
    substantial_modification: bool = False,
    val_loss: Sequence[float] = (1.71, 1.68, 1.655),
    mlflow: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
    base_model_name: str | None = None,
) -> TrainingEvidence:
    """A completed run; ``datasets`` are (sha256, role, records) of the files it read.

    ``dp_enabled=False`` writes the non-private control's DP record (no epsilon, no accountant).
    """
    total = 1003136
    private = next((n for _, role, n in datasets if role == "train"), 1000)
    dp: dict[str, Any] = {
        "steps": steps,
        "poisson_sampling": dp_enabled,
        "expected_batch_size": 16.0,
        "batch_size_per_process": 16.0,
        "sampled_records": private,
        "private_records": private,
        "privacy_unit": "one record (one JSONL line) of the training dataset",
        "adjustments": [],
        "check": None,
    }
    if dp_enabled:
        rdp = round(epsilon * 1.07, 4) if epsilon_rdp is None else epsilon_rdp
        dp.update(
            enabled=True,
            guarantee=f"({epsilon:.4g}, {delta:g})-DP at the record level, PRV accountant "
            "(Poisson-subsampled Gaussian mechanism, DP-SGD)",
            epsilon=epsilon,
            epsilon_rdp=rdp,
            delta=delta,
            accountant="prv",
            target_epsilon=epsilon,
            noise_multiplier=noise_multiplier,
            noise_multiplier_source="target_epsilon",
            sample_rate=sample_rate,
            max_grad_norm=max_grad_norm,
            clipping_mode="ghost",
            clipping_mode_source="auto",
            clipping_mode_reason="ghost clipping: the model has no layer ghost clipping skips",
            epsilon_per_step=[
                {
                    "step": s,
                    "epsilon": round(epsilon * (s / steps) ** 0.5, 4),
                    "epsilon_rdp": round(rdp * (s / steps) ** 0.5, 4),
                }
                for s in sorted({*range(10, steps, 10), steps})
            ],
            randomness="noise and Poisson sampling drawn from generators seeded by the "
            "operating system (not Opacus's secure_mode CSPRNG); the config's seed covers "
            "initialisation, dropout and data mixing only",
            randomness_source="os",
            # what `finetrail train` writes by default: the per-sample gradient check on a
            # sampled batch, and the plan compared with what the optimizer and accountant ran
            check={
                "passed": True,
                "max_relative_error": 3.1e-7,
                "tolerance": 1e-5,
                "examples": 8,
                "clipping_mode": "ghost",
                "compared": "per-example gradient norms (ghost clipping) against a brute-force "
                "per-example loop",
                "dtype": "float32",
            },
            execution={
                "noise_multiplier": noise_multiplier,
                "max_grad_norm": max_grad_norm,
                "normalised_by": 16.0,
                "accountant_history": [[noise_multiplier, sample_rate, steps]],
                "accountant_steps": steps,
            },
        )
    else:
        dp.update(
            enabled=False,
            guarantee="none: no differential-privacy guarantee (non-private control run)",
        )
    base_flops = threshold_flops * 3
    data = {
        "completed": True,
        "status": "completed",
        "failure": None,
        "method": method,
        "method_config": {"name": method, "rank": 16, "alpha": 32.0, "dropout": 0.0},
        "trainable_parameters": trainable_parameters,
        "total_parameters": total,
        "base_model": {
            "path": "base-model",
            "model_type": "llama",
            "name": base_model_name,
            "parameters": total,
            "config_sha256": sha("base config"),
            "weights_sha256": BASE_WEIGHTS,
            "weight_files": {"model.safetensors": BASE_WEIGHTS},
            "tokenizer_sha256": sha("base tokenizer"),
            "tokenizer_files": {"tokenizer.json": sha("tokenizer.json")},
            "training_flops": base_flops,
            "training_flops_source": "training_compute.json in the base model folder",
            "systemic_risk": False,
        },
        "adapter": {
            "sha256": adapter_sha256,
            "path": adapter_path,
            "format": "safetensors",
            "kind": "peft_adapter",
            "files": {adapter_path: adapter_sha256},
        },
        "datasets": [
            {
                "role": role,
                "sha256": digest,
                "path": f"data/{role}.jsonl",
                "records": n,
                "records_used": n,
                "registered": True,
                "record": dataset_record_path(digest),
            }
            for digest, role, n in datasets
        ],
        "dp": dp,
        "compute": {
            "wall_seconds": wall_seconds,
            "tokens": tokens,
            "eval_tokens": 2626,
            "flops": flops,
            "flops_method": "6 x total parameters x training tokens + 2 x total parameters x "
            "validation tokens",
            "device": "cpu",
            "processes": 1,
            "device_hours": wall_seconds / 3600,
        },
        "eu_ai_act": {
            "modification_flops": flops,
            "base_model_training_flops": base_flops,
            "modification_threshold_flops": threshold_flops,
            "threshold_basis": "one_third_of_base_model_training_compute",
            "ratio_to_threshold": flops / threshold_flops,
            "substantial_modification": substantial_modification,
            "criterion": "indicative one-third criterion for downstream modifiers (Commission "
            "guidelines on GPAI obligations, 18 July 2025, section 3.2); non-binding",
        },
        "early_stopping": {"enabled": False, "stopped_early": False},
        "val_loss": list(val_loss),
        "val_loss_steps": [
            (i + 1) * max(1, steps // max(1, len(val_loss))) for i in range(len(val_loss))
        ],
        "train_loss": [6.07, 5.79],
        "train_loss_steps": [1, steps],
        "ewc": {"enabled": False},
        "mlflow": {"run_id": "0123456789abcdef", **(mlflow or {})},
        "cost": {
            "device_hours": wall_seconds / 3600,
            "price_per_device_hour": 0.05,
            "estimate": wall_seconds / 3600 * 0.05,
        },
        "seed": 0,
        "config_sha256": sha("train.yaml"),
        "config": {"method": {"name": method}, "seed": 0},
        "started": TIME,
        "finished": TIME,
        "software": {"finetrail": "0.1.0", "torch": "2.13.0+cpu", "opacus": "1.6.0"},
    }
    return _parse(TrainingEvidence, data, changes)


# -- probes ----------------------------------------------------------------------------------------
def _stats(mean: float, mx: float, n: int) -> dict[str, Any]:
    return {
        "n": n,
        "mean_bits": mean,
        "median_bits": mean,
        "max_bits": mx,
        "min_bits": min(mean, mx) / 2,
    }


def exposure_evidence(
    *,
    adapter_sha256: str,
    max_bits: float | None = None,
    space_bits: float = 19.931568569324174,
    by_repetition: Mapping[str, tuple[float, float, int]] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> ExposureEvidence:
    """Canary exposure; ``by_repetition`` maps "1"/"4"/"16" to (mean bits, max bits, canaries)."""
    reps = dict(by_repetition or {"1": (1.5, 3.1, 7), "4": (1.2, 2.0, 7), "16": (1.8, 2.9, 6)})
    top = max(m for _, m, _ in reps.values()) if max_bits is None else max_bits
    canaries = [
        {
            "id": f"c{i:04d}",
            "format": "pin6",
            "repetitions": int(rep),
            "included": True,
            "exposure_bits": mx,
            "space_bits": space_bits,
            "method": "exact",
            "rank": max(1, round(2 ** (space_bits - mx))),
            "log_likelihood": -27.0 + mx,
        }
        for i, (rep, (_, mx, _)) in enumerate(sorted(reps.items(), key=lambda kv: int(kv[0])))
    ]
    data = {
        "subject": _subject(adapter_sha256),
        "space_bits": space_bits,
        "max_bits": top,
        "by_repetition": {k: _stats(mean, mx, n) for k, (mean, mx, n) in reps.items()},
        "controls": _stats(1.11, 4.13, 8),
        "formats": [
            {
                "format": "pin6",
                "space_size": 1000000,
                "space_bits": space_bits,
                "method": "exact_tree",
                "candidates_scored": 1111110,
                "seconds": 40.32,
            }
        ],
        "canaries": canaries,
        "quantiles": {"p50": 1.45, "p90": 2.42},
        "parameters": {"max_exact_candidates": 2000000, "seed": 0, "skew_normal_samples": 4000},
    }
    return _parse(ExposureEvidence, data, changes)


def extraction_evidence(
    *,
    adapter_sha256: str,
    memorized_identifiers: int = 0,
    base_model_matches: int = 0,
    prompts: int = 200,
    pii_values_in_training: int = 138,
    masked_examples: Sequence[Mapping[str, Any]] = (),
    changes: Mapping[str, Any] | None = None,
) -> ExtractionEvidence:
    """Extraction probe; ``masked_examples`` items need ``entity`` and ``masked_prompt_tail``."""
    examples = [
        {
            "entity": e["entity"],
            "masked_value": e.get("masked_value", f"<{e['entity']}>"),
            "prompt_kind": e.get("prompt_kind", "training_context"),
            "decoding": e.get("decoding", "greedy"),
            "masked_prompt_tail": e["masked_prompt_tail"],
            "canary": e.get("canary", False),
        }
        for e in masked_examples
    ]
    data = {
        "subject": _subject(adapter_sha256),
        "memorized_identifiers": memorized_identifiers,
        "memorized_rate": memorized_identifiers / pii_values_in_training,
        "base_model_matches": base_model_matches,
        "pii_values_in_training": pii_values_in_training,
        "targeted_hits": 0,
        "canary_secrets_extracted": 0,
        "control_secrets_emitted": 0,
        "prompts": prompts,
        "prompt_sources": {"generic": 4, "training_context": prompts - 4},
        "generations": prompts * 10,
        "by_entity": {
            "EMAIL_ADDRESS": {
                "pii_values_in_training": pii_values_in_training,
                "memorized": memorized_identifiers,
                "base_model_matches": base_model_matches,
            }
        },
        "scanner": "regex",
        "masked_examples": examples,
        "parameters": {"max_new_tokens": 24, "samples_per_prompt": 4, "seed": 0, "top_k": 40},
    }
    return _parse(ExtractionEvidence, data, changes)


def membership_evidence(
    *,
    adapter_sha256: str,
    attacks: Mapping[str, tuple[float, float]] | None = None,
    max_auc: float | None = None,
    members: int = 200,
    changes: Mapping[str, Any] | None = None,
) -> MembershipEvidence:
    """Membership inference as the probe writes it; ``attacks`` maps an attack name to (AUC, TPR
    at 1% FPR). A low-FPR TPR is stated only when ``members`` non-members resolve its rate (at
    least 1 / FPR of them), with an exact interval over the members; else None and the reason."""
    from finetrail.governance.probes.audit_math import clopper_pearson

    table = dict(attacks or {"loss": (0.53, 0.012), "zlib": (0.51, 0.01)})

    def low_fpr(tpr: float, limit: float, label: str) -> tuple[Any, Any, list[str]]:
        if members * limit < 1 - 1e-9:
            return (
                None,
                None,
                [
                    f"TPR at {label} FPR: not resolvable with {members:,} non-members "
                    f"(needs at least {round(1 / limit):,})"
                ],
            )
        hits = round(tpr * members)
        low, high = clopper_pearson(hits, members)
        return hits / members, {"low": low, "high": high}, []

    def attack(name: str, auc: float, tpr: float) -> dict[str, Any]:
        t1, t1_ci, why1 = low_fpr(tpr, 0.01, "1%")
        t01, t01_ci, why01 = low_fpr(tpr / 2, 0.001, "0.1%")
        return {
            "auc": auc,
            "auc_ci": {"low": max(0.0, auc - 0.14), "high": min(1.0, auc + 0.14)},
            "tpr_at_1pct_fpr": t1,
            "tpr_at_1pct_fpr_ci": t1_ci,
            "tpr_at_0_1pct_fpr": t01,
            "tpr_at_0_1pct_fpr_ci": t01_ci,
            "roc": [[0.0, 0.0], [0.01, tpr], [0.1, 0.11], [0.5, auc], [1.0, 1.0]],
            "description": name,
            "not_resolvable": why1 + why01,
            "tpr_interval": "clopper_pearson",
        }

    data = {
        "subject": _subject(adapter_sha256),
        "members": members,
        "nonmembers": members,
        "max_auc": max(a for a, _ in table.values()) if max_auc is None else max_auc,
        "attacks": {name: attack(name, auc, tpr) for name, (auc, tpr) in table.items()},
        "fpr_resolution": 1 / members,
        "confidence": 0.95,
        "bootstrap_resamples": 500,
        "parameters": {"k_fraction": 0.2, "reference_model": "base", "seed": 0},
        "exchangeability": {
            "base_auc": 0.51,
            "base_auc_ci": {"low": 0.44, "high": 0.58},
            "tolerance": 0.05,
            "ok": True,
        },
        "blind_baseline": {
            "features": ["characters", "words", "zlib ratio"],
            "folds": 5,
            "result": attack(
                "blind baseline: text features only, the model never queried", 0.5, 0.01
            ),
        },
        "split": "given",
    }
    return _parse(MembershipEvidence, data, changes)


def dp_audit_evidence(
    *,
    adapter_sha256: str,
    claimed_epsilon: float | None = 3.0,
    claimed_delta: float | None = 1e-6,
    guesses: int = 20,
    correct: int = 18,
    verdict: str | None = None,
    confidence: float = 0.95,
    single_copy: int = 20,
    changes: Mapping[str, Any] | None = None,
) -> DPAuditEvidence:
    """One-run DP audit as the probe writes it: the bound is computed from ``correct`` of
    ``guesses`` on ``single_copy`` single-copy canaries (Steinke et al.'s test at the probe's
    Bonferroni level), the ceiling is the real one for that design, and the verdict follows the
    numbers unless given (``inconclusive`` when the ceiling is at or below the claim, as it is
    for the defaults)."""
    from finetrail.governance.probes.audit_math import epsilon_lower_bound
    from finetrail.governance.probes.dp_audit import DEFAULT_FRACTIONS, design_ceiling
    from finetrail.governance.probes.dp_audit import verdict as audit_verdict

    delta_used = claimed_delta or 1e-5
    level = (1 - confidence) / len(DEFAULT_FRACTIONS)
    lower_bound = epsilon_lower_bound(
        m=single_copy, r=guesses, v=correct, delta=delta_used, level=level
    )
    ceiling = design_ceiling(canaries=single_copy, delta=delta_used, confidence=confidence)
    if verdict is None:
        verdict = audit_verdict(lower_bound, claimed_epsilon, ceiling)
    group = {
        "repetitions": 1,
        "canaries": single_copy,
        "guesses_in": guesses // 2,
        "guesses_out": guesses - guesses // 2,
        "correct": correct,
        "epsilon_lower_bound": lower_bound,
        "ceiling": ceiling,
        "unit": "example",
    }
    unit = {**group, "epsilon_lower_bound": 0.0, "unit": "canary"}
    data = {
        "subject": _subject(adapter_sha256),
        "score": "log-likelihood of the secret, fine-tuned minus base model",
        "claimed_epsilon": claimed_epsilon,
        "claimed_delta": claimed_delta,
        "accountant": "prv" if claimed_epsilon is not None else None,
        "delta_used": delta_used,
        "empirical_epsilon_lower_bound": lower_bound,
        "confidence": confidence,
        "threshold_selection": "bonferroni",
        "tests": 5,
        "verdict": verdict,
        "best": group,
        "groups": [group],
        "ceiling": ceiling,
        "canaries": single_copy + 13,
        "inserted": single_copy // 2 + 13,
        "single_copy_canaries": single_copy,
        "repeated": [
            {**unit, "repetitions": 4, "canaries": 7},
            {**unit, "repetitions": 16, "canaries": 6},
        ],
        "parameters": {"calibrated": True, "guess_fractions": "0.2,0.4,0.6,0.8,1.0", "seed": 0},
    }
    return _parse(DPAuditEvidence, data, changes)


# -- bias ------------------------------------------------------------------------------------------
DEFAULT_DISPARITIES: dict[str, tuple[float, float, float]] = {
    "demographic_parity_difference": (0.04, 0.01, 0.09),
    "demographic_parity_ratio": (0.95, 0.88, 0.99),
    "equalized_odds_difference": (0.05, 0.02, 0.11),
    "equalized_odds_ratio": (0.93, 0.85, 0.98),
    "accuracy_difference": (0.02, 0.0, 0.05),
}
DEFAULT_GROUPS: tuple[tuple[str, str, int, float, float, float], ...] = (
    ("gender", "female", 99, 0.83, 0.76, 0.90),
    ("gender", "male", 101, 0.85, 0.78, 0.91),
)


def _interval(
    value: float | None, lo: float | None = None, hi: float | None = None
) -> dict[str, Any]:
    return {"value": value, "ci_low": lo, "ci_high": hi}


def bias_audit_evidence(
    *,
    adapter_sha256: str,
    accuracy: float = 0.84,
    f1: float = 0.81,
    disparities: Mapping[str, tuple[float | None, float | None, float | None]] | None = None,
    finetune_effect: Mapping[str, tuple[float | None, float | None, float | None]] | None = None,
    groups: Sequence[tuple[str, str, int, float, float, float]] = DEFAULT_GROUPS,
    too_small_groups: Sequence[tuple[str, str, int]] = (),
    eval_sha256: str | None = None,
    changes: Mapping[str, Any] | None = None,
) -> BiasAuditEvidence:
    """A bias audit; ``disparities`` map a metric to (value, ci_low, ci_high), ``finetune_effect``
    to (delta, ci_low, ci_high), ``groups`` are (feature, group, count, accuracy, ci_low, ci_high)."""
    disp = {**DEFAULT_DISPARITIES, **(disparities or {})}
    effect = dict(finetune_effect or {"demographic_parity_difference": (0.01, -0.02, 0.04)})
    small = {(f, g) for f, g, _ in too_small_groups}
    features = list(dict.fromkeys(g[0] for g in groups))
    judged = [g[1] for g in groups if g[0] == features[0] and (g[0], g[1]) not in small]
    pair = (judged[0], judged[-1])

    def disparity(
        metric: str, v: tuple[float | None, float | None, float | None]
    ) -> dict[str, Any]:
        return {
            **_interval(*v),
            "feature": features[0],
            "groups": list(pair),
            "component": "tpr" if metric.startswith("equalized_odds") else None,
        }

    disparities_json = {m: disparity(m, v) for m, v in disp.items()}
    effect_json = {
        m: {
            "delta": d,
            "ci_low": lo,
            "ci_high": hi,
            "base": None if d is None or disp[m][0] is None else disp[m][0] - d,
            "finetuned": disp[m][0],
        }
        for m, (d, lo, hi) in effect.items()
    }
    task = {
        "n": sum(g[2] for g in groups if g[0] == features[0]),
        "positive_label": "yes",
        "labels": ["yes", "no"],
        "accuracy": accuracy,
        "accuracy_ci": [round(accuracy - 0.05, 4), round(accuracy + 0.05, 4)],
        "f1": f1,
        "f1_ci": [round(f1 - 0.06, 4), round(f1 + 0.06, 4)],
        "auc": 0.88,
        "selection_rate": 0.41,
    }
    group_rows = [
        {
            "feature": feature,
            "group": group,
            "count": count,
            "positives": count // 2,
            "too_small": (feature, group) in small,
            "selection_rate": _interval(0.41, 0.33, 0.5),
            "accuracy": _interval(acc, lo, hi),
            "tpr": _interval(0.8, 0.7, 0.9),
            "fpr": _interval(0.1, 0.05, 0.17),
            "fnr": _interval(0.2, 0.1, 0.3),
        }
        for feature, group, count, acc, lo, hi in groups
    ]
    data = {
        "subject": {
            "adapter_sha256": adapter_sha256,
            "base_weights_sha256": BASE_WEIGHTS,
            "model": "workspace",
            "eval_sha256": eval_sha256,
        },
        "method": {
            "scoring": "verbaliser_log_likelihood",
            "verbalisers": {"yes": " yes", "no": " no"},
            "positive_label": "yes",
            "resamples": 100,
            "confidence": 0.95,
            "seed": 0,
            "min_group_size": 30,
        },
        "sensitive_features": features,
        "task": task,
        "disparities": disparities_json,
        "by_feature": {
            f: {
                "feature": f,
                "groups": [g[1] for g in groups if g[0] == f],
                "judged_groups": [g[1] for g in groups if g[0] == f and (f, g[1]) not in small],
                "disparities": disparities_json if f == features[0] else {},
                "finetune_effect": effect_json if f == features[0] else None,
            }
            for f in features
        },
        "groups": group_rows,
        "too_small_groups": [
            {"feature": f, "group": g, "count": n} for f, g, n in too_small_groups
        ],
        "base": {"task": task, "disparities": disparities_json},
        "finetune_effect": effect_json,
        "plot_data": [
            {
                "feature": r["feature"],
                "group": r["group"],
                "metric": "accuracy",
                **r["accuracy"],
                "too_small": r["too_small"],
            }
            for r in group_rows
        ],
    }
    return _parse(BiasAuditEvidence, data, changes)


# -- gate decisions --------------------------------------------------------------------------------
def gate_decision(
    *,
    adapter_sha256: str,
    outcomes: Sequence[Mapping[str, Any]],
    policy_id: str = "eu-ai-act-high-risk",
    sequence: int = 1,
    model: str = "support-assistant",
    model_version: str = "1.0.0",
    changes: Mapping[str, Any] | None = None,
) -> GateDecision:
    """A recorded gate decision; ``outcomes`` items need ``rule``, ``outcome``, ``path``,
    ``value`` and ``message`` (the rest is filled as the gate fills it)."""
    rows = [
        {
            "rule": o["rule"],
            "title": o.get("title", o["rule"]),
            "severity": o.get("severity", "error"),
            "outcome": o["outcome"],
            "reason": o.get("reason", "ok" if o["outcome"] == "pass" else "threshold"),
            "message": o["message"],
            "path": o["path"],
            "op": o.get("op"),
            "threshold": o.get("threshold"),
            "measured": [{"pointer": o["path"], "value": o["value"]}],
            "evidence": [{"path": o.get("file", TRAINING_FILE), "sha256": sha(o["path"])}],
            "controls": o.get("controls", {}),
        }
        for o in outcomes
    ]
    blocking = [r for r in rows if r["severity"] == "error" and r["outcome"] in ("fail", "error")]
    counts = {
        k: sum(1 for r in rows if r["outcome"] == k) for k in ("pass", "fail", "waived", "error")
    }
    data = {
        "sequence": sequence,
        "time": TIME,
        "policy_id": policy_id,
        "policy_version": "1.0.0",
        "policy_title": policy_id,
        "policy_sha256": sha(f"policy {policy_id}"),
        "policy_file": f"{policy_id}.yaml",
        "written_against": {"eu_ai_act": "Regulation (EU) 2024/1689 (CELEX 32024R1689)"},
        "model": model,
        "model_version": model_version,
        "subject": {"adapter_sha256": adapter_sha256, "adapter_path": ADAPTER_PATH},
        "integrity": {"ok": True, "errors": 0, "warnings": 0},
        "passed": not blocking,
        "approved": False,
        "approvals": {"required": False, "satisfied": False},
        "counts": counts,
        "outcomes": rows,
        "evidence": dict(PLACEHOLDER_GATE_READ),
    }
    return _parse(GateDecision, data, changes)


# what gate_decision() records as read; write_records() replaces it with the real digests
PLACEHOLDER_GATE_READ: dict[str, str | None] = {TRAINING_FILE: sha(TRAINING_FILE)}


# -- a complete release ----------------------------------------------------------------------------
RAW_SHA = sha("raw support tickets")
CLEAN_SHA = sha("sanitised support tickets")


def mechanism_evidence(*, verdict: str = "verified") -> EvidenceRecord:
    """The white-box mechanism audit's judgement of a DP run (as training writes it)."""
    from finetrail.governance.evidence.mechanism import MechanismEvidence

    return MechanismEvidence.parse(
        {
            "ran": verdict != "not_run",
            "verdict": verdict,
            "reasons": [] if verdict == "verified" else [f"the audit {verdict}"],
            "false_alarm_rate": 0.001,
            "claim": None,
            "clipping_mode": "hooks",
            "steps": 51,
        },
        source="evidence_factory:MechanismEvidence",
    )


def standard_records(
    adapter_sha256: str, *, adapter_path: str = ADAPTER_PATH
) -> dict[str, EvidenceRecord]:
    """One release whose evidence passes every rule of every shipped policy (file -> record):
    a raw dataset with PII, its sanitised derivative (no residual PII) used for training, a DP
    run at epsilon 3, four probes and a bias audit of the same adapter."""
    raw = dataset_record(
        name="tickets-raw",
        sha256=RAW_SHA,
        license="CC-BY-4.0",
        pii=pii_summary(
            records_scanned=1000,
            records_with_pii=640,
            counts={"EMAIL_ADDRESS": 500, "US_SSN": 40},
            coverage={"EMAIL_ADDRESS": COVERAGE["EMAIL_ADDRESS"], "US_SSN": COVERAGE["US_SSN"]},
            masked_examples=[("EMAIL_ADDRESS", "…please write to <EMAIL_ADDRESS> today.")],
        ),
    )
    clean = dataset_record(
        name="tickets-sanitised",
        sha256=CLEAN_SHA,
        license="CC-BY-4.0",
        derived_from=[RAW_SHA],
        transform="pii-sanitize",
        transform_params=sanitised_params(["US_SSN"]),
        pii=pii_summary(
            records_scanned=1000,
            coverage={"US_SSN": COVERAGE["US_SSN"]},
            residual={"US_SSN": 0},
        ),
    )
    return {
        raw.rel_path: raw,
        clean.rel_path: clean,
        TRAINING_FILE: training_evidence(
            adapter_sha256=adapter_sha256,
            adapter_path=adapter_path,
            datasets=[(CLEAN_SHA, "train", 1000)],
        ),
        PROBE_FILES["exposure"]: exposure_evidence(adapter_sha256=adapter_sha256),
        PROBE_FILES["extraction"]: extraction_evidence(adapter_sha256=adapter_sha256),
        PROBE_FILES["membership"]: membership_evidence(adapter_sha256=adapter_sha256),
        PROBE_FILES["dp_audit"]: dp_audit_evidence(adapter_sha256=adapter_sha256),
        BIAS_FILE: bias_audit_evidence(adapter_sha256=adapter_sha256),
        MECHANISM_FILE: mechanism_evidence(),
    }


def fixed_key(name: str) -> Any:
    """A deterministic Ed25519 key for ``name`` (Ed25519 signatures are deterministic, so a
    review signed with it gives the same ledger bytes on every run)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(sha(f"finetrail test key {name}").encode()[:32])


def add_review(
    root: Path,
    *,
    reviewer: str,
    role: str,
    note: str,
    decision: str = "approve",
    actor: str = "alice",
) -> None:
    """Trust ``reviewer``'s :func:`fixed_key` in the workspace keyring (role ``role``) and record
    a signed review with ``finetrail review``'s API (the workspace must pass verify)."""
    from finetrail.governance import keys as ed25519
    from finetrail.governance.review import record_review, trust_in_workspace

    key = fixed_key(reviewer)
    with tempfile.TemporaryDirectory(prefix="finetrail-keys-") as tmp:
        private, public = Path(tmp) / f"{reviewer}.key", Path(tmp) / f"{reviewer}.pub"
        private.write_bytes(ed25519.private_pem(key))
        public.write_bytes(ed25519.public_pem(key.public_key()))
        trust_in_workspace(
            root, name=reviewer, public_key_file=str(public), roles=(role,), actor=actor
        )
        record_review(
            root,
            decision=decision,  # type: ignore[arg-type]
            reviewer=reviewer,
            role=role,
            key_file=private,
            note=note,
        )


def kind_of(record: EvidenceRecord) -> str:
    """The policy kind of a record (``datasets``, ``training``, ``probes.exposure``...)."""
    return EVENTS[record.record_type][0]


def _as_read_now(ws: Workspace, record: GateDecision) -> GateDecision:
    """The decision as the gate records it: the digest of every evidence file it read (every one
    in the workspace now, and workspace.json), so the decision is current until they change."""
    from finetrail.governance.io import sha256_file

    read = {
        p.relative_to(ws.root).as_posix(): sha256_file(p)
        for p in sorted((ws.root / "evidence").rglob("*.json"))
        if not p.relative_to(ws.root).as_posix().startswith("evidence/gate/")
    }
    read["workspace.json"] = sha256_file(ws.root / "workspace.json")
    return record.model_copy(update={"evidence": read})


def write_records(
    ws: Workspace, records: Mapping[str, EvidenceRecord], *, actor: str = "alice"
) -> dict[str, str]:
    """Write each record at its file with the producer's ledger event; returns file -> kind."""
    written = {}
    for rel, record in records.items():
        if isinstance(record, DatasetRecord):  # as the provenance layer does: leaves, then record
            _, leaves = merkle_leaves(record.sha256, record.records)
            ws.write_bytes(
                record.merkle.leaves_artifact,
                leaves,
                event="dataset.leaves",
                actor=actor,
                extra={"dataset": record.sha256, "records": record.records},
            )
        if isinstance(record, GateDecision) and record.evidence == PLACEHOLDER_GATE_READ:
            record = _as_read_now(ws, record)
        ws.write_record(rel, record, event=EVENTS[record.record_type][1], actor=actor)
        written[rel] = kind_of(record)
        if isinstance(record, GateDecision):  # as the gate does: its (unsigned) attestation
            from finetrail.governance.gate import attest

            ws.write_bytes(
                rel.removesuffix(".json") + ".dsse.json",
                attest.attest(record, key=None),
                event="gate.attested",
                actor=actor,
                extra={"signed": False, "keyid": None},
            )
    return written


def add_adapter(ws: Workspace, *, actor: str = "alice", rel: str = ADAPTER_PATH) -> str:
    """Write a stand-in adapter file (unique per workspace) as an artifact; returns its SHA-256."""
    data = b"safetensors-adapter:" + hashlib.sha256(str(ws.root).encode()).digest()
    ws.write_bytes(rel, data, event="artifact.added", actor=actor)
    return hashlib.sha256(data).hexdigest()


def write_workspace(
    root: Path,
    *,
    omit: Iterable[str] = (),
    model: str = "support-assistant",
    version: str = "1.0.0",
    owner: str = "alice",
    intended_purpose: str = "answer customer-support questions",
    provider: str = "Example Org",
) -> tuple[Workspace, str, dict[str, str]]:
    """A new workspace at ``root`` holding :func:`standard_records` less the kinds in ``omit``.

    Returns (workspace, adapter sha256, file -> kind of what was written).
    """
    ws = Workspace.init(
        root,
        model=model,
        version=version,
        owner=owner,
        intended_purpose=intended_purpose,
        provider=provider,
    )
    adapter = add_adapter(ws, actor=owner)
    skip = set(omit)
    records = {rel: r for rel, r in standard_records(adapter).items() if kind_of(r) not in skip}
    return ws, adapter, write_records(ws, records, actor=owner)
