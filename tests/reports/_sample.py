"""Builds a sample workspace for the report tests: evidence JSON per docs/evidence-contract.md.

The record classes of the other layers (datasets, training, probes, bias, gate) are written as raw
JSON dicts through ``Workspace.write_bytes``; once those classes are merged this is the one place
to switch to ``Workspace.write_record(rel, Record.parse(...), ...)``.

``variant="b"`` is a later release for the diff tests (another dataset, a smaller epsilon, other
probe figures, a failed gate). ``hostile`` puts markup and template syntax into names and notes;
``pii`` puts raw PII values (as the data layer must never do) into masked-example fields, names
and notes, so the tests can check the report re-masks them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetrail.governance.workspace import Workspace

HOSTILE = (
    "<script>document.title='PWNED-SCRIPT'</script>",
    '"><img src=x onerror="document.title=\'PWNED-IMG\'">',
    "{{ 7*7 }}{% if 1 %}EVALUATED{% endif %}",
    '<img src="https://example.invalid/beacon.png">',
    "[click](javascript:alert(1))",
    "$\\frac{1}{0}$ | pipe",
)
ACTOR = "tester"


@dataclass
class Sample:
    root: Path
    ws: Workspace
    pii_values: list[str] = field(default_factory=list)
    dataset_shas: list[str] = field(default_factory=list)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _write(ws: Workspace, rel: str, data: dict[str, Any], event: str) -> None:
    ws.write_bytes(
        rel, (json.dumps(data, sort_keys=True, indent=1) + "\n").encode(), event=event, actor=ACTOR
    )


def fake_pii(seed: int = 7, n: int = 6) -> list[str]:
    """Raw PII values (Faker, en_US) of the kinds a pattern can recognise."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    out: list[str] = []
    for _ in range(n):
        out += [
            fake.email(),
            fake.phone_number(),
            fake.ssn(),
            fake.credit_card_number(),
            fake.ipv4_public(),
        ]
    return out


def build(
    root: Path,
    *,
    variant: str = "a",
    hostile: bool = False,
    pii: bool = False,
    kinds: tuple[str, ...] = ("datasets", "training", "probes", "bias", "gate", "reviews"),
) -> Sample:
    ws = Workspace.init(
        root,
        model="support-assistant",
        version="1.0.0" if variant == "a" else "1.1.0",
        owner="ml-platform team",
        provider="Example Org",
        intended_purpose="Drafts replies to customer-support tickets for human agents.",
        description="LoRA adapter on a small causal LM",
    )
    sample = Sample(root=root, ws=ws)
    pii_values = fake_pii() if pii else []
    sample.pii_values = pii_values
    h = HOSTILE if hostile else ("",) * len(HOSTILE)

    def tainted(text: str, i: int) -> str:
        extra = []
        if hostile:
            extra.append(h[i % len(h)])
        if pii:
            extra.append(pii_values[i % len(pii_values)])
        return " ".join([text, *extra]) if extra else text

    raw_sha, masked_sha, eval_sha, extra_sha = (
        _sha("raw"),
        _sha("masked"),
        _sha("eval"),
        _sha("extra"),
    )
    datasets = [
        {
            "name": tainted("support-tickets-masked", 0),
            "sha256": masked_sha,
            "merkle_root": _sha("m1"),
            "records": 1000,
            "license": "proprietary (Example Org)",
            "source": tainted("ticket export", 1),
            "collection": "2025-01 to 2025-06, support desk",
            "legal_basis": "GDPR Art. 6(1)(f)",
            "purpose": "fine-tuning a reply-drafting assistant",
            "derived_from": [raw_sha],
            "transform": "presidio replace, score threshold 0.5",
            "pii": {
                "records_with_pii": 912,
                "counts": {"EMAIL_ADDRESS": 850, "PHONE_NUMBER": 400, "US_SSN": 12, "PERSON": 990},
                "coverage": {
                    "EMAIL_ADDRESS": "EmailRecognizer",
                    "PHONE_NUMBER": "PhoneRecognizer",
                    "US_SSN": "UsSsnRecognizer",
                    "PERSON": "SpacyRecognizer",
                },
                "score_threshold": 0.5,
                "residual": {"EMAIL_ADDRESS": 0},
                "examples": [
                    tainted("Hi <PERSON>, reach me at <EMAIL_ADDRESS>", 2),
                    tainted("My number is <PHONE_NUMBER>", 3),
                ],
            },
        },
        {
            "name": tainted("fairness-eval", 4),
            "sha256": eval_sha,
            "merkle_root": _sha("m2"),
            "records": 600,
            "license": "CC-BY-4.0",
            "source": "synthetic (Faker, seed 11)",
            "collection": "generated 2025-07",
            "legal_basis": "not personal data (synthetic)",
            "purpose": "bias audit",
            "derived_from": [],
            "transform": "none",
            "pii": {
                "records_with_pii": 0,
                "counts": {},
                "coverage": {},
                "score_threshold": 0.5,
                "residual": {},
            },
        },
    ]
    if variant == "b":
        datasets.append(
            {
                "name": "support-tickets-2025h2",
                "sha256": extra_sha,
                "merkle_root": _sha("m3"),
                "records": 400,
                "license": "proprietary (Example Org)",
                "source": "ticket export",
                "collection": "2025-07 to 2025-12",
                "legal_basis": "GDPR Art. 6(1)(f)",
                "purpose": "fine-tuning",
                "derived_from": [],
                "transform": "presidio replace",
                "pii": {
                    "records_with_pii": 300,
                    "counts": {"EMAIL_ADDRESS": 280},
                    "coverage": {"EMAIL_ADDRESS": "EmailRecognizer"},
                    "score_threshold": 0.5,
                    "residual": {},
                },
            }
        )
    if "datasets" in kinds:
        for d in datasets:
            _write(
                ws,
                f"evidence/datasets/{d['sha256']}.json",
                {"record_type": "dataset", **d},
                "dataset.registered",
            )
            sample.dataset_shas.append(str(d["sha256"]))

    eps = 8.0 if variant == "a" else 3.0
    adapter = _sha("adapter-" + variant)
    training = {
        "record_type": "training",
        "completed": True,
        "method": "lora",
        "trainable_parameters": 73728,
        "base_model": {
            "config_sha256": _sha("cfg"),
            "weights_sha256": _sha("weights"),
            "tokenizer_sha256": _sha("tok"),
            "name": tainted("tiny-llama", 5),
        },
        "adapter": {"sha256": adapter, "path": "artifacts/adapter"},
        "datasets": [{"sha256": masked_sha, "role": "train"}, {"sha256": eval_sha, "role": "eval"}]
        + ([{"sha256": extra_sha, "role": "train"}] if variant == "b" else []),
        "dp": {
            "enabled": True,
            "epsilon": eps,
            "epsilon_rdp": eps * 1.08,
            "delta": 1e-5,
            "accountant": "prv",
            "noise_multiplier": 0.6689 if variant == "a" else 1.1,
            "sample_rate": 0.0625,
            "steps": 51,
            "max_grad_norm": 1.0,
            "clipping_mode": "flat",
            "epsilon_curve": [
                {"step": s, "epsilon": round(eps * (s / 51) ** 0.5, 4)} for s in range(0, 52, 5)
            ],
        },
        "compute": {"wall_seconds": 71.2, "tokens": 3264000, "flops": 1.9e12, "device": "cpu"},
        "eu_ai_act": {"modification_threshold_flops": 3.3e22, "substantial_modification": False},
        "early_stopping": {"stopped_early": False},
        "val_loss": [1.67, 1.66, 1.655],
        "mlflow": {"run_id": "0123456789abcdef"},
    }
    if "training" in kinds:
        _write(ws, "evidence/training.json", training, "training.completed")

    subject = {"adapter_sha256": adapter}
    probes = {
        "exposure": {
            "record_type": "probes.exposure",
            "subject": subject,
            "max_bits": 2.04 if variant == "a" else 1.6,
            "space_bits": 19.93,
            "by_repetition": {
                "1": {"mean_bits": 1.9, "max_bits": 2.04, "n": 7},
                "4": {"mean_bits": 0.5, "max_bits": 1.1, "n": 7},
                "16": {"mean_bits": 1.82, "max_bits": 1.95, "n": 6},
            },
        },
        "extraction": {
            "record_type": "probes.extraction",
            "subject": subject,
            "memorized_identifiers": [],
            "memorized_rate": 0.0,
            "base_model_matches": 0,
            "prompts": 200,
            "examples": [
                {
                    "prompt": tainted("Customer note: my account pin is", 6),
                    "completion": "<NUMBER> (not a canary)",
                }
            ],
        },
        "membership": {
            "record_type": "probes.membership",
            "subject": subject,
            "max_auc": 0.52 if variant == "a" else 0.55,
            "attacks": {
                "loss": {
                    "auc": 0.52,
                    "tpr_at_1pct_fpr": 0.012,
                    "roc": {"fpr": [0, 0.01, 0.1, 0.5, 1], "tpr": [0, 0.012, 0.11, 0.52, 1]},
                },
                "zlib": {"auc": 0.51, "tpr_at_1pct_fpr": 0.01},
            },
        },
        "dp_audit": {
            "record_type": "probes.dp_audit",
            "subject": subject,
            "claimed_epsilon": eps,
            "empirical_epsilon_lower_bound": 0.21,
            "confidence": 0.95,
            "verdict": "consistent",
        },
    }
    if "probes" in kinds:
        for name, rec in probes.items():
            _write(ws, f"evidence/probes/{name}.json", rec, f"probe.{name}")

    bias = {
        "record_type": "bias",
        "subject": subject,
        "task": {"accuracy": 0.81, "f1": 0.79},
        "disparities": {
            "demographic_parity_difference": {"value": 0.04, "ci_low": 0.01, "ci_high": 0.08},
            "equalized_odds_difference": {
                "value": 0.06 if variant == "a" else 0.11,
                "ci_low": 0.02,
                "ci_high": 0.1 if variant == "a" else 0.17,
            },
            "accuracy_difference": {"value": 0.03, "ci_low": 0.0, "ci_high": 0.07},
        },
        "finetune_effect": {
            "demographic_parity_difference": {"delta": 0.01, "ci_low": -0.02, "ci_high": 0.04}
        },
        "too_small_groups": [tainted("age 80+", 7)],
        "by_group": {
            "female": {"accuracy": {"value": 0.80, "ci_low": 0.76, "ci_high": 0.84}, "n": 300},
            "male": {"accuracy": {"value": 0.83, "ci_low": 0.79, "ci_high": 0.87}, "n": 280},
            tainted("nonbinary", 8): {
                "accuracy": {"value": 0.78, "ci_low": 0.6, "ci_high": 0.9},
                "n": 20,
            },
        },
    }
    if "bias" in kinds:
        _write(ws, "evidence/bias.json", bias, "bias.audited")

    passed = variant == "a"
    gate = {
        "record_type": "gate",
        "passed": passed,
        "policy_id": "eu-high-risk-default@1",
        "policy_sha256": _sha("policy"),
        "results": [
            {
                "id": "dp-epsilon-max",
                "passed": True,
                "path": "training.dp.epsilon",
                "value": eps,
                "message": "epsilon <= 8",
            },
            {
                "id": "mia-auc-max",
                "passed": True,
                "path": "probes.membership.max_auc",
                "value": probes["membership"]["max_auc"],
                "message": "max AUC <= 0.6",
            },
            {
                "id": "bias-eod-max",
                "passed": passed,
                "path": "bias.disparities.equalized_odds_difference.value",
                "value": bias["disparities"]["equalized_odds_difference"]["value"],  # type: ignore[index]
                "message": tainted("equalized odds difference <= 0.1", 9),
            },
        ],
    }
    if "gate" in kinds:
        _write(ws, "evidence/gate/1.json", gate, "gate.decided")

    if "reviews" in kinds:
        ws.append_event(
            "review.approved",
            actor="dpo@example.org",
            payload={
                "reviewer": "Data protection officer",
                "role": "dpo",
                "decision": "approve",
                "comment": tainted("DP statement and PII scan checked", 10),
                "manifest_digest": ws.manifest_digest(),
            },
        )
    return sample


FIXED_TIME = "2026-08-01T12:00:00+00:00"


def build_fixed(root: Path, **kwargs: Any) -> Sample:
    """:func:`build` with the clock pinned (ledger times, so digests, are reproducible)."""
    import os

    old = os.environ.get("FINETRAIL_FIXED_TIME")
    os.environ["FINETRAIL_FIXED_TIME"] = FIXED_TIME
    try:
        return build(root, **kwargs)
    finally:
        if old is None:
            del os.environ["FINETRAIL_FIXED_TIME"]
        else:
            os.environ["FINETRAIL_FIXED_TIME"] = old


def report(args: list[str]) -> tuple[int, str, str]:
    """Run ``finetrail`` in-process with the clock pinned; returns (exit code, stdout, stderr)."""
    import contextlib
    import io
    import os

    from finetrail.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get("FINETRAIL_FIXED_TIME")
    os.environ["FINETRAIL_FIXED_TIME"] = FIXED_TIME
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    finally:
        if old is None:
            del os.environ["FINETRAIL_FIXED_TIME"]
        else:
            os.environ["FINETRAIL_FIXED_TIME"] = old
    return code, out.getvalue(), err.getvalue()
