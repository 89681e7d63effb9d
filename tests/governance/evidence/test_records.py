"""Evidence records: round trip, canonical bytes, content address, strictness."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetrail.errors import InputError
from finetrail.governance.evidence import (
    GENESIS,
    EvidenceRecord,
    LedgerAnchor,
    LedgerEntry,
    Manifest,
    ManifestFile,
    WorkspaceMetadata,
)
from finetrail.governance.evidence.registry import EVIDENCE_KINDS, record_class
from finetrail.governance.io import sha256_bytes

NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)

EXAMPLES: list[EvidenceRecord] = [
    WorkspaceMetadata(
        model="m", version="1", owner="ü-team", created=NOW, contacts=("a@example.org",)
    ),
    Manifest(
        files={"evidence/x.json": ManifestFile(sha256="a" * 64, size=3)},
        ledger=LedgerAnchor(entries=1, head="b" * 64),
    ),
    LedgerEntry(
        seq=0,
        kind="x.y",
        time=NOW,
        actor="me",
        payload={"k": [1, "é"]},
        payload_digest="c" * 64,
        prev=GENESIS,
        digest="d" * 64,
    ),
]


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip_is_equal_and_stable(record: EvidenceRecord, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(record.canonical_bytes())
    back = type(record).read(path)
    assert back == record
    assert back.content_digest() == record.content_digest() == sha256_bytes(path.read_bytes())
    text = path.read_text("utf-8")
    assert text.endswith("\n") and "\\u" not in text  # UTF-8, not ASCII escapes
    assert list(json.loads(text)) == sorted(json.loads(text))


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_unknown_field_is_rejected_and_named(record: EvidenceRecord) -> None:
    data = record.to_json_dict() | {"unexpected_field": 1}
    with pytest.raises(InputError) as info:
        type(record).parse(data, source="some.json")
    assert "unexpected_field: unknown field (not allowed)" in str(info.value)
    assert "some.json" in str(info.value)


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_records_are_frozen(record: EvidenceRecord) -> None:
    with pytest.raises(Exception, match="frozen"):
        record.schema_version = 2  # type: ignore[misc]


def test_newer_schema_version_is_refused() -> None:
    data = EXAMPLES[0].to_json_dict() | {"schema_version": 99}
    with pytest.raises(InputError, match="newer than this finetrail understands"):
        WorkspaceMetadata.parse(data)


def test_wrong_type_names_the_field() -> None:
    data = EXAMPLES[1].to_json_dict()
    data["files"]["evidence/x.json"]["size"] = "three"
    with pytest.raises(InputError) as info:
        Manifest.parse(data, source="manifest.json")
    assert info.value.field == "files.evidence/x.json.size"


@settings(max_examples=50, deadline=None)
@given(
    model=st.text(min_size=1, max_size=30),
    owner=st.text(min_size=1, max_size=30),
    description=st.text(max_size=60),
)
def test_metadata_round_trip_property(model: str, owner: str, description: str) -> None:
    rec = WorkspaceMetadata(
        model=model, version="1", owner=owner, created=NOW, description=description
    )
    assert WorkspaceMetadata.parse(json.loads(rec.canonical_bytes())) == rec


def test_every_registered_kind_resolves_to_a_record_class() -> None:
    names = [k.name for k in EVIDENCE_KINDS]
    assert len(names) == len(set(names))
    for kind in EVIDENCE_KINDS:
        cls = record_class(kind)
        assert issubclass(cls, EvidenceRecord)
        assert cls.model_config.get("extra") == "forbid"
        assert cls.model_config.get("frozen") is True


def _dp(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "enabled": True,
        "guarantee": "(1.0, 1e-05)-DP",
        "epsilon": 1.0,
        "epsilon_rdp": 1.1,
        "delta": 1e-5,
        "accountant": "prv",
        "noise_multiplier": 1.2,
        "sample_rate": 0.01,
        "steps": 10,
        "max_grad_norm": 1.0,
        "clipping_mode": "hooks",
        "poisson_sampling": True,
        "expected_batch_size": 8.0,
        "batch_size_per_process": 8.0,
        "sampled_records": 800,
        "private_records": 800,
        "privacy_unit": "record",
    }
    base.update(changes)
    return base


@pytest.mark.parametrize("field", ["epsilon", "epsilon_rdp"])
def test_dp_epsilon_zero_after_training_is_refused(field: str) -> None:
    from pydantic import ValidationError

    from finetrail.governance.evidence.training import DPRecord

    DPRecord.model_validate(_dp())  # the honest record is accepted
    DPRecord.model_validate(_dp(**{field: 0.0, "steps": 0}))  # nothing trained: 0 is true
    with pytest.raises(ValidationError, match="epsilon is 0 after 10 step"):
        DPRecord.model_validate(_dp(**{field: 0.0}))
