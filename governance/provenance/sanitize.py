"""Write a sanitised copy of a dataset with presidio-anonymizer operators, streaming.

Operators: ``replace`` (the value becomes ``<ENTITY_TYPE>``), ``mask`` (every character becomes
``*``), ``hash`` (presidio's SHA-256 of the value with a secret key as salt: the same value
maps to the same token under one key, and without the key the token cannot be reversed by
hashing guesses). The output keeps the input's format; a record with nothing to replace is
written back byte for byte (JSONL, text), so its Merkle leaf is unchanged.

The input must be the registered file (its SHA-256 is checked as it streams); the output is
written to a temporary file beside the target and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from finetrail.errors import InputError
from finetrail.governance.evidence.dataset import DatasetRecord
from finetrail.governance.pii.config import ScanConfig
from finetrail.governance.provenance.formats import DatasetReader, Record


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
        scanner.close()
        if not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
