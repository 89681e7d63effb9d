"""Score a PII detector against finetrail's labelled evaluation set (light: stdlib only).

The set (``data/pii_eval.jsonl``, written by ``scripts/make_pii_eval_set.py``) is independent of
the demo data generator: its names, addresses, numbers and templates come from hand-written lists,
not from Faker, and many records carry hard negatives (order and tracking numbers, 16-digit
numbers that fail Luhn, ISBNs, version strings, timestamps, prices). Each record is one text and
its gold spans, with Presidio's entity names plus finetrail's ``STREET_ADDRESS``.

Matching rule, per record and entity: a detection of entity E is a true positive when it overlaps
a gold span of E by at least half the gold span's length; each gold span and each detection is
matched at most once (a maximum matching, so the result does not depend on the order in which
the detector returns its results). Other detections of E are false positives (a duplicate of a
matched detection included), unmatched gold spans are false negatives. A detector's own entity
names can be mapped onto the gold names first (``aliases={"LOCATION": "STREET_ADDRESS"}``).
Precision and recall come with Wilson score 95% intervals.

This module imports nothing heavy: a detector built on Presidio is passed in as a function.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

__all__ = [
    "Detector",
    "EntityScore",
    "LabelledText",
    "Span",
    "eval_set_digest",
    "format_table",
    "load_eval_set",
    "score",
    "wilson_interval",
]

Detector = Callable[[str], Iterable[tuple[str, int, int]]]
"""``detect(text)`` yields ``(entity, start, end)`` for each detection (``end`` exclusive)."""

_Z95 = 1.959963984540054  # the standard normal quantile for a two-sided 95% interval


@dataclass(frozen=True)
class Span:
    """One gold PII span: characters ``[start, end)`` of the text are an ``entity``."""

    start: int
    end: int
    entity: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"span [{self.start}, {self.end}) is empty or negative")
        if not self.entity:
            raise ValueError("span entity is empty")


@dataclass(frozen=True)
class LabelledText:
    """One evaluation record: its id, the text, the gold spans and its template family."""

    id: str
    text: str
    spans: tuple[Span, ...]
    source: str

    def __post_init__(self) -> None:
        for span in self.spans:
            if span.end > len(self.text):
                raise ValueError(
                    f"record {self.id}: span [{span.start}, {span.end}) is past the end of the text"
                )


@dataclass(frozen=True)
class EntityScore:
    """Counts for one entity; precision and recall are ``None`` where undefined."""

    tp: int
    fp: int
    fn: int

    def __post_init__(self) -> None:
        if min(self.tp, self.fp, self.fn) < 0:
            raise ValueError("counts must be non-negative")

    @property
    def n(self) -> int:
        """The number of gold spans (``tp + fn``)."""
        return self.tp + self.fn

    @property
    def precision(self) -> float | None:
        """``tp / (tp + fp)``; ``None`` when the detector reported nothing."""
        detected = self.tp + self.fp
        return self.tp / detected if detected else None

    @property
    def recall(self) -> float | None:
        """``tp / n``; ``None`` when there is no gold span."""
        return self.tp / self.n if self.n else None

    @property
    def precision_ci(self) -> tuple[float, float] | None:
        """Wilson 95% interval for precision; ``None`` when precision is undefined."""
        return wilson_interval(self.tp, self.tp + self.fp)

    @property
    def recall_ci(self) -> tuple[float, float] | None:
        """Wilson 95% interval for recall; ``None`` when recall is undefined."""
        return wilson_interval(self.tp, self.n)

    def to_json(self) -> dict[str, Any]:
        """Counts, rates and intervals as a JSON-ready dict."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "n": self.n,
            "precision": self.precision,
            "recall": self.recall,
            "precision_ci": list(self.precision_ci) if self.precision_ci else None,
            "recall_ci": list(self.recall_ci) if self.recall_ci else None,
        }


def wilson_interval(successes: int, trials: int, *, z: float = _Z95) -> tuple[float, float] | None:
    """The Wilson score interval for ``successes / trials``; ``None`` when ``trials == 0``."""
    if trials == 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} not in [0, {trials}]")
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1.0 - p) / trials + z2 / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _read_bytes(path: str | os.PathLike[str] | None) -> bytes:
    if path is not None:
        with open(path, "rb") as fh:
            return fh.read()
    resource = files("finetrail.governance.pii").joinpath("data").joinpath("pii_eval.jsonl")
    return resource.read_bytes()


def eval_set_digest(path: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 (hex) of the evaluation file's bytes (the packaged file by default)."""
    return hashlib.sha256(_read_bytes(path)).hexdigest()


def _parse_record(line_no: int, row: Any) -> LabelledText:
    where = f"line {line_no}"
    if not isinstance(row, dict):
        raise ValueError(f"{where}: not a JSON object")
    try:
        rid, text, source, raw_spans = row["id"], row["text"], row["source"], row["spans"]
    except KeyError as exc:
        raise ValueError(f"{where}: missing key {exc.args[0]!r}") from None
    if not all(isinstance(v, str) for v in (rid, text, source)):
        raise ValueError(f"{where}: id, text and source must be strings")
    if not isinstance(raw_spans, list):
        raise ValueError(f"{where}: spans must be a list")
    spans: list[Span] = []
    for raw in raw_spans:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: a span is not an object")
        start, end, entity = raw.get("start"), raw.get("end"), raw.get("entity")
        if not (
            isinstance(start, int)
            and isinstance(end, int)
            and not isinstance(start, bool)
            and not isinstance(end, bool)
            and isinstance(entity, str)
        ):
            raise ValueError(f"{where}: span needs integer start/end and a string entity")
        try:
            spans.append(Span(start, end, entity))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    try:
        return LabelledText(rid, text, tuple(spans), source)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def load_eval_set(path: str | os.PathLike[str] | None = None) -> list[LabelledText]:
    """The evaluation records, in file order (the packaged file by default).

    Raises :class:`ValueError` naming the line for malformed JSON, missing keys, spans outside
    the text, or duplicate ids.
    """
    records: list[LabelledText] = []
    seen: set[str] = set()
    for line_no, line in enumerate(_read_bytes(path).decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {line_no}: invalid JSON ({exc.msg})") from None
        record = _parse_record(line_no, row)
        if record.id in seen:
            raise ValueError(f"line {line_no}: duplicate id {record.id!r}")
        seen.add(record.id)
        records.append(record)
    return records


def _overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> int:
    return max(0, min(a_end, b_end) - max(a_start, b_start))


def _max_matching(edges: Sequence[Sequence[int]], n_right: int) -> int:
    """Size of a maximum bipartite matching (Kuhn's augmenting paths; inputs are small)."""
    match_right: list[int | None] = [None] * n_right

    def augment(left: int, visited: list[bool]) -> bool:
        for right in edges[left]:
            if visited[right]:
                continue
            visited[right] = True
            owner = match_right[right]
            if owner is None or augment(owner, visited):
                match_right[right] = left
                return True
        return False

    return sum(1 for left in range(len(edges)) if augment(left, [False] * n_right))


def _count(gold: Sequence[Span], found: Sequence[tuple[int, int]]) -> tuple[int, int, int]:
    """(tp, fp, fn) for one record and one entity."""
    edges = [
        [
            j
            for j, g in enumerate(gold)
            if 2 * _overlap(start, end, g.start, g.end) >= g.end - g.start
        ]
        for start, end in found
    ]
    tp = _max_matching(edges, len(gold))
    return tp, len(found) - tp, len(gold) - tp


def score(
    records: Iterable[LabelledText],
    detect: Detector,
    *,
    entities: Iterable[str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> dict[str, EntityScore]:
    """Per-entity counts of ``detect`` on ``records``, keyed by gold entity name (sorted).

    ``entities`` limits scoring to those gold names (default: every entity with a gold span in
    ``records``); detections of other entities are ignored. ``aliases`` maps the detector's
    entity names onto gold names before scoring. A detection must satisfy
    ``0 <= start < end <= len(text)``, or :class:`ValueError` is raised.
    """
    rows = list(records)
    alias = dict(aliases or {})
    wanted = (
        set(entities)
        if entities is not None
        else {span.entity for row in rows for span in row.spans}
    )
    totals = {entity: [0, 0, 0] for entity in sorted(wanted)}
    for row in rows:
        found: dict[str, list[tuple[int, int]]] = {}
        for entity, start, end in detect(row.text):
            if not (isinstance(start, int) and isinstance(end, int)):
                raise ValueError(f"record {row.id}: non-integer offsets {start!r}, {end!r}")
            if not 0 <= start < end <= len(row.text):
                raise ValueError(
                    f"record {row.id}: detection [{start}, {end}) outside text of length "
                    f"{len(row.text)}"
                )
            name = alias.get(entity, entity)
            if name in totals:
                found.setdefault(name, []).append((start, end))
        for entity, acc in totals.items():
            gold = [span for span in row.spans if span.entity == entity]
            tp, fp, fn = _count(gold, sorted(found.get(entity, [])))
            acc[0] += tp
            acc[1] += fp
            acc[2] += fn
    return {entity: EntityScore(tp, fp, fn) for entity, (tp, fp, fn) in totals.items()}


def _fmt_rate(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None or ci is None:
        return "—"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def format_table(scores_by_engine: Mapping[str, Mapping[str, EntityScore]]) -> str:
    """A Markdown table, one row per engine and entity: n, tp, fp, fn, precision, recall.

    Rates are shown with their Wilson 95% interval; "—" where undefined. Engines keep the
    mapping's order, entities are sorted.
    """
    lines = [
        "| engine | entity | n | tp | fp | fn | precision [95% CI] | recall [95% CI] |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for engine, scores in scores_by_engine.items():
        for entity in sorted(scores):
            s = scores[entity]
            lines.append(
                f"| {engine} | {entity} | {s.n} | {s.tp} | {s.fp} | {s.fn} | "
                f"{_fmt_rate(s.precision, s.precision_ci)} | {_fmt_rate(s.recall, s.recall_ci)} |"
            )
    return "\n".join(lines) + "\n"
