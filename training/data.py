"""Datasets of a training run: JSONL or Parquet files read, hashed, checked against the
workspace, tokenised.

A dataset is a JSONL file, one JSON object per line, or a Parquet file (``.parquet``/``.pq``),
one row per record, read by the same reader as ``finetrail data register`` (pyarrow, the
``data`` extra): a text field, a prompt and its completion, or chat messages (``data.format``;
:mod:`finetrail.training.formats`). Its identity is the SHA-256 of the file's bytes. It counts as *registered* when ``evidence/datasets/<sha256>.json`` exists in
the workspace (the provenance layer writes those); ``data.unregistered`` decides whether an
unregistered dataset is refused (default) or used and flagged in the evidence.

The preflight (:func:`preflight`) runs before any model is loaded and reports every problem at
once: missing or malformed files, empty datasets, unregistered datasets, a ``delta`` that is not
below ``1/N``, a generic corpus too small for the mixing fraction.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetrail.errors import ConfigError, FinetrailError, InputError
from finetrail.governance.evidence.registry import dataset_location
from finetrail.governance.io import read_text_strict, sha256_bytes
from finetrail.training.config import PrivacyConfig, TrainConfig
from finetrail.training.formats import Record, parse_record

if TYPE_CHECKING:
    import torch

__all__ = [
    "DatasetFile",
    "Datasets",
    "dataset_record_path",
    "encode",
    "preflight",
    "read_jsonl_records",
    "read_jsonl_texts",
]


def dataset_record_path(sha256: str) -> str:
    """Workspace-relative path of a dataset's provenance record."""
    return dataset_location(sha256)


@dataclass(frozen=True)
class DatasetFile:
    role: str  # train | validation | generic
    path: Path
    sha256: str
    texts: tuple[str, ...]  # each record as one string (Record.plain)
    registered: bool
    records: tuple[Record, ...] = ()
    format: str = "text"

    @property
    def record(self) -> str | None:
        return dataset_record_path(self.sha256) if self.registered else None


@dataclass(frozen=True)
class Datasets:
    train: DatasetFile
    validation: DatasetFile | None
    generic: DatasetFile | None
    generic_mixed: tuple[str, ...]  # the generic records mixed into the sampled training set

    def all(self) -> list[DatasetFile]:
        return [d for d in (self.train, self.validation, self.generic) if d is not None]

    @property
    def sampled_texts(self) -> list[str]:
        """What Poisson sampling draws from: the private records, then the mixed generic ones."""
        return [*self.train.texts, *self.generic_mixed]

    @property
    def sampled_records(self) -> list[Record]:
        """:attr:`sampled_texts` as records (the generic ones are plain text)."""
        train = self.train.records or tuple(Record("text", text=t) for t in self.train.texts)
        return [*train, *(Record("text", text=t) for t in self.generic_mixed)]


def read_jsonl_texts(
    path: Path, text_field: str, *, limit_errors: int = 5
) -> tuple[str, tuple[str, ...]]:
    """(sha256 of the bytes, the texts). Raises :class:`InputError` naming file, line and field."""
    sha, records = read_jsonl_records(path, "text", text_field, limit_errors=limit_errors)
    return sha, tuple(r.text for r in records)


PARQUET_SUFFIXES = (".parquet", ".pq")


def _parquet_objects(path: Path) -> tuple[str, list[tuple[str, Any]]]:
    """(sha256 of the bytes, (where, row as JSON-able dict) per row), with the reader of
    ``finetrail data register``, so a row is the value that command hashes."""
    try:
        from finetrail.governance.provenance.formats import DatasetReader
    except ImportError as exc:  # pragma: no cover - pyarrow ships with the data extra
        raise InputError(
            "reading Parquet needs pyarrow", path=str(path), fix="pip install 'finetrail[data]'"
        ) from exc
    reader = DatasetReader(path, "parquet")
    rows = [(f"row {r.line}", r.value) for r in reader]
    assert reader.sha256 is not None
    return reader.sha256, rows


def read_jsonl_records(
    path: Path, fmt: str, text_field: str = "text", *, limit_errors: int = 5
) -> tuple[str, tuple[Record, ...]]:
    """(sha256 of the bytes, the records of format ``fmt``). Raises :class:`InputError` naming
    the file, the lines (rows, for Parquet) and what is wrong with them."""
    if path.suffix.lower() in PARQUET_SUFFIXES and not path.is_dir():
        if not path.exists():
            raise InputError(
                "dataset file not found", path=str(path), fix="check data.* in the config"
            )
        sha, rows = _parquet_objects(path)
        return sha, _parse_all(rows, path, fmt, text_field, limit_errors, "row")
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(
            "dataset file not found", path=str(path), fix="check data.* in the config"
        ) from exc
    except IsADirectoryError as exc:
        raise InputError("expected a JSONL file, found a directory", path=str(path)) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = read_text_strict(path)  # raises InputError naming the byte and line
    objects: list[tuple[str, Any]] = []
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            objects.append((f"line {n}", json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: malformed JSON ({exc.msg}, column {exc.colno})")
    return sha256_bytes(raw), _parse_all(
        objects, path, fmt, text_field, limit_errors, "line", problems
    )


def _parse_all(
    objects: list[tuple[str, Any]],
    path: Path,
    fmt: str,
    text_field: str,
    limit_errors: int,
    unit: str,
    problems: list[str] | None = None,
) -> tuple[Record, ...]:
    problems = list(problems or [])
    records: list[Record] = []
    for where, obj in objects:
        parsed = parse_record(obj, fmt, text_field)
        if isinstance(parsed, str):
            problems.append(f"{where}: {parsed}")
            continue
        records.append(parsed)
    problems.sort(key=lambda p: int(p.split(":", 1)[0].split()[-1]))
    if problems:
        more = len(problems) - limit_errors
        shown = problems[:limit_errors] + ([f"... and {more} more"] if more > 0 else [])
        expect = {
            "text": f"a JSON object with a non-empty string '{text_field}'",
            "prompt_completion": "a JSON object with a string 'prompt' and a non-empty string "
            "'completion'",
            "messages": "a JSON object with 'messages': a list of {role, content} objects with "
            "at least one assistant message",
        }[fmt]
        raise InputError(
            "invalid dataset: " + "; ".join(shown),
            path=str(path),
            field=text_field if fmt == "text" else "data.format",
            fix=f"each {unit} must be {expect} (data.format: {fmt})",
        )
    if not records:
        raise InputError(
            "the dataset is empty", path=str(path), fix="a dataset needs at least one record"
        )
    return tuple(records)


def preflight(config: TrainConfig, *, workspace_root: Path, source: str) -> Datasets:
    """Read and check every dataset; raise one :class:`ConfigError` listing all problems."""
    problems: list[str] = []
    first_field: str | None = None
    files: dict[str, DatasetFile] = {}
    data = config.data

    for role, key in (("train", "train"), ("validation", "validation"), ("generic", "generic")):
        path = getattr(data, key)
        if path is None:
            continue
        fmt = "text" if role == "generic" else data.format  # the public corpus is plain text
        try:
            sha, records = read_jsonl_records(Path(path), fmt, data.text_field)
        except FinetrailError as err:
            problems.append(f"data.{key}: {err.path}: {err.what}")
            first_field = first_field or f"data.{key}"
            continue
        registered = (workspace_root / dataset_record_path(sha)).is_file()
        texts = tuple(r.plain for r in records)
        files[role] = DatasetFile(role, Path(path), sha, texts, registered, records, fmt)

    unregistered = [d for d in files.values() if not d.registered]
    if unregistered and data.unregistered == "refuse":
        for d in unregistered:
            problems.append(
                f"data.{d.role}: {d.path} (sha256 {d.sha256}) is not registered in the workspace "
                f"(no {dataset_record_path(d.sha256)})"
            )
        first_field = first_field or f"data.{unregistered[0].role}"

    train = files.get("train")
    if train is not None and isinstance(config.privacy, PrivacyConfig):
        n = len(train.texts)
        if config.privacy.delta >= 1.0 / n:
            problems.append(
                f"privacy.delta: {config.privacy.delta:g} is not below 1/N = {1.0 / n:.3g} "
                f"(N = {n} training records); a delta that large allows releasing a whole record"
            )
            first_field = first_field or "privacy.delta"

    mixed: tuple[str, ...] = ()
    generic = files.get("generic")
    if train is not None and generic is not None and data.generic_fraction > 0:
        f = data.generic_fraction
        k = round(f / (1 - f) * len(train.texts))
        if k > len(generic.texts):
            problems.append(
                f"data.generic_fraction: {f} of the sampled set needs {k} generic records; "
                f"{generic.path} holds {len(generic.texts)}"
            )
            first_field = first_field or "data.generic_fraction"
        else:
            rng = random.Random(config.seed)
            mixed = tuple(rng.sample(generic.texts, k))

    if problems:
        why = None
        if unregistered and data.unregistered == "refuse":
            why = "data.unregistered is 'refuse': every dataset must have a provenance record"
        raise ConfigError(
            "the training run cannot start:\n  - " + "\n  - ".join(problems),
            path=source,
            field=first_field,
            why=why,
            fix="register the datasets (or set data.unregistered: flag), fix the files, or "
            "adjust the keys named",
        )
    assert train is not None
    return Datasets(
        train=train, validation=files.get("validation"), generic=generic, generic_mixed=mixed
    )


def tokenize(
    tokenizer: Any, texts: list[str] | tuple[str, ...], max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask``, padded to the longest record."""
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        padding="longest",
        return_tensors="pt",
    )
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if mask.shape[1] == 0 or int(mask.sum(1).min()) == 0:
        raise InputError("a record tokenises to no tokens", fix="remove empty records")
    return ids, mask


def truncated_records(
    tokenizer: Any, records: list[Record] | tuple[Record, ...], max_length: int
) -> tuple[int, int]:
    """(records longer than ``max_length`` tokens, the longest record's tokens), as rendered and
    tokenised for training."""
    from finetrail.training.formats import render

    over, longest = 0, 0
    for record in records:
        text, _, add_special = render(tokenizer, record)
        # the full length on purpose: verbose=False keeps transformers from warning that it is long
        n = len(tokenizer(text, add_special_tokens=add_special, verbose=False)["input_ids"])
        over += n > max_length
        longest = max(longest, n)
    return over, longest


def truncation_note(
    tokenizer: Any, records: list[Record] | tuple[Record, ...], max_length: int
) -> str | None:
    """The evidence sentence stating how many records ``data.max_length`` truncated, or None."""
    over, longest = truncated_records(tokenizer, records, max_length)
    if not over:
        return None
    return (
        f"{over} of {len(records)} record(s) exceed data.max_length {max_length} tokens (the "
        f"longest has {longest}) and were truncated to it: their later tokens are never "
        "trained on"
    )


def encode(
    tokenizer: Any, records: list[Record] | tuple[Record, ...], data: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list[str]]:
    """(``input_ids``, ``attention_mask``, the loss mask or None when the loss is on every
    token, sentences for the evidence). Plain text goes through :func:`tokenize` unchanged."""
    from finetrail.training.formats import encode_records, rendering_note

    cut = truncation_note(tokenizer, records, data.max_length)
    if all(r.format == "text" for r in records):
        ids, mask = tokenize(tokenizer, [r.text for r in records], data.max_length)
        return ids, mask, None, [cut] if cut else []
    ids, mask, loss, empty = encode_records(
        tokenizer, records, data.max_length, loss_on=data.loss_tokens
    )
    notes = [n for n in [rendering_note(tokenizer, records, data.loss_tokens), cut] if n]
    if empty:
        notes.append(
            f"{empty} record(s) keep no loss token within data.max_length {data.max_length}: "
            "they are sampled and accounted but contribute a zero gradient"
        )
    return ids, mask, (None if data.loss_tokens == "all" else loss), notes
