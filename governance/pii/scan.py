"""Streaming, parallel PII scanning and the summary that goes into the evidence.

Light at import: presidio is imported by :func:`open_scanner` / :func:`scan_texts`, not here.

Texts stream in record order, in batches, to worker processes (``workers``, default 2: both
cores of a small machine); at most a few batches are in flight, so memory stays flat in the
dataset size. Each worker holds its own analyzer (forked from the parent's, so Presidio is
loaded once). Results come back in order and are folded into counts, the number of records
with PII, and masked examples (every detected span replaced by ``<ENTITY_TYPE>``).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from finetrail.governance.evidence.dataset import PiiExample, PiiSummary, ScanExecution
from finetrail.governance.pii.config import ScanConfig

if TYPE_CHECKING:
    from finetrail.governance.pii.engine import Finding, PiiEngine
    from finetrail.progress import Bar

EXAMPLE_CONTEXT = 30  # characters of masked context on each side of an example
MAX_RECORD_POSITIONS = 10  # record positions kept per entity type (for residual messages)

# presidio-analyzer imports these optional packages when they are installed (for transformer
# NER, which a no_op or plain spaCy scan never uses): about 300 MB and several seconds.
OPTIONAL_HEAVY = ("torch", "transformers")


@contextlib.contextmanager
def _blocked(modules: Sequence[str]) -> Iterator[None]:
    """Make ``import m`` raise ImportError for modules not loaded yet (sys.modules[m] = None)."""
    blocked = [m for m in modules if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for m in blocked:
            if m in sys.modules and sys.modules[m] is None:
                del sys.modules[m]


def engine_module(config: ScanConfig) -> ModuleType:
    """Import the presidio-backed engine module.

    For a scan without a spaCy model, presidio is imported with torch and transformers
    unavailable (it treats them as optional), which saves ~300 MB of memory and seconds of
    start-up per process and changes no finding: the recognisers used need neither. A spaCy
    pipeline may need torch (transformer pipelines), so then the import is left alone. When
    presidio is already loaded, nothing changes.
    """
    name = "finetrail.governance.pii.engine"
    if config.spacy_model is None and "presidio_analyzer" not in sys.modules:
        with _blocked(OPTIONAL_HEAVY):
            return importlib.import_module(name)
    return importlib.import_module(name)


# The engine of this process: set in the parent before forking, or by the spawn initializer.
_ENGINE: PiiEngine | None = None


def _engine() -> PiiEngine:
    assert _ENGINE is not None, "the scan worker has no engine"
    return _ENGINE


def _init_spawned(config: dict[str, Any], sanitize: dict[str, Any] | None) -> None:
    global _ENGINE
    cfg = ScanConfig.model_validate(config)
    mod = engine_module(cfg)
    engine = mod.build_engine(cfg)
    if sanitize is not None:
        engine = mod.with_sanitizer(engine, **sanitize)
    _ENGINE = engine


def _scan_batch(texts: list[str]) -> tuple[list[list[Finding]], int]:
    engine = _engine()
    out: list[list[Finding]] = []
    skipped = 0
    for text in texts:
        found, was_skipped = engine.findings(text)
        out.append(found)
        skipped += was_skipped
    return out, skipped


def _sanitize_batch(texts: list[str]) -> tuple[list[list[Finding]], list[str], int]:
    engine = _engine()
    found_all: list[list[Finding]] = []
    new_texts: list[str] = []
    skipped = 0
    for text in texts:
        found, new, was_skipped = engine.sanitize(text)
        found_all.append(found)
        new_texts.append(new)
        skipped += was_skipped
    return found_all, new_texts, skipped


class _Runner:
    """Ordered, bounded parallel map over batches (inline when ``workers`` is 1)."""

    def __init__(self, workers: int, spawn_args: tuple[Any, ...]) -> None:
        self.pool: Any = None
        self.window: deque[tuple[Any, Any]] = deque()
        self.limit = 2 * workers + 1
        if workers > 1:
            if "fork" in mp.get_all_start_methods():
                self.pool = mp.get_context("fork").Pool(workers)
            else:  # pragma: no cover - platforms without fork build the engine per worker
                self.pool = mp.get_context("spawn").Pool(
                    workers, initializer=_init_spawned, initargs=spawn_args
                )

    def submit(
        self, fn: Callable[[list[str]], Any], batch: list[str], meta: Any
    ) -> Iterator[tuple[Any, Any]]:
        """Queue a batch; yields (meta, result) of batches that completed, in order."""
        if self.pool is None:
            yield meta, fn(batch)
            return
        self.window.append((meta, self.pool.apply_async(fn, (batch,))))
        while len(self.window) >= self.limit:
            m, res = self.window.popleft()
            yield m, res.get()

    def drain(self) -> Iterator[tuple[Any, Any]]:
        while self.window:
            m, res = self.window.popleft()
            yield m, res.get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def _join(parts: list[str], reverse: bool) -> str:
    return "".join(reversed(parts)) if reverse else "".join(parts)


def _mask(text: str, findings: Sequence[Finding], focus: Finding) -> str:
    """A window of ``text`` around ``focus`` with every finding replaced by ``<TYPE>``."""
    spans: list[list[Any]] = []
    for ent, start, end, score in sorted(findings, key=lambda f: (f[1], -f[2])):
        if spans and start < spans[-1][1]:  # overlapping: one placeholder for the union
            last = spans[-1]
            if score > last[3]:
                last[2], last[3] = ent, score
            last[1] = max(last[1], end)
        else:
            spans.append([start, end, ent, score])
    pieces: list[tuple[str, bool]] = []
    pos = 0
    focus_piece = 0
    for start, end, ent, _ in spans:
        if start > pos:
            pieces.append((text[pos:start], False))
        if start <= focus[1] < end:
            focus_piece = len(pieces)
        pieces.append((f"<{ent}>", True))
        pos = end
    if pos < len(text):
        pieces.append((text[pos:], False))

    def take(seq: Sequence[tuple[str, bool]], from_end: bool) -> tuple[str, bool]:
        """Up to EXAMPLE_CONTEXT characters of ``seq`` (placeholders whole); truncated?"""
        out: list[str] = []
        budget = EXAMPLE_CONTEXT
        for i, (piece, is_placeholder) in enumerate(seq):
            if budget <= 0:
                return _join(out, from_end), any(p for p, _ in seq[i:])
            if is_placeholder:
                out.append(piece)
                budget -= len(piece)
                continue
            cut = piece[-budget:] if from_end else piece[:budget]
            out.append(cut)
            budget -= len(cut)
            if len(cut) < len(piece):
                return _join(out, from_end), True
        return _join(out, from_end), False

    before, cut_before = take(pieces[:focus_piece][::-1], True)
    after, cut_after = take(pieces[focus_piece + 1 :], False)
    snippet = ("…" if cut_before else "") + before + pieces[focus_piece][0] + after
    snippet += "…" if cut_after else ""
    return " ".join(snippet.split())


@dataclass
class PiiTally:
    """Folds findings (in record order) into the summary's counts and masked examples."""

    max_examples: int
    records_scanned: int = 0
    texts_scanned: int = 0
    prefilter_skipped: int = 0
    records_with_pii: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[PiiExample]] = field(default_factory=dict)
    # the first few record positions (never values) where each entity type was found
    records_by_entity: dict[str, list[int]] = field(default_factory=dict)
    _last_pii_record: int = -1

    def add(self, record: int, fld: str, text: str, findings: Sequence[Finding]) -> None:
        self.texts_scanned += 1
        if not findings:
            return
        if record != self._last_pii_record:
            self.records_with_pii += 1
            self._last_pii_record = record
        for f in findings:
            self.counts[f[0]] += 1
            where = self.records_by_entity.setdefault(f[0], [])
            if len(where) < MAX_RECORD_POSITIONS and record not in where:
                where.append(record)
            bucket = self.examples.setdefault(f[0], [])
            if len(bucket) < self.max_examples:
                bucket.append(
                    PiiExample(
                        entity_type=f[0], record=record, field=fld, masked=_mask(text, findings, f)
                    )
                )

    def summary(
        self,
        engine: PiiEngine,
        residual_for: Sequence[str] | None = None,
        execution: ScanExecution | None = None,
    ) -> PiiSummary:
        examples = tuple(e for ent in sorted(self.examples) for e in self.examples[ent])
        residual = None
        if residual_for is not None:
            residual = {ent: int(self.counts.get(ent, 0)) for ent in sorted(residual_for)}
        return PiiSummary(
            records_scanned=self.records_scanned,
            texts_scanned=self.texts_scanned,
            records_with_pii=self.records_with_pii,
            counts=dict(sorted(self.counts.items())),
            coverage=engine.coverage,
            not_covered=engine.not_covered,
            score_threshold=engine.config.score_threshold,
            masked_examples=examples,
            residual=residual,
            engine=engine.info,
            accuracy=engine.accuracy,
            execution=execution or ScanExecution(engine="local", workers=engine.config.workers),
        )


Unit = tuple[str, str]  # (field path, text)


class Scanner:
    """Streams records' texts through the engine in parallel; see :func:`open_scanner`."""

    def __init__(
        self,
        engine: PiiEngine,
        *,
        sanitize: bool = False,
        spawn_sanitize: dict[str, Any] | None = None,
    ) -> None:
        global _ENGINE
        engine.warm_up()
        _ENGINE = engine  # inherited, warm, by forked workers
        self.engine = engine
        self.config = engine.config
        self.tally = PiiTally(max_examples=self.config.max_examples_per_entity)
        self._sanitize = sanitize
        self._fn = _sanitize_batch if sanitize else _scan_batch
        self._runner = _Runner(
            self.config.workers, (self.config.model_dump(mode="json"), spawn_sanitize)
        )
        self._meta: list[tuple[int, str]] = []
        self._texts: list[str] = []
        self._record_units: list[tuple[int, int]] = []  # (record, number of units)

    def add(self, record: int, units: Sequence[Unit]) -> Iterator[tuple[int, list[str]]]:
        """Queue one record's texts; yields (record, new texts) of sanitised records done."""
        self.tally.records_scanned += 1
        self._record_units.append((record, len(units)))
        for fld, text in units:
            self._meta.append((record, fld))
            self._texts.append(text)
        if len(self._texts) >= self.config.batch_texts:
            yield from self._flush()

    def _flush(self) -> Iterator[tuple[int, list[str]]]:
        if not self._record_units:
            return
        meta = (self._meta, self._texts, self._record_units)
        batch = self._texts
        self._meta, self._texts, self._record_units = [], [], []
        for m, result in self._runner.submit(self._fn, batch, meta):
            yield from self._fold(m, result)

    def _fold(self, meta: Any, result: Any) -> Iterator[tuple[int, list[str]]]:
        metas, texts, record_units = meta
        if self._sanitize:
            found_all, new_texts, skipped = result
        else:
            found_all, skipped = result
            new_texts = texts
        self.tally.prefilter_skipped += skipped
        for (record, fld), text, found in zip(metas, texts, found_all, strict=True):
            self.tally.add(record, fld, text, found)
        pos = 0
        for record, n in record_units:
            yield record, list(new_texts[pos : pos + n])
            pos += n

    def finish(self) -> Iterator[tuple[int, list[str]]]:
        """Flush what is queued and wait for every batch."""
        yield from self._flush()
        for m, result in self._runner.drain():
            yield from self._fold(m, result)

    def map_texts(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings for each of ``texts`` (in order), through the workers; no tally."""
        if self._sanitize:
            raise TypeError("map_texts is for scanning, not sanitising")
        bs = self.config.batch_texts
        results: list[Any] = []
        for i in range(0, len(texts), bs):
            results.extend(
                r for _, r in self._runner.submit(_scan_batch, list(texts[i : i + bs]), i)
            )
        results.extend(r for _, r in self._runner.drain())
        return [found for found_all, _ in results for found in found_all]

    def close(self) -> None:
        self._runner.close()


def open_scanner(
    config: ScanConfig,
    *,
    sanitize_operator: str | None = None,
    key: bytes | None = None,
    entities: Sequence[str] | None = None,
) -> Scanner:
    """Build the engine (imports presidio) and start the workers."""
    mod = engine_module(config)
    engine = mod.build_engine(config)
    if sanitize_operator is None:
        return Scanner(engine)
    spawn = {
        "operator": sanitize_operator,
        "key": key,
        "entities": list(entities) if entities else None,
    }
    engine = mod.with_sanitizer(engine, operator=sanitize_operator, key=key, entities=entities)
    return Scanner(engine, sanitize=True, spawn_sanitize=spawn)


def scan_texts(texts: Sequence[str], *, config: ScanConfig | None = None) -> list[list[Finding]]:
    """Findings for each text, in order: the pre-filtered, parallel path on a plain list."""
    scanner = open_scanner(config or ScanConfig())
    try:
        return scanner.map_texts(texts)
    finally:
        scanner.close()


def scan_file(
    path: str | os.PathLike[str],
    *,
    config: ScanConfig | None = None,
    fmt: str = "jsonl",
    skip_bad: bool = False,
    progress: Bar | None = None,
) -> PiiSummary:
    """Scan one file on this machine (``workers`` processes): the summary ``data scan`` prints.

    ``progress`` (a :class:`finetrail.progress.Bar`) shows the bytes read on stderr."""
    from finetrail.governance.provenance.api import text_units
    from finetrail.governance.provenance.formats import DatasetReader
    from finetrail.progress import reading

    config = config or ScanConfig()
    scanner = open_scanner(config)
    reader = DatasetReader(path, fmt, skip_bad=skip_bad)
    bar = reading(progress, "pii scan", reader)
    try:
        for rec in reader:
            units = text_units(rec.value if rec.raw is None else rec.raw, config.text_fields)
            for _ in scanner.add(rec.index, units):
                pass
            bar.record(reader.bytes_read)
        for _ in scanner.finish():
            pass
    finally:
        bar.close()
        scanner.close()
    return scanner.tally.summary(scanner.engine)
