"""The PII scan on Apache Spark: the same engine, the same findings, the same summary.

:func:`scan_file_spark` runs finetrail's own engine (:func:`~finetrail.governance.pii.engine.
build_engine`: recognisers, offline e-mail check, name list, threshold and pre-filter) on Spark
executors, following Presidio's documented Spark pattern (build once, broadcast, map over
partitions), and folds the findings into a :class:`PiiSummary` equal to the one-machine scan's:
counts, records with PII, texts scanned, coverage and the masked examples (the first
``max_examples_per_entity`` per type in record order).

What makes the two equal, and retries harmless:

- **The same records.** Spark splits the file into lines on its executors; each partition reports
  ``(first record, records, SHA-256 of its lines)``. The driver streams the file through
  finetrail's strict reader (the one ``data register`` uses, which also refuses what a local scan
  refuses) and recomputes every partition's digest over the same record range; any difference
  (a lone CR taken as a line end, a changed file) is an error, never a summary. The digest of
  those digests is the job's ``inputs_sha256`` in the evidence.
- **No side effects.** The pipeline is pure transformations (no accumulators, no writes), so a
  partition that Spark runs twice (a retried task, speculation) is counted once: aggregation is
  over the RDD's values, not over task executions.
- **Only masked text leaves the executors.** Findings travel as (entity, record, position)
  tuples; an example's text is masked (every detected span replaced by ``<TYPE>``) on the
  executor before it is collected, as in the local scan. Raw text is never collected.

JSONL and plain-text files (one record per line) are supported; CSV and Parquet scan on one
machine. pyspark (and a Java runtime) are needed only here: ``pip install finetrail[spark]``.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetrail.errors import DependencyMissing, InputError
from finetrail.governance.evidence.dataset import PiiExample, PiiSummary, ScanExecution
from finetrail.governance.pii.config import ScanConfig

SUPPORTED_FORMATS = ("jsonl", "text")
DEFAULT_MASTER = "local[2]"

__all__ = ["SUPPORTED_FORMATS", "SparkScan", "scan_file_spark", "spark_session"]


@dataclass(frozen=True)
class SparkScan:
    summary: PiiSummary
    partitions: tuple[tuple[int, int, str], ...]  # (first record, records, sha256) per partition


def spark_session(master: str = DEFAULT_MASTER, *, app: str = "finetrail-pii") -> Any:
    """A SparkSession (the active one if any, else one on ``master``)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise DependencyMissing(
            "the Spark scan needs pyspark (and a Java runtime)",
            fix='pip install "finetrail[spark]" and install Java (e.g. default-jre-headless)',
        ) from exc
    # executors' Python workers run this interpreter (finetrail and presidio installed)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.master(master)
    if master.startswith("local"):  # a local run binds to loopback only, never an interface
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    return (
        builder.appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )


# -- executor side -----------------------------------------------------------------------------
def _accepted(lines: Iterable[str], is_json: bool) -> Iterator[tuple[str, Any]]:
    """The lines the strict reader accepts (non-blank; JSON objects for JSONL), parsed."""
    for line in lines:
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        if is_json:
            try:
                value = json.loads(line)
            except ValueError:
                continue  # the driver's strict read refuses the file (or skips it with it)
            if not isinstance(value, dict):
                continue
            yield line, value
        else:
            yield line, line


def _scan_partition(
    index: int,
    rows: Iterator[tuple[tuple[str, Any], int]],
    engine_bc: Any,
    config_json: dict[str, Any],
    fail_first_attempt: str | None,
) -> Iterator[tuple[str, Any]]:
    """One partition: ('part', (first, n, sha256, texts)) and ('finding', ...) rows."""
    from finetrail.governance.pii.scan import _mask, engine_module
    from finetrail.governance.provenance.api import text_units

    if fail_first_attempt:  # test hook: make Spark retry this task (see the tests)
        from pyspark import TaskContext

        ctx = TaskContext.get()
        if ctx is not None and ctx.partitionId() == 0 and ctx.attemptNumber() == 0:
            Path(fail_first_attempt).touch()  # the marker that the failure happened
            raise RuntimeError("finetrail test: first attempt of partition 0 fails")
    config = ScanConfig.model_validate(config_json)
    engine_module(config)  # import presidio without torch/transformers, as locally
    engine = engine_bc.value
    digest = hashlib.sha256()
    first: int | None = None
    count = texts = 0
    for (line, value), record in rows:
        first = record if first is None else first
        count += 1
        digest.update(line.encode("utf-8") + b"\n")
        for unit_pos, (fld, text) in enumerate(text_units(value, config.text_fields)):
            texts += 1
            found, _ = engine.findings(text)
            for pos, f in enumerate(found):
                yield "finding", (f[0], record, unit_pos, pos, fld, _mask(text, found, f))
    yield "part", (index, first, count, digest.hexdigest(), texts)


def _smallest(n: int) -> tuple[Any, Any, Any]:
    def create(x: Any) -> list[Any]:
        return [x]

    def merge_value(acc: list[Any], x: Any) -> list[Any]:
        return heapq.nsmallest(n, [*acc, x])

    def merge_combiners(a: list[Any], b: list[Any]) -> list[Any]:
        return heapq.nsmallest(n, a + b)

    return create, merge_value, merge_combiners


# -- driver side -------------------------------------------------------------------------------
def _driver_partitions(
    path: Path, fmt: str, parts: list[tuple[int, int, str]], skip_bad: bool
) -> tuple[int, list[str]]:
    """Stream the file with the strict reader; (records, the digest of each partition's range)."""
    from finetrail.governance.provenance.formats import DatasetReader

    bounds = iter(parts)
    current = next(bounds, None)
    out: list[str] = []
    digest = hashlib.sha256()
    taken = 0
    records = 0
    for rec in DatasetReader(path, fmt, skip_bad=skip_bad):
        records += 1
        while current is not None and current[1] == 0:
            out.append(hashlib.sha256().hexdigest())
            current = next(bounds, None)
        if current is None:
            continue  # more records than Spark saw: the counts differ below
        digest.update(rec.canonical + b"\n")
        taken += 1
        if taken == current[1]:
            out.append(digest.hexdigest())
            digest, taken = hashlib.sha256(), 0
            current = next(bounds, None)
    while current is not None and current[1] == 0:
        out.append(hashlib.sha256().hexdigest())
        current = next(bounds, None)
    return records, out


def scan_file_spark(
    path: str | os.PathLike[str],
    *,
    config: ScanConfig | None = None,
    fmt: str = "jsonl",
    spark: Any = None,
    master: str = DEFAULT_MASTER,
    partitions: int | None = None,
    skip_bad: bool = False,
    _fail_first_attempt: str | None = None,
) -> SparkScan:
    """Scan ``path`` for PII on Spark; the summary equals :func:`scan_file`'s on one machine."""
    config = config or ScanConfig()
    path = Path(path)
    if fmt not in SUPPORTED_FORMATS:
        raise InputError(
            f"the Spark scan reads {', '.join(SUPPORTED_FORMATS)} files, not {fmt}",
            path=str(path),
            field="format",
            fix="scan CSV and Parquet files on one machine (without --engine spark)",
        )
    # the strict read first: what a local scan refuses, the Spark scan refuses too
    from finetrail.governance.provenance.formats import DatasetReader

    for _ in DatasetReader(path, fmt, skip_bad=skip_bad):
        pass
    from finetrail.governance.pii.scan import engine_module

    mod = engine_module(config)
    engine = mod.build_engine(config)
    engine.warm_up()
    session = spark or spark_session(master)
    sc = session.sparkContext
    engine_bc = sc.broadcast(engine)
    config_json = config.model_dump(mode="json")
    is_json = fmt == "jsonl"
    lines = sc.textFile(str(path.resolve()), minPartitions=partitions or sc.defaultParallelism)
    accepted = lines.mapPartitions(lambda it: _accepted(it, is_json)).zipWithIndex()
    fail = _fail_first_attempt
    rows = accepted.mapPartitionsWithIndex(
        lambda i, it: _scan_partition(i, it, engine_bc, config_json, fail)
    ).cache()
    try:
        part_rows = sorted(v for k, v in rows.filter(lambda r: r[0] == "part").collect())
        findings = rows.filter(lambda r: r[0] == "finding").map(lambda r: r[1])
        counts = dict(findings.map(lambda f: (f[0], 1)).reduceByKey(lambda a, b: a + b).collect())
        with_pii = findings.map(lambda f: f[1]).distinct().count()
        n = config.max_examples_per_entity
        examples: dict[str, list[Any]] = {}
        if n > 0:
            create, merge_value, merge_combiners = _smallest(n)
            examples = dict(
                findings.map(lambda f: (f[0], (f[1], f[2], f[3], f[4], f[5])))
                .combineByKey(create, merge_value, merge_combiners)
                .collect()
            )
    finally:
        rows.unpersist()
        engine_bc.unpersist()
    parts = [
        (first if first is not None else 0, count, sha) for _, first, count, sha, _ in part_rows
    ]
    spark_records = sum(c for _, c, _ in parts)
    texts = sum(t for *_, t in part_rows)
    records, driver_digests = _driver_partitions(path, fmt, parts, skip_bad)
    spark_digests = [sha for _, _, sha in parts]
    if records != spark_records or driver_digests != spark_digests:
        raise InputError(
            f"Spark read {spark_records} records, the file has {records}, or their bytes differ "
            "(a lone carriage return is a line end to Spark but not to finetrail)",
            path=str(path),
            fix="normalise line ends to LF, or scan on one machine",
        )
    job = hashlib.sha256(
        json.dumps([[f, c, s] for f, c, s in parts], separators=(",", ":")).encode()
    ).hexdigest()
    masked = tuple(
        PiiExample(entity_type=ent, record=rec, field=fld, masked=text)
        for ent in sorted(examples)
        for rec, _, _, fld, text in sorted(examples[ent])
    )
    summary = PiiSummary(
        records_scanned=records,
        texts_scanned=texts,
        records_with_pii=with_pii,
        counts=dict(sorted(counts.items())),
        coverage=engine.coverage,
        not_covered=engine.not_covered,
        score_threshold=engine.config.score_threshold,
        masked_examples=masked,
        engine=engine.info,
        accuracy=engine.accuracy,
        execution=ScanExecution(
            engine="spark",
            master=sc.master,
            spark_version=sc.version,
            partitions=len(parts),
            inputs_sha256=job,
        ),
    )
    return SparkScan(summary=summary, partitions=tuple(parts))
