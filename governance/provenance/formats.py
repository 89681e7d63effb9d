"""Streaming readers for dataset files: JSONL, CSV (and TSV), Parquet and plain text.

Each reader yields :class:`Record` values (a record's canonical bytes, its parsed value, where
it starts) while feeding every byte of the file to a SHA-256, so a dataset is read once.

Canonical bytes (the Merkle leaf input):

- JSONL and text: the line exactly as stored, without its ``\\n`` / ``\\r\\n`` terminator;
- CSV and Parquet: the row as canonical JSON (keys sorted, UTF-8, compact), because a row has
  no byte form of its own (quoting, column chunks).

Blank lines are not records. A bad record (not UTF-8, malformed JSON, not a JSON object, a
ragged CSV row, over the size limit) raises :class:`InputError` naming the line, or, with
``skip_bad``, is left out and counted by reason in :attr:`DatasetReader.skipped`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from finetrail.errors import InputError
from finetrail.governance.provenance.hashing import (
    DEFAULT_MAX_RECORD_BYTES,
    FileHasher,
    HashingReader,
)

FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet", "text")
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".text": "text",
}
_FIRST_SKIPS = 20
_SKIP_FIX = (
    "fix the record, or pass --skip-bad-records to leave bad records out "
    "(they are counted in the evidence)"
)


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(
                f"unknown format {fmt!r}", field="format", fix=f"use one of {', '.join(FORMATS)}"
            )
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    raise InputError(
        f"cannot tell the format from the extension {suffix or '(none)'!r}",
        path=str(path),
        field="format",
        fix=f"pass --format ({', '.join(FORMATS)})",
    )


def canonical_record(value: Any) -> bytes:
    """Canonical JSON of a row (no trailing newline)."""
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # NaN/Infinity are not JSON


_JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    dict: "object",
    list: "array",
}


def json_type(value: Any) -> str:
    fast = _JSON_TYPES.get(type(value))
    if fast is not None:
        return fast
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


def to_jsonable(value: Any) -> Any:
    """Arrow/Python values as JSON: ISO dates, decimals and non-finite floats as strings."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


@dataclass
class Record:
    index: int  # position among accepted records (the Merkle leaf index)
    line: int  # first line (or row) of the record in the file, 1-based
    canonical: bytes
    value: Any  # dict for JSONL/CSV/Parquet (JSON-able), str for text
    raw: Any = None  # Parquet: the row as Arrow gave it (dates, bytes, ...), for writing back


@dataclass
class _CsvState:
    line: int = 0
    too_large: bool = False
    bad_utf8: str | None = None


@dataclass
class Skipped:
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    first: list[str] = field(default_factory=list)


class DatasetReader:
    """Iterate the records of one file; :attr:`sha256` and :attr:`size` are set at the end."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        fmt: str,
        *,
        skip_bad: bool = False,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        self.path = Path(path)
        self.format = fmt
        self.skip_bad = skip_bad
        self.max_record_bytes = max_record_bytes
        self.skipped = Skipped()
        self.sha256: str | None = None
        self.size = 0
        self.columns: list[str] | None = None  # CSV header / Parquet schema names
        self.arrow_schema: Any = None
        self._hashing: HashingReader | None = None  # the position, for a progress bar
        if not self.path.exists():
            raise InputError("file not found", path=str(self.path), fix="check the path")
        if self.path.is_dir():
            raise InputError("expected a file, found a directory", path=str(self.path))

    # -- bad records -------------------------------------------------------------------------
    def _bad(self, line: int, reason: str, message: str) -> None:
        if not self.skip_bad:
            raise InputError(f"line {line}: {message}", path=str(self.path), fix=_SKIP_FIX)
        self.skipped.count += 1
        self.skipped.reasons[reason] += 1
        if len(self.skipped.first) < _FIRST_SKIPS:
            self.skipped.first.append(f"line {line}: {message}")

    def _too_large(self, line: int, size: int) -> None:
        self._bad(
            line,
            "too_large",
            f"a record of {size:,} bytes exceeds the limit of {self.max_record_bytes:,} bytes "
            "(--max-record-bytes)",
        )

    @property
    def bytes_read(self) -> int | None:
        """Bytes of the file read so far (in 1 MiB steps); None for Parquet."""
        return self._hashing.size if self._hashing is not None else None

    # -- iteration ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Record]:
        if self.format == "parquet":
            yield from self._parquet()
            return
        with open(self.path, "rb", buffering=0) as raw:
            hashing = self._hashing = HashingReader(raw)
            buffered = io.BufferedReader(hashing, buffer_size=1 << 20)
            if self.format == "csv":
                yield from self._csv(buffered)
            else:
                yield from self._lines(buffered)
            while buffered.read(1 << 20):  # anything left after the last record
                pass
            self.sha256 = hashing.hexdigest()
            self.size = hashing.size

    def _physical_lines(self, fh: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
        """(line number, bytes without terminator); None for a line over the size limit."""
        limit = self.max_record_bytes + 2
        lineno = 0
        while True:
            chunk = fh.readline(limit)
            if not chunk:
                return
            lineno += 1
            if not chunk.endswith(b"\n") and len(chunk) >= limit:
                size = len(chunk)
                while True:  # drain the rest of the oversized line
                    more = fh.readline(1 << 20)
                    size += len(more)
                    if not more or more.endswith(b"\n"):
                        break
                self._too_large(lineno, size - 1)
                yield lineno, None
                continue
            if chunk.endswith(b"\r\n"):
                chunk = chunk[:-2]
            elif chunk.endswith(b"\n"):
                chunk = chunk[:-1]
            yield lineno, chunk

    def _decode(self, lineno: int, data: bytes) -> str | None:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._bad(
                lineno,
                "not_utf8",
                f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {exc.start + 1})",
            )
            return None

    def _lines(self, fh: BinaryIO) -> Iterator[Record]:
        index = 0
        is_json = self.format == "jsonl"
        for lineno, data in self._physical_lines(fh):
            if data is None or not data:
                continue  # oversized (handled) or blank
            text = self._decode(lineno, data)
            if text is None:
                continue
            value: Any = text
            if is_json:
                try:
                    value = _DECODER.decode(text)
                except ValueError as exc:
                    col = getattr(exc, "colno", None)
                    msg = getattr(exc, "msg", str(exc))
                    where = f", column {col}" if col else ""
                    self._bad(lineno, "malformed_json", f"malformed JSON ({msg}{where})")
                    continue
                if not isinstance(value, dict):
                    self._bad(
                        lineno, "not_object", f"expected a JSON object, found {json_type(value)}"
                    )
                    continue
            yield Record(index, lineno, data, value)
            index += 1

    def _csv(self, fh: BinaryIO) -> Iterator[Record]:
        delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
        state = _CsvState()
        decoder = codecs.getincrementaldecoder("utf-8")("strict")

        def text_lines() -> Iterator[str]:
            for lineno, data in self._physical_lines_raw(fh):
                state.line = lineno
                if data is None:
                    state.too_large = True
                    yield "\n"
                    continue
                try:
                    yield decoder.decode(data, final=True)
                except UnicodeDecodeError as exc:
                    state.bad_utf8 = f"byte 0x{data[exc.start]:02x} at column {exc.start + 1}"
                    decoder.reset()
                    yield data.decode("utf-8", errors="replace")

        old_limit = csv.field_size_limit()
        csv.field_size_limit(max(old_limit, self.max_record_bytes))
        try:
            reader = csv.reader(text_lines(), delimiter=delimiter, strict=True)
            header: list[str] | None = None
            index = 0
            start_line = 1
            while True:
                start_line = state.line + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    self._bad(state.line, "malformed_csv", f"malformed CSV ({exc})")
                    state.bad_utf8, state.too_large = None, False
                    continue
                if state.too_large:
                    state.too_large = False
                    continue  # already counted by _physical_lines_raw
                if state.bad_utf8:
                    self._bad(start_line, "not_utf8", f"not valid UTF-8 ({state.bad_utf8})")
                    state.bad_utf8 = None
                    continue
                if not row or row == [""]:
                    continue  # blank line
                if header is None:
                    header = self._header(row, start_line)
                    self.columns = header
                    continue
                if len(row) != len(header):
                    self._bad(
                        start_line,
                        "ragged_row",
                        f"the row has {len(row)} fields, the header has {len(header)}",
                    )
                    continue
                value = dict(zip(header, row, strict=True))
                canonical = canonical_record(value)
                if len(canonical) > self.max_record_bytes:
                    self._too_large(start_line, len(canonical))
                    continue
                yield Record(index, start_line, canonical, value)
                index += 1
        finally:
            csv.field_size_limit(old_limit)

    def _physical_lines_raw(self, fh: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
        """Lines for the CSV parser: with their terminator (quoted fields may span lines)."""
        limit = self.max_record_bytes + 2
        lineno = 0
        while True:
            chunk = fh.readline(limit)
            if not chunk:
                return
            lineno += 1
            if not chunk.endswith(b"\n") and len(chunk) >= limit:
                size = len(chunk)
                while True:
                    more = fh.readline(1 << 20)
                    size += len(more)
                    if not more or more.endswith(b"\n"):
                        break
                self._too_large(lineno, size - 1)
                yield lineno, None
                continue
            yield lineno, chunk

    def _header(self, row: list[str], line: int) -> list[str]:
        names = [c.strip() for c in row]
        if names:
            names[0] = names[0].lstrip("\ufeff")  # a byte-order mark
        problems = []
        if any(not n for n in names):
            problems.append("an empty column name")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"duplicate column names {', '.join(dupes)}")
        if problems:
            raise InputError(
                f"line {line}: the CSV header has " + " and ".join(problems),
                path=str(self.path),
                fix="give every column a unique, non-empty name in the first row",
            )
        return names

    def _parquet(self) -> Iterator[Record]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        hasher = FileHasher()
        feeder = threading.Thread(target=self._feed_file, args=(hasher,), daemon=True)
        feeder.start()
        try:
            try:
                pf = pq.ParquetFile(self.path)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(
                    f"not a readable Parquet file ({exc})",
                    path=str(self.path),
                    fix="check the file",
                ) from exc
            self.arrow_schema = pf.schema_arrow
            self.columns = list(pf.schema_arrow.names)
            index = 0
            row_no = 0
            try:
                for batch in pf.iter_batches(batch_size=1024):
                    for row in batch.to_pylist():
                        row_no += 1
                        value = to_jsonable(row)
                        canonical = canonical_record(value)
                        if len(canonical) > self.max_record_bytes:
                            self._too_large(row_no, len(canonical))
                            continue
                        yield Record(index, row_no, canonical, value, raw=row)
                        index += 1
            except pa.ArrowException as exc:
                raise InputError(
                    f"row {row_no + 1}: unreadable Parquet data ({exc})", path=str(self.path)
                ) from exc
        finally:
            feeder.join()
            self.sha256 = hasher.hexdigest()
            self.size = hasher.size

    def _feed_file(self, hasher: FileHasher) -> None:
        with open(self.path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                hasher.feed(chunk)
