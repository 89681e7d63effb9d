"""Datasets of a training run: JSONL files read, hashed, checked against the workspace, tokenised.

A dataset is a JSONL file, one JSON object per line with a text field. Its identity is the SHA-256
of the file's bytes. It counts as *registered* when ``evidence/datasets/<sha256>.json`` exists in
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

if TYPE_CHECKING:
    import torch

__all__ = ["DatasetFile", "Datasets", "dataset_record_path", "preflight", "read_jsonl_texts"]


def dataset_record_path(sha256: str) -> str:
    """Workspace-relative path of a dataset's provenance record."""
    return dataset_location(sha256)


@dataclass(frozen=True)
class DatasetFile:
    role: str  # train | validation | generic
    path: Path
    sha256: str
    texts: tuple[str, ...]
    registered: bool

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


def read_jsonl_texts(
    path: Path, text_field: str, *, limit_errors: int = 5
) -> tuple[str, tuple[str, ...]]:
    """(sha256 of the bytes, the texts). Raises :class:`InputError` naming file, line and field."""
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
    texts: list[str] = []
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: malformed JSON ({exc.msg}, column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {n}: expected a JSON object")
            continue
        value = obj.get(text_field)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"line {n}: field '{text_field}' is missing or not a non-empty string")
            continue
        texts.append(value)
    if problems:
        more = len(problems) - limit_errors
        shown = problems[:limit_errors] + ([f"... and {more} more"] if more > 0 else [])
        raise InputError(
            "invalid dataset: " + "; ".join(shown),
            path=str(path),
            field=text_field,
            fix=f"each line must be a JSON object with a non-empty string '{text_field}'",
        )
    if not texts:
        raise InputError(
            "the dataset is empty", path=str(path), fix="a dataset needs at least one record"
        )
    return sha256_bytes(raw), tuple(texts)


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
        try:
            sha, texts = read_jsonl_texts(Path(path), data.text_field)
        except FinetrailError as err:
            problems.append(f"data.{key}: {err.path}: {err.what}")
            first_field = first_field or f"data.{key}"
            continue
        registered = (workspace_root / dataset_record_path(sha)).is_file()
        files[role] = DatasetFile(role, Path(path), sha, texts, registered)

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
