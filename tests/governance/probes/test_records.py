"""Probe evidence records: round trip, strictness, registry entries, and light imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from finetrail.errors import InputError
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.probes import (
    AttackResult,
    AuditTest,
    CanaryExposure,
    DPAuditEvidence,
    EntityExtraction,
    ExposureEvidence,
    ExposureStats,
    ExtractionEvidence,
    FormatExposure,
    Interval,
    MaskedExample,
    MembershipEvidence,
    ProbeSubject,
)
from finetrail.governance.evidence.registry import (
    EVIDENCE_KINDS,
    kind_by_name,
    probe_location,
    record_class,
)
from finetrail.governance.probes import PROBES

SUBJECT = ProbeSubject(adapter_sha256="a" * 64, base_weights_sha256="b" * 64)
STATS = ExposureStats(n=2, mean_bits=3.0, median_bits=3.0, max_bits=4.0, min_bits=2.0)
ATTACK = AttackResult(
    auc=0.6,
    auc_ci=Interval(low=0.5, high=0.7),
    tpr_at_1pct_fpr=0.02,
    tpr_at_1pct_fpr_ci=Interval(low=0.0, high=0.05),
    tpr_at_0_1pct_fpr=0.0,
    tpr_at_0_1pct_fpr_ci=Interval(low=0.0, high=0.01),
    roc=((0.0, 0.0), (1.0, 1.0)),
    description="loss",
)
TEST = AuditTest(
    repetitions=1,
    canaries=10,
    guesses_in=2,
    guesses_out=2,
    correct=4,
    epsilon_lower_bound=0.1,
    ceiling=0.3,
)

RECORDS: list[EvidenceRecord] = [
    ExposureEvidence(
        subject=SUBJECT,
        space_bits=19.93,
        max_bits=4.0,
        by_repetition={"1": STATS},
        controls=STATS,
        formats=(
            FormatExposure(
                format="pin6",
                space_size=10**6,
                space_bits=19.93,
                method="exact_tree",
                candidates_scored=1_111_110,
                seconds=1.0,
            ),
        ),
        canaries=(
            CanaryExposure(
                id="c0000",
                format="pin6",
                repetitions=1,
                included=True,
                exposure_bits=4.0,
                space_bits=19.93,
                method="exact",
                rank=63,
                log_likelihood=-9.0,
            ),
        ),
        quantiles={"p50": 3.0},
        parameters={"seed": 0},
    ),
    ExtractionEvidence(
        subject=SUBJECT,
        memorized_identifiers=1,
        memorized_rate=0.5,
        base_model_matches=0,
        pii_values_in_training=2,
        targeted_hits=1,
        canary_secrets_extracted=1,
        control_secrets_emitted=0,
        prompts=3,
        prompt_sources={"training_context": 2, "generic": 1},
        generations=9,
        by_entity={
            "ACCOUNT_PIN": EntityExtraction(
                pii_values_in_training=2, memorized=1, base_model_matches=0
            )
        },
        scanner="regex",
        masked_examples=(
            MaskedExample(
                entity="ACCOUNT_PIN",
                masked_value="******",
                prompt_kind="training_context",
                decoding="greedy",
                masked_prompt_tail="my pin is ",
                canary=True,
            ),
        ),
        parameters={"seed": 0},
    ),
    MembershipEvidence(
        subject=SUBJECT,
        members=10,
        nonmembers=10,
        max_auc=0.6,
        attacks={"loss": ATTACK},
        fpr_resolution=0.1,
        confidence=0.95,
        bootstrap_resamples=100,
        parameters={"k_fraction": 0.2},
    ),
    DPAuditEvidence(
        subject=SUBJECT,
        score="llr",
        claimed_epsilon=8.0,
        claimed_delta=1e-5,
        accountant="prv",
        delta_used=1e-5,
        empirical_epsilon_lower_bound=0.1,
        confidence=0.95,
        threshold_selection="bonferroni",
        tests=5,
        verdict="consistent",
        best=TEST,
        groups=(TEST,),
        ceiling=0.3,
        canaries=10,
        inserted=5,
        parameters={"seed": 0},
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.record_type)
def test_round_trip(record: EvidenceRecord) -> None:
    again = type(record).parse(record.to_json_dict())
    assert again == record
    assert again.canonical_bytes() == record.canonical_bytes()


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.record_type)
def test_unknown_fields_and_bad_digests_are_rejected(record: EvidenceRecord) -> None:
    data = record.to_json_dict()
    with pytest.raises(InputError, match="surprise: unknown field") as info:
        type(record).parse({**data, "surprise": 1}, source="x.json")
    assert info.value.path == "x.json"
    with pytest.raises(InputError, match=r"subject\.adapter_sha256"):
        type(record).parse({**data, "subject": {"adapter_sha256": "not-a-digest"}})


def test_every_probe_has_a_registered_kind_and_file() -> None:
    for probe in PROBES:
        kind = kind_by_name(f"probes.{probe.name}")
        assert kind is not None, probe.name
        assert kind.location == probe_location(probe.name) == f"evidence/probes/{probe.name}.json"
        cls = record_class(kind)
        assert cls.model_fields["record_type"].default == f"probes.{probe.name}"
    assert sum(k.name.startswith("probes.") for k in EVIDENCE_KINDS) == 4


def test_contract_paths_exist_on_the_records() -> None:
    """The policy paths docs/evidence-contract.md lists for the probe kinds."""
    paths = {
        "probes.exposure": [
            "subject.adapter_sha256",
            "max_bits",
            "space_bits",
            "by_repetition.1.max_bits",
        ],
        "probes.extraction": [
            "subject.adapter_sha256",
            "memorized_identifiers",
            "memorized_rate",
            "base_model_matches",
            "prompts",
        ],
        "probes.membership": [
            "subject.adapter_sha256",
            "max_auc",
            "attacks.loss.auc",
            "attacks.loss.tpr_at_1pct_fpr",
        ],
        "probes.dp_audit": [
            "subject.adapter_sha256",
            "claimed_epsilon",
            "empirical_epsilon_lower_bound",
            "confidence",
            "verdict",
        ],
    }
    for record in RECORDS:
        data = record.to_json_dict()
        for path in paths[record.record_type]:
            value = data
            for part in path.split("."):
                assert part in value, f"{record.record_type}.{path}"
                value = value[part]


def test_probe_modules_import_light() -> None:
    code = (
        "import sys, finetrail.cli, finetrail.governance.probes, finetrail.governance.probes.cli\n"
        "from finetrail.cli import main\n"
        "assert main(['probe', '--help']) == 0 and main(['canaries', 'plant', '--help']) == 0\n"
        "heavy = [m for m in ('torch', 'transformers', 'mlflow', 'presidio_analyzer', 'scipy',"
        " 'sklearn', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
