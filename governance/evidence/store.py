"""The one reader of a workspace's evidence: :class:`EvidenceSet`.

The gate, the reports, the probes, the bias audit, training's loader and the demo summary all
read evidence through it. Records are validated by the class the registry names for their kind;
a file that is unreadable or does not validate is kept as a :class:`LoadedRecord` with an
``error`` (the gate fails its rules closed; a report treats it as bad input), never skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from finetrail.errors import FinetrailError, InputError
from finetrail.governance.evidence import registry
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.io import parse_json_bytes, read_bytes_strict, sha256_bytes

R = TypeVar("R", bound=EvidenceRecord)


@dataclass(frozen=True)
class LoadedRecord:
    """One evidence file as read: its digest, its JSON and typed record, or why it failed."""

    kind: str
    rel: str  # workspace-relative file ("" for computed kinds)
    sha256: str | None
    data: dict[str, Any] | None
    error: str | None = None
    record: EvidenceRecord | None = None


class EvidenceSet:
    """The records of a workspace, loaded per kind on first use and validated by their class."""

    def __init__(self, root: str | Path, *, computed: Mapping[str, EvidenceRecord] | None = None):
        self.root = Path(root)
        self._computed = dict(computed or {})
        self._cache: dict[str, list[LoadedRecord]] = {}

    def records(self, kind_name: str) -> list[LoadedRecord]:
        if kind_name not in self._cache:
            self._cache[kind_name] = self._load(kind_name)
        return self._cache[kind_name]

    def _load(self, kind_name: str) -> list[LoadedRecord]:
        if registry.computed_kind(kind_name) is not None:
            rec = self._computed.get(kind_name)
            if rec is None:
                return []
            return [
                LoadedRecord(kind_name, "", rec.content_digest(), rec.to_json_dict(), record=rec)
            ]
        kind = registry.kind_by_name(kind_name)
        if kind is None:
            return []
        if kind.many:
            files = sorted(self.root.glob(kind.location), key=lambda p: _natural(p.name))
        else:
            # present when anything is there: a directory, a symlink loop or an unreadable
            # file in its place is an error record, not an absent one
            single = self.root / kind.location
            files = [single] if os.path.lexists(single) else []
        cls = registry.record_class(kind)
        out = []
        for file in files:
            rel = file.relative_to(self.root).as_posix()
            try:
                raw = read_bytes_strict(file)
            except InputError as err:
                out.append(LoadedRecord(kind_name, rel, None, None, f"unreadable: {err.what}"))
                continue
            digest = sha256_bytes(raw)
            try:
                record = cls.parse(parse_json_bytes(raw, rel), source=rel)
            except FinetrailError as err:
                out.append(LoadedRecord(kind_name, rel, digest, None, err.what))
                continue
            out.append(LoadedRecord(kind_name, rel, digest, record.to_json_dict(), record=record))
        return out

    # -- typed access ------------------------------------------------------------------------
    def one(self, kind_name: str, cls: type[R] | None = None, *, strict: bool = True) -> R | None:
        """The record of a single-record kind, typed; ``None`` when the file is absent.

        With ``strict`` (the default) a record that is unreadable or invalid raises
        :class:`~finetrail.errors.InputError` naming the file; otherwise it reads as absent.
        """
        recs = self.records(kind_name)
        if not recs:
            return None
        rec = recs[0]
        if rec.record is None:
            if strict:
                raise InputError(
                    f"invalid {kind_name} evidence: {rec.error}", path=str(self.root / rec.rel)
                )
            return None
        if cls is not None and not isinstance(rec.record, cls):
            raise TypeError(f"{kind_name} is a {type(rec.record).__name__}, not {cls.__name__}")
        return rec.record  # type: ignore[return-value]

    def many(self, kind_name: str, *, strict: bool = True) -> list[LoadedRecord]:
        """Every record of a many-record kind (``datasets``, ``gate``), in file-name order."""
        recs = self.records(kind_name)
        if strict:
            for rec in recs:
                if rec.record is None:
                    raise InputError(
                        f"invalid {kind_name} evidence: {rec.error}", path=str(self.root / rec.rel)
                    )
        return recs

    def exists(self, kind_name: str) -> bool:
        return bool(self.records(kind_name))

    def json(self, kind_name: str) -> dict[str, Any] | None:
        """A single record as JSON (validated), or ``None`` when absent or invalid."""
        rec = self.one(kind_name, strict=False)
        return rec.to_json_dict() if rec is not None else None


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
