"""Builds a sample workspace for the report tests with the real record classes.

Every record comes from the shared factory (tests/evidence_factory.py), validated by its class and
written with ``Workspace.write_record``. ``variant="b"`` is a later release for the diff tests
(another dataset, a smaller epsilon, other probe figures, a failed gate). ``hostile`` puts markup
and template syntax into names and notes; ``pii`` puts raw PII values (as the data layer must
never do) into masked-example fields, names and notes, so the tests can check the report re-masks
them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.workspace import Workspace
from tests.support.evidence import (
    BIAS_FILE,
    PROBE_FILES,
    TRAINING_FILE,
    add_review,
    bias_audit_evidence,
    dataset_record,
    dp_audit_evidence,
    exposure_evidence,
    extraction_evidence,
    gate_decision,
    membership_evidence,
    pii_summary,
    sanitised_params,
    training_evidence,
    write_records,
)
from tests.support.trust import fixture_signing

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
    base_model_name: str | None = None,
    signed: bool = True,
) -> Sample:
    """The sample release; every ledger entry signed with the fixtures' role keys
    (tests/support/trust.py ``fixture_signing``) unless ``signed`` is false."""
    with fixture_signing(signed):
        return _build(
            root,
            variant=variant,
            hostile=hostile,
            pii=pii,
            kinds=kinds,
            base_model_name=base_model_name,
        )


def _build(
    root: Path,
    *,
    variant: str,
    hostile: bool,
    pii: bool,
    kinds: tuple[str, ...],
    base_model_name: str | None,
) -> Sample:
    ws = Workspace.init(
        root,
        model="support-assistant",
        version="1.0.0" if variant == "a" else "1.1.0",
        owner="ml-platform team",
        provider="Example Org",
        intended_purpose="Drafts replies to customer-support tickets for human agents.",
        description="LoRA adapter on a small causal LM",
        workspace_id=("a" if variant == "a" else "b") * 32,  # fixed: golden files stay stable
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
    tickets = {
        "license": "LicenseRef-ExampleOrg-Proprietary",
        "legal_basis": "GDPR Art. 6(1)(f)",
        "purpose": "fine-tuning a reply-drafting assistant",
    }
    coverage = {
        "EMAIL_ADDRESS": "EmailRecognizer (Presidio pattern)",
        "PHONE_NUMBER": "PhoneRecognizer (Presidio, python-phonenumbers; regions US, GB, DE)",
        "US_SSN": "UsSsnRecognizer (Presidio pattern)",
        "PERSON": "NameListRecognizer (finetrail deny-list of first and last names)",
    }
    datasets = [
        dataset_record(
            name="support-tickets",
            sha256=raw_sha,
            records=1000,
            source="ticket export",
            collection="2025-01 to 2025-06, support desk",
            **tickets,
            pii=pii_summary(
                records_scanned=1000,
                records_with_pii=912,
                counts={"EMAIL_ADDRESS": 850, "PHONE_NUMBER": 400, "US_SSN": 12, "PERSON": 990},
                coverage=coverage,
                score_threshold=0.5,
                masked_examples=[
                    ("EMAIL_ADDRESS", tainted("Hi <PERSON>, reach me at <EMAIL_ADDRESS>", 2)),
                    ("PHONE_NUMBER", tainted("My number is <PHONE_NUMBER>", 3)),
                ],
            ),
        ),
        dataset_record(
            name=tainted("support-tickets-masked", 0),
            sha256=masked_sha,
            records=1000,
            source=tainted("ticket export", 1),
            collection="2025-01 to 2025-06, support desk",
            **tickets,
            derived_from=[raw_sha],
            transform="pii-sanitize",
            transform_params=sanitised_params(coverage),
            pii=pii_summary(
                records_scanned=1000,
                coverage=coverage,
                score_threshold=0.5,
                residual=dict.fromkeys(coverage, 0),
            ),
        ),
        dataset_record(
            name=tainted("fairness-eval", 4),
            sha256=eval_sha,
            records=600,
            license="CC-BY-4.0",
            source="synthetic (Faker, seed 11)",
            collection="generated 2025-07",
            legal_basis="not personal data (synthetic)",
            purpose="bias audit",
            pii=pii_summary(records_scanned=600, coverage=coverage, score_threshold=0.5),
        ),
    ]
    if variant == "b":
        datasets.append(
            dataset_record(
                name="support-tickets-2025h2",
                sha256=extra_sha,
                records=400,
                source="ticket export",
                collection="2025-07 to 2025-12",
                **tickets,
                pii=pii_summary(
                    records_scanned=400,
                    records_with_pii=300,
                    counts={"EMAIL_ADDRESS": 280},
                    coverage={"EMAIL_ADDRESS": coverage["EMAIL_ADDRESS"]},
                    score_threshold=0.5,
                ),
            )
        )
    records: dict[str, EvidenceRecord] = {}
    if "datasets" in kinds:
        records.update({d.rel_path: d for d in datasets})
        sample.dataset_shas += [d.sha256 for d in datasets]

    eps = 8.0 if variant == "a" else 3.0
    adapter = _sha("adapter-" + variant)
    if "training" in kinds:
        records[TRAINING_FILE] = training_evidence(
            base_model_name=base_model_name,
            adapter_sha256=adapter,
            datasets=[(masked_sha, "train", 1000)]
            + ([(extra_sha, "train", 400)] if variant == "b" else []),
            epsilon=eps,
            epsilon_rdp=eps * 1.08,
            delta=1e-5,
            noise_multiplier=0.6689 if variant == "a" else 1.1,
            sample_rate=0.0625,
            steps=51,
            wall_seconds=71.2,
            tokens=3264000,
            flops=1.9e12,
            threshold_flops=3.3e22,
            val_loss=(1.67, 1.66, 1.655),
            changes={
                "dp.clipping_mode": "hooks",
                "dp.clipping_mode_reason": tainted("hooks: the model has a tied embedding", 5),
            },
        )

    exposure = (
        {"1": (1.9, 2.04, 7), "4": (0.5, 1.1, 7), "16": (1.82, 1.95, 6)}
        if variant == "a"
        else {"1": (1.2, 1.6, 7), "4": (0.5, 1.1, 7), "16": (1.3, 1.5, 6)}
    )
    mia = 0.52 if variant == "a" else 0.55
    if "probes" in kinds:
        records[PROBE_FILES["exposure"]] = exposure_evidence(
            adapter_sha256=adapter, space_bits=19.93, by_repetition=exposure
        )
        records[PROBE_FILES["extraction"]] = extraction_evidence(
            adapter_sha256=adapter,
            prompts=200,
            masked_examples=[
                {
                    "entity": "ACCOUNT_PIN",
                    "masked_prompt_tail": tainted("…Customer note: my account pin is", 6),
                    "canary": True,
                }
            ],
            changes={"canary_secrets_extracted": 1},
        )
        records[PROBE_FILES["membership"]] = membership_evidence(
            adapter_sha256=adapter, attacks={"loss": (mia, 0.012), "zlib": (0.51, 0.01)}
        )
        records[PROBE_FILES["dp_audit"]] = dp_audit_evidence(
            adapter_sha256=adapter, claimed_epsilon=eps, claimed_delta=1e-5, guesses=16, correct=14
        )

    eod = (0.06, 0.02, 0.1) if variant == "a" else (0.11, 0.02, 0.17)
    nonbinary = tainted("nonbinary", 7)
    if "bias" in kinds:
        records[BIAS_FILE] = bias_audit_evidence(
            adapter_sha256=adapter,
            accuracy=0.81,
            f1=0.79,
            disparities={
                "demographic_parity_difference": (0.04, 0.01, 0.08),
                "equalized_odds_difference": eod,
                "accuracy_difference": (0.03, 0.0, 0.07),
            },
            finetune_effect={"demographic_parity_difference": (0.01, -0.02, 0.04)},
            groups=[
                ("gender", "female", 300, 0.80, 0.76, 0.84),
                ("gender", "male", 280, 0.83, 0.79, 0.87),
                ("gender", nonbinary, 20, 0.78, 0.6, 0.9),
                ("age_band", tainted("18-29", 8), 250, 0.82, 0.77, 0.86),
                ("age_band", "50+", 350, 0.80, 0.76, 0.84),
            ],
            too_small_groups=[("gender", nonbinary, 20)],
            eval_sha256=eval_sha,
        )

    passed = variant == "a"
    if "gate" in kinds:
        records["evidence/gate/0001.json"] = gate_decision(
            adapter_sha256=adapter,
            policy_id="example-release",
            model_version="1.0.0" if variant == "a" else "1.1.0",
            outcomes=[
                {
                    "rule": "dp-epsilon-max",
                    "outcome": "pass",
                    "path": "training.dp.epsilon",
                    "op": "<=",
                    "threshold": 8.0,
                    "value": eps,
                    "message": f"training.dp.epsilon = {eps:g}; required <= 8",
                },
                {
                    "rule": "mia-auc-max",
                    "outcome": "pass",
                    "path": "probes.membership.max_auc",
                    "op": "<=",
                    "threshold": 0.6,
                    "value": mia,
                    "message": f"probes.membership.max_auc = {mia:g}; required <= 0.6",
                    "file": PROBE_FILES["membership"],
                },
                {
                    "rule": "bias-eod-max",
                    "outcome": "pass" if passed else "fail",
                    "path": "bias.disparities.equalized_odds_difference.value",
                    "op": "<=",
                    "threshold": 0.1,
                    "value": eod[0],
                    "message": tainted(
                        f"bias.disparities.equalized_odds_difference.value = {eod[0]:g}; "
                        "required <= 0.1",
                        9,
                    ),
                    "file": BIAS_FILE,
                },
            ],
        )
    write_records(ws, records, actor=ACTOR)

    if "reviews" in kinds:
        add_review(
            root,
            reviewer="dpo",
            role="privacy",
            note=tainted("DP statement and PII scan checked", 10),
            actor=ACTOR,
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
