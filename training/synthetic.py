"""Synthetic data for tests and the demo, deterministic from a seed (built with Faker).

Three parts:

(a) **domain corpus**: short customer-support / credit-application notes containing realistic PII
    (names, e-mails, phone numbers, SSNs, credit-card numbers, IBANs, postal addresses). Every PII
    value follows recognisable lead-in text ("my email is ..."), so an extraction probe can prompt
    with the text before it. The values per record go to a separate PII manifest
    (``domain_pii.jsonl``: entity, value, offsets, lead-in), which is restricted test material:
    never copy it into evidence or reports.
(b) **labelled task**: credit-approval decisions ("yes"/"no") with sensitive columns ``gender``,
    ``age_band`` and ``region`` and a planted disparity: P(yes | male) - P(yes | female) equals the
    ``disparity`` parameter in expectation; otherwise labels follow legitimate features in the text
    (income, loan size, credit history).
(c) **generic corpus**: no download; docstrings of the CPython standard library (read with
    :mod:`ast`) and :mod:`pydoc_data.topics`, plus public-style support records drawn from a
    disjoint Faker seed stream (same shapes of text as (a), so a base model pretrained on it has
    trained embeddings for the tokens fine-tuning will see; none of (a)'s values).

Same seed, same Faker version, same Python: same bytes. Each part has its own seed stream, so
changing one size does not change the other parts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from finetrail.errors import ConfigError
from finetrail.governance.evidence.base import Frozen
from finetrail.governance.io import atomic_write_bytes, canonical_json, sha256_bytes
from finetrail.training import _generic_corpus, _synth_records
from finetrail.training._synth_records import (
    AGE_BANDS,
    ENTITIES,
    GENDERS,
    REGIONS,
    TASK_QUESTION,
    DomainRecord,
    PiiSpan,
    TaskExample,
)

__all__ = [
    "AGE_BANDS",
    "ENTITIES",
    "GENDERS",
    "REGIONS",
    "SENSITIVE_COLUMNS",
    "TASK_QUESTION",
    "DomainRecord",
    "GenericDoc",
    "PiiSpan",
    "SynthFile",
    "SynthParams",
    "SyntheticSummary",
    "TaskExample",
    "domain_corpus",
    "generic_corpus",
    "measure_disparity",
    "public_records",
    "task_examples",
    "write_synthetic",
]

SENSITIVE_COLUMNS = ("gender", "age_band", "region")
FILES = {
    "domain": "domain.jsonl",
    "domain_pii": "domain_pii.jsonl",
    "task_train": "task_train.jsonl",
    "task_eval": "task_eval.jsonl",
    "generic": "generic.jsonl",
}
SUMMARY_FILE = "synth.json"


@dataclass(frozen=True)
class GenericDoc:
    source: str  # "stdlib:<path>:<name>", "pydoc:<topic>" or "public:<n>"
    text: str


class SynthParams(Frozen):
    seed: int = 0
    records: int = Field(default=1000, ge=1, description="domain-corpus records")
    task_records: int = Field(default=1000, ge=1, description="training rows of the task")
    eval_records: int = Field(default=1000, ge=1, description="evaluation rows of the task")
    disparity: float = Field(default=0.2, ge=-1.0, le=1.0)
    public_records: int = Field(default=2000, ge=0)


class SynthFile(Frozen):
    path: str
    sha256: str
    rows: int


class GroupRates(Frozen):
    p_yes_male: float
    p_yes_female: float
    difference: float  # male minus female, the planted quantity
    n_male: int
    n_female: int


class SyntheticSummary(Frozen):
    """``synth.json``: what was generated, from which parameters, and the measured disparity."""

    schema_version: int = 1
    finetrail_version: str
    faker_version: str
    params: SynthParams
    files: dict[str, SynthFile]
    pii_counts: dict[str, int]
    measured_disparity: dict[str, GroupRates]


def _stream_seed(seed: int, stream: str) -> int:
    """An independent, stable Faker seed for each part (no Python ``hash`` randomisation)."""
    return int.from_bytes(hashlib.sha256(f"finetrail:{stream}:{seed}".encode()).digest()[:8], "big")


def domain_corpus(*, seed: int, records: int) -> list[DomainRecord]:
    """``records`` support / credit notes with PII, fixed by ``seed``."""
    fake = _synth_records.make_faker(_stream_seed(seed, "domain"))
    return [_synth_records.domain_record(fake) for _ in range(records)]


def task_examples(
    *, seed: int, records: int, disparity: float, split: str = "train"
) -> list[TaskExample]:
    """Credit-approval rows with the planted ``disparity`` (male minus female approval rate)."""
    if not -1.0 <= disparity <= 1.0:
        raise ConfigError(f"disparity {disparity} is outside [-1, 1]", field="disparity")
    fake = _synth_records.make_faker(_stream_seed(seed, f"task-{split}"))
    return [_synth_records.task_example(fake, disparity=disparity) for _ in range(records)]


def public_records(*, seed: int, records: int) -> list[str]:
    """Public-style support notes: the domain shapes, from a seed stream disjoint from (a)'s."""
    fake = _synth_records.make_faker(_stream_seed(seed, "public"))
    rnd = fake["en_US"].random
    out = []
    for _ in range(records):
        template = rnd.choice(_synth_records.PUBLIC_TEMPLATES)
        values = {
            e: _synth_records.pii_value(fake, e) for e in ENTITIES if "{" + e + "}" in template
        }
        out.append(_synth_records.fill_template(template, values).text)
    return out


def generic_corpus(*, seed: int = 0, public: int = 2000, stdlib: bool = True) -> list[GenericDoc]:
    """Generic text for pretraining: stdlib docstrings, pydoc topics and ``public`` support notes."""
    docs: list[GenericDoc] = []
    if stdlib:
        docs += [GenericDoc(s, t) for s, t in _generic_corpus.stdlib_docstrings()]
    docs += [GenericDoc(s, t) for s, t in _generic_corpus.pydoc_topics()]
    docs += [
        GenericDoc(f"public:{i}", t)
        for i, t in enumerate(public_records(seed=seed, records=public))
    ]
    return docs


def measure_disparity(examples: Iterable[TaskExample]) -> GroupRates:
    """P(yes | male) - P(yes | female) in generated labels."""
    yes = {g: 0 for g in GENDERS}
    n = {g: 0 for g in GENDERS}
    for ex in examples:
        n[ex.gender] += 1
        yes[ex.gender] += ex.label == "yes"
    pm = yes["male"] / n["male"] if n["male"] else float("nan")
    pf = yes["female"] / n["female"] if n["female"] else float("nan")
    return GroupRates(
        p_yes_male=pm, p_yes_female=pf, difference=pm - pf, n_male=n["male"], n_female=n["female"]
    )


def _jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        + b"\n"
        for r in rows
    )


def _task_row(i: int, ex: TaskExample) -> dict[str, Any]:
    return {
        "id": i,
        "prompt": ex.prompt,
        "text": ex.text,
        "label": ex.label,
        "gender": ex.gender,
        "age_band": ex.age_band,
        "region": ex.region,
    }


def write_synthetic(
    *,
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    records: int = 1000,
    task_records: int = 1000,
    eval_records: int = 1000,
    disparity: float = 0.2,
    public: int = 2000,
) -> SyntheticSummary:
    """Generate all three parts into ``out_dir`` (atomic writes) and return the summary.

    Files: ``domain.jsonl`` (``id``, ``text``), ``domain_pii.jsonl`` (``id``, ``pii``: restricted),
    ``task_train.jsonl`` / ``task_eval.jsonl`` (``id``, ``prompt``, ``text``, ``label``, ``gender``,
    ``age_band``, ``region``), ``generic.jsonl`` (``source``, ``text``) and ``synth.json``.
    """
    import faker
    from pydantic import ValidationError

    from finetrail._version import __version__
    from finetrail.governance.evidence.base import validation_error_to_input_error

    try:
        params = SynthParams(
            seed=seed,
            records=records,
            task_records=task_records,
            eval_records=eval_records,
            disparity=disparity,
            public_records=public,
        )
    except ValidationError as exc:
        raise validation_error_to_input_error(
            exc, source="synthetic parameters", what="invalid parameters"
        ) from exc
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("output path exists and is not a folder", path=str(out))
    domain = domain_corpus(seed=seed, records=records)
    train = task_examples(seed=seed, records=task_records, disparity=disparity, split="train")
    evals = task_examples(seed=seed, records=eval_records, disparity=disparity, split="eval")
    generic = generic_corpus(seed=seed, public=public)

    payloads = {
        "domain": _jsonl([{"id": i, "text": r.text} for i, r in enumerate(domain)]),
        "domain_pii": _jsonl(
            [{"id": i, "pii": [s.to_json() for s in r.pii]} for i, r in enumerate(domain)]
        ),
        "task_train": _jsonl([_task_row(i, ex) for i, ex in enumerate(train)]),
        "task_eval": _jsonl([_task_row(i, ex) for i, ex in enumerate(evals)]),
        "generic": _jsonl([{"source": d.source, "text": d.text} for d in generic]),
    }
    rows = {
        "domain": len(domain),
        "domain_pii": len(domain),
        "task_train": len(train),
        "task_eval": len(evals),
        "generic": len(generic),
    }
    files: dict[str, SynthFile] = {}
    for key, data in payloads.items():
        atomic_write_bytes(out / FILES[key], data)
        files[key] = SynthFile(path=FILES[key], sha256=sha256_bytes(data), rows=rows[key])
    counts = {e: 0 for e in ENTITIES}
    for r in domain:
        for span in r.pii:
            counts[span.entity] += 1
    summary = SyntheticSummary(
        finetrail_version=__version__,
        faker_version=faker.VERSION,
        params=params,
        files=files,
        pii_counts=counts,
        measured_disparity={
            "task_train": measure_disparity(train),
            "task_eval": measure_disparity(evals),
        },
    )
    atomic_write_bytes(out / SUMMARY_FILE, canonical_json(summary.model_dump(mode="json")))
    return summary
