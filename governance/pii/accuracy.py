"""Measured PII detection accuracy, per engine configuration (light: pydantic and stdlib).

``benchmarks/pii_accuracy.py`` scores each engine configuration on the labelled evaluation set
(:mod:`.evaluate`) and writes the figures to ``data/accuracy.json`` (an :class:`AccuracyTable`)
beside the Markdown table in ``docs/pii-accuracy.md``. A scan looks up the configuration that
ran (:func:`configuration_key`) and records what was measured for it in the dataset evidence
(:func:`accuracy_for`). Nothing is assumed: a configuration that was never benchmarked, an NER
model whose files differ from the measured one, or figures measured on another version of the
evaluation set all give "not measured" (``None``), never a default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from finetrail.errors import IntegrityError
from finetrail.governance.evidence.base import Frozen
from finetrail.governance.evidence.dataset import (
    SHA256_HEX,
    EntityAccuracy,
    NerModelInfo,
    PiiAccuracy,
)

__all__ = [
    "ACCURACY_FILE",
    "PATTERNS_CONFIGURATION",
    "AccuracyTable",
    "MeasuredConfiguration",
    "accuracy_for",
    "configuration_key",
    "load_table",
]

ACCURACY_FILE = "accuracy.json"
PATTERNS_CONFIGURATION = "patterns"  # the pattern table alone (extraction probe, re-masking)


class MeasuredConfiguration(Frozen):
    """The figures of one engine configuration: per gold entity, with what they ran on."""

    label: str = Field(min_length=1)  # as in the docs table
    entities: dict[str, EntityAccuracy]
    measured_with: dict[str, str] = Field(default_factory=dict)
    ner_sha256: str | None = Field(default=None, pattern=SHA256_HEX)


class AccuracyTable(Frozen):
    """``data/accuracy.json``: every measured configuration, keyed by :func:`configuration_key`."""

    schema_version: Literal[1] = 1
    finetrail_version: str = Field(min_length=1)
    eval_set_sha256: str = Field(pattern=SHA256_HEX)
    eval_set_records: int = Field(ge=1)
    matching: str = Field(min_length=1)
    command: str = Field(min_length=1)
    configurations: dict[str, MeasuredConfiguration]

    def to_json_text(self) -> str:
        """Indented JSON with sorted keys and a final newline, as the benchmark writes it."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def configuration_key(
    *,
    language: str,
    score_threshold: float,
    ner: NerModelInfo | None,
    name_locales: Iterable[str] = (),
) -> str:
    """The key of a Presidio engine configuration: what changes its findings, and nothing else
    (the pre-filter, the workers and the fields scanned do not)."""
    parts = ["presidio", f"language={language}", f"threshold={score_threshold:g}"]
    if ner is not None:
        parts.append(f"ner=spacy:{ner.model}@{ner.version}")
    else:
        parts += ["ner=none", "names=" + ",".join(name_locales)]
    return "; ".join(parts)


def _packaged() -> bytes | None:
    resource = files("finetrail.governance.pii").joinpath("data").joinpath(ACCURACY_FILE)
    try:
        return resource.read_bytes()
    except FileNotFoundError:
        return None


def load_table(path: str | os.PathLike[str] | None = None) -> AccuracyTable | None:
    """The accuracy table (the packaged one by default); None when there is none.

    A file that exists but does not validate raises :class:`IntegrityError`: the figures a
    record would carry cannot be trusted.
    """
    data = Path(path).read_bytes() if path is not None else _packaged()
    if data is None:
        return None
    try:
        return AccuracyTable.model_validate_json(data)
    except ValidationError as exc:
        raise IntegrityError(
            f"the PII accuracy table is invalid ({exc.error_count()} problems)",
            path=str(path)
            if path is not None
            else f"finetrail.governance.pii/data/{ACCURACY_FILE}",
            fix="regenerate it with benchmarks/pii_accuracy.py (see docs/pii-accuracy.md)",
        ) from exc


def _not_measured(configuration: str, entities: Iterable[str], note: str) -> PiiAccuracy:
    return PiiAccuracy(
        configuration=configuration,
        measured=False,
        entities=dict.fromkeys(sorted(entities)),
        note=note,
    )


def accuracy_for(
    configuration: str,
    entities: Iterable[str],
    *,
    ner: NerModelInfo | None = None,
    eval_set_sha256: str | None = None,
    table: AccuracyTable | None = None,
    versions: Mapping[str, str] | None = None,
) -> PiiAccuracy:
    """What was measured for ``configuration``, for each of ``entities`` (those a scan looked for).

    ``eval_set_sha256`` is the digest of the evaluation set as packaged now (default: computed);
    figures measured on another version of it are stale and not used. With ``ner``, the figures
    count only for the exact files that were measured (``ner.sha256``). ``versions`` (library
    name to version, of the scan) are compared with the measured ones; a difference is noted.
    """
    wanted = sorted(set(entities))
    if table is None:
        table = load_table()
    if table is None:
        return _not_measured(configuration, wanted, "no accuracy table is installed")
    if eval_set_sha256 is None:
        from finetrail.governance.pii.evaluate import eval_set_digest

        eval_set_sha256 = eval_set_digest()
    entry = table.configurations.get(configuration)
    if entry is None:
        return _not_measured(configuration, wanted, "this engine configuration was not benchmarked")
    if table.eval_set_sha256 != eval_set_sha256:
        return _not_measured(
            configuration,
            wanted,
            "the figures were measured on another version of the evaluation set (stale)",
        )
    if ner is not None and entry.ner_sha256 != ner.sha256:
        return _not_measured(
            configuration,
            wanted,
            f"figures exist for {ner.model} {ner.version} with files sha256 "
            f"{entry.ner_sha256}; the files that ran differ ({ner.sha256})",
        )
    differ = sorted(
        f"{lib} {entry.measured_with[lib]} (this scan: {ver})"
        for lib, ver in (versions or {}).items()
        if lib in entry.measured_with and entry.measured_with[lib] != ver
    )
    note = "measured with " + ", ".join(differ) if differ else None
    return PiiAccuracy(
        configuration=configuration,
        measured=True,
        entities={e: entry.entities.get(e) for e in wanted},
        eval_set_sha256=table.eval_set_sha256,
        eval_set_records=table.eval_set_records,
        matching=table.matching,
        measured_with=dict(sorted(entry.measured_with.items())),
        note=note,
    )
