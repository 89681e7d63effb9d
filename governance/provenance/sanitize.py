"""Write a sanitised copy of a dataset with presidio-anonymizer operators, streaming.

Operators: ``replace`` (the value becomes ``<ENTITY_TYPE>``), ``mask`` (every character becomes
``*``), ``hash`` (presidio's SHA-256 of the value with a secret key as salt: the same value
maps to the same token under one key, and without the key the token cannot be reversed by
hashing guesses). A finding that starts or ends inside a word is widened to the whole word,
so no fragment of an identifier is left. The output keeps the input's format; a record with
nothing to replace is written back byte for byte (JSONL, text), so its Merkle leaf is unchanged.

The input must be the registered file (its SHA-256 is checked as it streams); the output is
written to a temporary file beside the target and renamed into place only when complete.

:func:`rescan_output` then reads the written file back and scans it with every engine finetrail
has: the pattern table (:mod:`finetrail.governance.pii.patterns`, no score threshold) and the
Presidio engine; :func:`residual_problem` says what either still finds of the targeted types.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from finetrail.errors import CheckFailed, InputError
from finetrail.governance.evidence.dataset import DatasetRecord, PiiSummary
from finetrail.governance.pii.config import ScanConfig
from finetrail.governance.provenance.formats import DatasetReader, Record
from finetrail.progress import Bar, reading


class _Writer:
    def __init__(self, fmt: str, fh: IO[bytes], reader: DatasetReader, path: Path) -> None:
        self.fmt = fmt
        self.fh = fh
        self.reader = reader
        self.path = path
        self._csv: Any = None
        self._text: IO[str] | None = None
        self._pq: Any = None
        self._rows: list[Any] = []

    def write(self, rec: Record, value: Any, changed: bool) -> None:
        if self.fmt in ("jsonl", "text"):
            if not changed:
                self.fh.write(rec.canonical + b"\n")
            elif self.fmt == "text":
                self.fh.write(
                    str(value).replace("\r", " ").replace("\n", " ").encode("utf-8") + b"\n"
                )
            else:
                self.fh.write(json.dumps(value, ensure_ascii=False).encode("utf-8") + b"\n")
        elif self.fmt == "csv":
            if self._csv is None:
                self._text = open(  # noqa: SIM115 - closed in close()
                    self.fh.fileno(), "w", encoding="utf-8", newline="", closefd=False
                )
                delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
                self._csv = csv.writer(self._text, delimiter=delimiter)
                self._csv.writerow(self.reader.columns or [])
            self._csv.writerow([value.get(c, "") for c in self.reader.columns or []])
        else:
            self._rows.append(value)
            if len(self._rows) >= 1024:
                self._flush_parquet()

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=self.reader.arrow_schema)
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.fh, table.schema)
        self._pq.write_table(table)
        self._rows = []

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush_parquet()
            if self._pq is not None:
                self._pq.close()
        if self._text is not None:
            self._text.flush()
            self._text.close()


def write_sanitized(
    *,
    parent: DatasetRecord,
    input_path: Path,
    output_path: Path,
    operator: str,
    key: bytes | None,
    entities: Sequence[str] | None,
    config: ScanConfig,
    progress: Bar | None = None,
) -> dict[str, int]:
    """Stream ``input_path`` to ``output_path`` with PII replaced; returns the input's counts."""
    from finetrail.governance.pii.scan import open_scanner
    from finetrail.governance.provenance.api import replace_texts, text_units

    if output_path.exists():
        raise InputError(
            "the output file exists already", path=str(output_path), fix="choose a new path"
        )
    if output_path.resolve() == input_path.resolve():
        raise InputError("the output would overwrite the input", path=str(output_path))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    reader = DatasetReader(input_path, parent.format, skip_bad=parent.skipped.count > 0)
    scanner = open_scanner(config, sanitize_operator=operator, key=key, entities=entities)
    bar = reading(progress, "sanitize", reader)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{output_path.name}.", suffix=".tmp", dir=output_path.parent
    )
    done = False
    try:
        pending: dict[int, tuple[Record, list[tuple[str, str]]]] = {}
        with os.fdopen(fd, "wb") as fh:
            writer = _Writer(parent.format, fh, reader, output_path)

            def emit(index: int, new_texts: list[str]) -> None:
                rec, units = pending.pop(index)
                changed = any(n != u[1] for n, u in zip(new_texts, units, strict=True))
                base = rec.value if rec.raw is None else rec.raw
                value = (
                    replace_texts(base, iter(new_texts), config.text_fields) if changed else base
                )
                writer.write(rec, value, changed)

            for rec in reader:
                units = text_units(rec.value if rec.raw is None else rec.raw, config.text_fields)
                pending[rec.index] = (rec, units)
                for index, new_texts in scanner.add(rec.index, units):
                    emit(index, new_texts)
                bar.record(reader.bytes_read)
            bar.close()
            for index, new_texts in scanner.finish():
                emit(index, new_texts)
            writer.close()
            fh.flush()
            os.fsync(fh.fileno())
        if reader.sha256 != parent.sha256:
            raise InputError(
                f"the input is not the registered dataset {parent.name!r}: its SHA-256 is "
                f"{reader.sha256}, the record's is {parent.sha256}",
                path=str(input_path),
                fix="pass the file that was registered",
            )
        counts = dict(sorted(scanner.tally.counts.items()))
        targeted = [e for e in counts if not entities or e in entities]
        if not targeted:
            raise InputError(
                "nothing to sanitise: the scan found none of the targeted entity types",
                path=str(input_path),
                why="the output would be identical to the input",
            )
        os.replace(tmp, output_path)
        done = True
        return counts
    finally:
        bar.close()
        scanner.close()
        if not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


# -- the re-scan -------------------------------------------------------------------------------
PATTERN_ENGINE = "patterns"
PRESIDIO_ENGINE = "presidio"


@dataclass
class Rescan:
    """What every engine found in the written output: Presidio's summary (no residual yet) and
    the pattern table's counts and first record positions per entity type."""

    summary: PiiSummary
    presidio_records: dict[str, list[int]]
    pattern_counts: Counter[str] = field(default_factory=Counter)
    pattern_records: dict[str, list[int]] = field(default_factory=dict)

    def residual(self, targeted: Sequence[str]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """Per targeted type the most any engine found, and the counts per engine."""
        from finetrail.governance.pii.patterns import ENTITIES

        by_engine = {
            PATTERN_ENGINE: {e: self.pattern_counts.get(e, 0) for e in targeted if e in ENTITIES},
            PRESIDIO_ENGINE: {e: self.summary.counts.get(e, 0) for e in targeted},
        }
        residual = {e: max(c.get(e, 0) for c in by_engine.values()) for e in sorted(targeted)}
        return residual, by_engine

    def with_residual(self, targeted: Sequence[str]) -> PiiSummary:
        residual, by_engine = self.residual(targeted)
        data = self.summary.model_dump(mode="json")
        data["residual"] = residual
        data["residual_by_engine"] = by_engine
        return PiiSummary.model_validate(data)

    def found(self) -> set[str]:
        """Every entity type either engine found in the output."""
        return set(self.pattern_counts) | set(self.summary.counts)


# What the hash operator writes: SHA-256 hex tokens. They are set aside before the re-scan
# (Presidio's licence and URL patterns match inside random hex, e.g. "14.bf..." as a URL).
HASH_TOKEN = re.compile(r"(?<![0-9A-Za-z_])[0-9a-f]{64}(?![0-9A-Za-z_])")
HASH_PLACEHOLDER = "<HASHED>"


def rescan_output(
    *,
    path: Path,
    fmt: str,
    config: ScanConfig,
    operator: str = "replace",
    progress: Bar | None = None,
) -> Rescan:
    """Read ``path`` back and scan every text with the pattern table and with Presidio.

    With ``operator="hash"`` each SHA-256 hex token is read as ``<HASHED>`` first.
    """
    from finetrail.governance.pii import patterns
    from finetrail.governance.pii.scan import MAX_RECORD_POSITIONS, open_scanner
    from finetrail.governance.provenance.api import text_units

    reader = DatasetReader(path, fmt)
    scanner = open_scanner(config)
    bar = reading(progress, "re-scan", reader)
    counts: Counter[str] = Counter()
    records: dict[str, list[int]] = {}
    try:
        for rec in reader:
            units = text_units(rec.value if rec.raw is None else rec.raw, config.text_fields)
            if operator == "hash":
                units = [(f, HASH_TOKEN.sub(HASH_PLACEHOLDER, t)) for f, t in units]
            for _, text in units:
                for m in patterns.find(text):
                    counts[m.entity] += 1
                    where = records.setdefault(m.entity, [])
                    if len(where) < MAX_RECORD_POSITIONS and rec.index not in where:
                        where.append(rec.index)
            for _ in scanner.add(rec.index, units):
                pass
            bar.record(reader.bytes_read)
        for _ in scanner.finish():
            pass
    finally:
        bar.close()
        scanner.close()
    return Rescan(
        summary=scanner.tally.summary(scanner.engine),
        presidio_records={k: list(v) for k, v in scanner.tally.records_by_entity.items()},
        pattern_counts=counts,
        pattern_records=records,
    )


def residual_problem(rescan: Rescan, targeted: Sequence[str]) -> CheckFailed | None:
    """A :class:`CheckFailed` naming each targeted type still found (counts and record
    positions, never values), or None when no engine found any."""
    residual, by_engine = rescan.residual(targeted)
    left = {e: n for e, n in residual.items() if n}
    if not left:
        return None
    parts = []
    for entity, n in left.items():
        engines = ", ".join(
            f"{'pattern table' if name == PATTERN_ENGINE else name} {counts[entity]}"
            for name, counts in by_engine.items()
            if entity in counts
        )
        where = sorted(
            set(rescan.pattern_records.get(entity, []))
            | set(rescan.presidio_records.get(entity, []))
        )
        shown = ", ".join(str(i) for i in where[:10]) + (", ..." if len(where) > 10 else "")
        parts.append(f"{entity} {n} ({engines}; records {shown})")
    return CheckFailed(
        "the sanitised output still holds PII of the targeted types: "
        + "; ".join(parts)
        + "; the output was removed and nothing was registered",
        why="the written file was scanned again with every engine (the pattern table and "
        "Presidio) and they found values the sanitiser did not replace",
        fix="lower --score-threshold so the sanitiser replaces them too, or name the types to "
        "replace with --entity (the others are then left in place and recorded as found)",
    )


def targeted_types(
    entities: Sequence[str] | None, before: Mapping[str, int], rescan: Rescan
) -> list[str]:
    """The types the residual is judged on: those named, or every type found before or after."""
    if entities:
        return sorted(set(entities))
    return sorted(set(before) | rescan.found())
