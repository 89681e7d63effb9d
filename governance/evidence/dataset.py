"""Dataset evidence: provenance, record-level commitment, lineage and the PII scan summary.

One :class:`DatasetRecord` per registered dataset, at ``evidence/datasets/<sha256>.json``. The
record commits to the file twice: the byte SHA-256 of the file (its identity) and an RFC 6962
Merkle root over its records (so one record's membership can be proven without the dataset).

Raw personal data never appears here: PII findings are counts, a coverage map and masked
examples in which every detected value is replaced by its entity type.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from finetrail.governance.evidence.base import EvidenceRecord, Frozen

SHA256_HEX = r"^[0-9a-f]{64}$"
DatasetFormat = Literal["jsonl", "csv", "parquet", "text"]
JsonType = Literal["string", "integer", "number", "boolean", "null", "object", "array"]

MERKLE_SCHEME = "rfc6962-sha256"


class FieldInfo(Frozen):
    """One top-level field of the records: the JSON types seen and how many records hold it."""

    types: tuple[JsonType, ...]
    present: int = Field(ge=0)


class TokenEstimate(Frozen):
    """A token count estimate for the text fields (no tokenizer is loaded at registration)."""

    count: int = Field(ge=0)
    method: str = Field(min_length=1)


class MerkleInfo(Frozen):
    """How the Merkle root was built and where its leaf hashes are kept."""

    scheme: Literal["rfc6962-sha256"] = "rfc6962-sha256"
    leaf_input: str = Field(min_length=1)
    leaves_artifact: str = Field(min_length=1)
    leaves_sha256: str = Field(pattern=SHA256_HEX)


class SkippedRecords(Frozen):
    """Records left out because they were bad and the user asked to skip bad records."""

    count: int = Field(default=0, ge=0)
    reasons: dict[str, int] = Field(default_factory=dict)
    first: tuple[str, ...] = ()  # up to 20 locations with the reason, never content


class PiiExample(Frozen):
    """A masked example: every detected value in the snippet is replaced by ``<ENTITY_TYPE>``."""

    entity_type: str = Field(min_length=1)
    record: int = Field(ge=0)
    field: str
    masked: str


class _Extended(Frozen):
    """A part that gained optional fields after records were first written: those fields are
    left out of the serialised record while they are None, so a record written before them
    serialises, and hashes, exactly as it did."""

    ADDED_OPTIONAL: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_unset_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self.ADDED_OPTIONAL:
                if name in data and data[name] is None:
                    del data[name]
        return data


class NerModelInfo(Frozen):
    """The NER model that ran: which engine, which model, which exact files.

    ``sha256`` is a digest over the pipeline's files (relative path and bytes, sorted), so a
    reader can tell two builds of a model with the same name and version apart and compare the
    files with the publisher's release.
    """

    engine: str = Field(min_length=1)  # "spacy <version>"
    model: str = Field(min_length=1)  # the pipeline's own name, "<lang>_<name>" from meta.json
    version: str = Field(min_length=1)  # the pipeline's version from meta.json
    given: str = Field(min_length=1)  # what was asked for: an installed package name or a path
    package: str | None = None  # "<distribution> <version>" when loaded from an installed package
    sha256: str = Field(pattern=SHA256_HEX)
    labels: tuple[str, ...] = ()  # the NER labels the pipeline predicts


class PiiEngineInfo(_Extended):
    """What ran the scan, so a reader knows what the counts can and cannot mean.

    ``configuration`` is the key of the engine configuration under which its accuracy was
    measured (see :class:`PiiAccuracy`); ``ner`` names the NER model, when one ran.
    """

    ADDED_OPTIONAL: ClassVar[tuple[str, ...]] = ("ner", "configuration")

    analyzer: str  # "presidio-analyzer <version>"
    nlp_engine: Literal["no_op", "spacy"]
    spacy_model: str | None = None
    language: str = "en"
    name_list: dict[str, Any] | None = None  # deny-list recogniser: locales, sizes
    prefilter: bool = True
    fields: tuple[str, ...] | None = None  # the text fields scanned; None = every string field
    ner: NerModelInfo | None = None
    configuration: str | None = None


class EntityAccuracy(Frozen):
    """Measured detection counts and rates of one entity type on the labelled evaluation set.

    ``precision`` is ``None`` where the engine reported nothing, ``recall`` where the set has no
    span of the type; intervals are Wilson 95%.
    """

    n: int = Field(ge=0)
    tp: int = Field(ge=0)
    fp: int = Field(ge=0)
    fn: int = Field(ge=0)
    precision: float | None = Field(default=None, ge=0.0, le=1.0)
    recall: float | None = Field(default=None, ge=0.0, le=1.0)
    precision_ci: tuple[float, float] | None = None
    recall_ci: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EntityAccuracy:
        if self.n != self.tp + self.fn:
            raise ValueError("n must equal tp + fn")
        return self


class PiiAccuracy(Frozen):
    """The measured accuracy of the engine configuration that ran the scan.

    ``entities`` has one entry per entity type the scan looked for: its measured figures, or
    ``None`` where that type was not measured (the evaluation set has no span of it, or the
    configuration was never benchmarked: then ``measured`` is false and every entry is None).
    Figures come from ``benchmarks/pii_accuracy.py``; ``measured_with`` names the library and
    model versions they were measured with, which may differ from the ones that ran.
    """

    configuration: str = Field(min_length=1)
    measured: bool
    entities: dict[str, EntityAccuracy | None] = Field(default_factory=dict)
    eval_set_sha256: str | None = Field(default=None, pattern=SHA256_HEX)
    eval_set_records: int | None = Field(default=None, ge=1)
    matching: str | None = None
    measured_with: dict[str, str] = Field(default_factory=dict)
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PiiAccuracy:
        if not self.measured and any(v is not None for v in self.entities.values()):
            raise ValueError("an unmeasured configuration cannot carry figures")
        if self.measured and self.eval_set_sha256 is None:
            raise ValueError("measured figures must name the evaluation set (eval_set_sha256)")
        return self


class ScanExecution(Frozen):
    """Where a scan ran: on this machine (``local``, ``workers`` processes) or on Spark.

    For Spark, ``inputs_sha256`` is the job's digest of what it scanned: SHA-256 over the
    partitions' ``(first record, records, SHA-256 of their lines)`` in order, each partition
    digest recomputed from the file on the driver and found equal before the summary is
    accepted; ``partitions`` and ``master`` say how it was split and where it ran."""

    engine: Literal["local", "spark"]
    workers: int | None = Field(default=None, ge=1)
    master: str | None = None
    spark_version: str | None = None
    partitions: int | None = Field(default=None, ge=1)
    inputs_sha256: str | None = Field(default=None, pattern=SHA256_HEX)


class PiiSummary(_Extended):
    """The PII scan of one dataset (Presidio analyzer).

    ``coverage`` maps each entity type that was looked for to the recogniser that looked for it;
    ``not_covered`` names entity types a reader might expect that nothing looked for. ``residual``
    is set on sanitised datasets: what the re-scan still found of the entity types the
    sanitiser targeted (per type, the most any re-scanning engine found); ``residual_by_engine``
    the same per engine (the pattern table and Presidio). ``accuracy`` carries the measured
    precision and recall of the engine configuration that ran (None on records made before it
    was recorded).
    """

    ADDED_OPTIONAL: ClassVar[tuple[str, ...]] = ("residual_by_engine", "accuracy", "execution")

    records_scanned: int = Field(ge=0)
    texts_scanned: int = Field(ge=0)
    records_with_pii: int = Field(ge=0)
    counts: dict[str, int] = Field(default_factory=dict)
    coverage: dict[str, str] = Field(default_factory=dict)
    not_covered: tuple[str, ...] = ()
    score_threshold: float = Field(ge=0.0, le=1.0)
    masked_examples: tuple[PiiExample, ...] = ()
    residual: dict[str, int] | None = None
    residual_by_engine: dict[str, dict[str, int]] | None = None
    engine: PiiEngineInfo
    accuracy: PiiAccuracy | None = None
    execution: ScanExecution | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PiiSummary:
        if self.records_with_pii > self.records_scanned:
            raise ValueError("records_with_pii exceeds records_scanned")
        if any(v < 0 for v in self.counts.values()):
            raise ValueError("counts must be non-negative")
        return self


class DatasetRecord(EvidenceRecord):
    """``evidence/datasets/<sha256>.json``: one registered dataset."""

    record_type: Literal["dataset"] = "dataset"
    name: str = Field(min_length=1, max_length=200)
    sha256: str = Field(pattern=SHA256_HEX)
    merkle_root: str = Field(pattern=SHA256_HEX)
    records: int = Field(ge=1)
    format: DatasetFormat
    size_bytes: int = Field(ge=1)
    filename: str = Field(min_length=1)
    merkle: MerkleInfo
    fields: dict[str, FieldInfo] = Field(default_factory=dict)
    tokens: TokenEstimate
    license: str = Field(min_length=1)
    source: str = Field(min_length=1)
    collection: str = Field(min_length=1)
    legal_basis: str = Field(min_length=1)
    purpose: str = Field(min_length=1)
    splits: dict[str, float] = Field(default_factory=dict)
    limitations: tuple[str, ...] = ()
    derived_from: tuple[str, ...] = ()
    transform: str | None = None
    transform_params: dict[str, Any] = Field(default_factory=dict)
    skipped: SkippedRecords = SkippedRecords()
    pii: PiiSummary | None = None
    registered: datetime

    @field_validator("derived_from")
    @classmethod
    def _digests(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for d in v:
            if not re.fullmatch(SHA256_HEX, d):
                raise ValueError(f"{d!r} is not a SHA-256 hex digest")
        if len(set(v)) != len(v):
            raise ValueError("a parent is listed twice")
        return v

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: dict[str, float]) -> dict[str, float]:
        for name, frac in v.items():
            if not 0.0 < frac <= 1.0:
                raise ValueError(f"split {name!r}: fraction {frac} is not in (0, 1]")
        if v and abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"split fractions sum to {sum(v.values()):.6g}, not 1")
        return v

    @model_validator(mode="after")
    def _lineage(self) -> DatasetRecord:
        if self.derived_from and not self.transform:
            raise ValueError("a derived dataset must name its transform")
        if self.transform and not self.derived_from:
            raise ValueError("a transform needs the parent dataset(s) it was applied to")
        if self.sha256 in self.derived_from:
            raise ValueError("a dataset cannot be derived from itself (cycle)")
        return self

    @property
    def rel_path(self) -> str:
        return dataset_record_path(self.sha256)


def dataset_record_path(sha256: str) -> str:
    from finetrail.governance.evidence.registry import dataset_location

    return dataset_location(sha256)


def leaves_artifact_path(sha256: str) -> str:
    return f"artifacts/datasets/{sha256}.leaves"


class TrainingDataset(Frozen):
    """One dataset's part in a release, as lineage decides it
    (:mod:`finetrail.governance.provenance.trained_on`)."""

    sha256: str
    name: str
    registered: bool
    roles: tuple[str, ...] = ()
    read_by_training: bool
    trained_on: bool
    derived_from: tuple[str, ...] = ()
    pii_state: Literal["present", "absent", "unknown"]
    pii_basis: Literal["scan", "sanitised", "inherited", "not scanned", "not registered"]
    pii: str  # the state in one sentence, with the command that would record what is missing
    license: str | None = None
    source: str | None = None
    legal_basis: str | None = None


class TrainingDataSummary(EvidenceRecord):
    """Computed at gate time from ``training.json`` and the dataset records: the datasets the run
    read for training (``read_for_training``) and those it was trained on through lineage
    (``trained_on``: those and every ancestor), so rules judge the data training actually used."""

    record_type: Literal["training_data"] = "training_data"
    training_sha256: str | None = None
    read_for_training: tuple[TrainingDataset, ...] = ()
    trained_on: tuple[TrainingDataset, ...] = ()
    uses_personal_data: Literal["present", "absent", "unknown"]
