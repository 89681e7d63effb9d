"""The PII scan on a real Spark (pyspark, ``local[2]``, Java from Debian's packages): findings,
counts, coverage and masked examples identical to the one-machine scan of the same file; a task
that Spark retries is not counted twice; what differs from the file is refused."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finetrail.errors import InputError
from finetrail.governance.pii.config import ScanConfig

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("java") is None, reason="no Java runtime (.ci/run installs it)"
    ),
]
pyspark = pytest.importorskip("pyspark", reason="pyspark not installed (finetrail[spark])")


def _records(n: int, seed: int) -> list[dict[str, Any]]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.randrange(5)
        if kind == 0:
            text = f"Please email {fake.email()} about order {rng.randint(1000, 9999)}."
        elif kind == 1:
            text = f"Call {fake.name()} on {fake.phone_number()} tomorrow."
        elif kind == 2:
            text = (
                f"Card {fake.credit_card_number(card_type='visa')} was declined at {fake.city()}."
            )
        elif kind == 3:
            text = "The parcel arrived late but intact; no action needed."
        else:
            text = f"{fake.name()} and {fake.name()} share the account; see {fake.url()}."
        record: dict[str, Any] = {"id": i, "text": text}
        if rng.random() < 0.3:
            record["meta"] = {"agent": fake.first_name(), "tags": ["refund", fake.email()]}
        out.append(record)
    return out


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from finetrail.governance.pii.spark import spark_session

    # two cores; every task may fail once and be retried (local[N,F])
    session = spark_session("local[2,2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spark") / "tickets.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records(400, seed=11)), encoding="utf-8")
    return path


def _comparable(summary: Any) -> dict[str, Any]:
    data = summary.model_dump(mode="json")
    data.pop("execution")
    return data


def test_spark_scan_equals_the_local_scan(spark: Any, corpus: Path) -> None:
    from finetrail.governance.pii.scan import scan_file
    from finetrail.governance.pii.spark import scan_file_spark

    config = ScanConfig(workers=1)
    local = scan_file(corpus, config=config)
    result = scan_file_spark(corpus, config=config, spark=spark, partitions=4)
    assert local.records_with_pii > 50 and sum(local.counts.values()) > 100  # a real workload
    assert _comparable(result.summary) == _comparable(local)
    execution = result.summary.execution
    assert execution is not None and execution.engine == "spark"
    assert execution.partitions == len(result.partitions) >= 2
    assert execution.spark_version == pyspark.__version__
    assert execution.inputs_sha256 is not None and len(execution.inputs_sha256) == 64
    assert local.execution is not None and local.execution.engine == "local"
    # the examples are masked: no raw e-mail address or card number is in them
    raw = corpus.read_text()
    for ex in result.summary.masked_examples:
        assert "<" in ex.masked
        for token in ex.masked.split():
            if "@" in token:
                assert token.strip(".,;") not in raw or token.startswith("<")


def test_a_retried_task_is_counted_once(spark: Any, corpus: Path, tmp_path: Path) -> None:
    from finetrail.governance.pii.spark import scan_file_spark

    config = ScanConfig(workers=1)
    once = scan_file_spark(corpus, config=config, spark=spark, partitions=4)
    marker = tmp_path / "failed-once"
    retried = scan_file_spark(
        corpus, config=config, spark=spark, partitions=4, _fail_first_attempt=str(marker)
    )
    assert marker.exists()  # partition 0 really failed and Spark ran it again
    assert retried.summary == once.summary


def test_text_files_and_nested_fields_match(spark: Any, tmp_path: Path) -> None:
    from finetrail.governance.pii.scan import scan_file
    from finetrail.governance.pii.spark import scan_file_spark

    path = tmp_path / "notes.txt"
    lines = [r["text"] for r in _records(120, seed=5)]
    path.write_text("\n".join(lines[:60]) + "\n\n" + "\r\n".join(lines[60:]) + "\n", "utf-8")
    config = ScanConfig(workers=1)
    local = scan_file(path, config=config, fmt="text")
    result = scan_file_spark(path, config=config, fmt="text", spark=spark, partitions=3)
    assert _comparable(result.summary) == _comparable(local)
    assert local.records_scanned == 120  # the blank line is not a record, CRLF ends a line


def test_what_spark_splits_differently_is_refused(spark: Any, tmp_path: Path) -> None:
    from finetrail.governance.pii.spark import scan_file_spark

    path = tmp_path / "cr.txt"
    path.write_bytes(b"first line\rstill the first line for finetrail\nsecond\n")
    with pytest.raises(InputError, match="lone carriage return") as info:
        scan_file_spark(path, config=ScanConfig(workers=1), fmt="text", spark=spark)
    assert info.value.path == str(path)


def test_unsupported_format_and_bad_file_are_input_errors(spark: Any, tmp_path: Path) -> None:
    from finetrail.governance.pii.spark import scan_file_spark

    csv = tmp_path / "t.csv"
    csv.write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(InputError, match="not csv"):
        scan_file_spark(csv, fmt="csv", spark=spark)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{not json\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2: malformed JSON"):
        scan_file_spark(bad, spark=spark)


def test_cli_scan_and_register_with_the_spark_engine(
    spark: Any, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from finetrail.cli import main
    from finetrail.governance.workspace import Workspace

    assert main(["data", "scan", str(corpus), "--workers", "1"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(["data", "scan", str(corpus), "--workers", "1", "--engine", "spark"]) == 0
    on_spark = json.loads(capsys.readouterr().out)
    assert local.pop("execution")["engine"] == "local"
    assert on_spark.pop("execution")["engine"] == "spark"
    assert on_spark == local
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="team").root
    args = ["data", "register", str(ws), str(corpus), "--name", "tickets", "--source", "s3://b/t",
            "--license", "CC0-1.0", "--collection", "synthetic", "--legal-basis", "none needed",
            "--purpose", "tests", "--scan", "--workers", "1", "--engine", "spark", "--json"]  # fmt: skip
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["pii"]["execution"]["engine"] == "spark"
    assert record["pii"]["counts"] == local["counts"]
    no_scan = [a for a in args if a != "--scan"]
    no_scan[no_scan.index("tickets")] = "tickets-2"
    assert main(no_scan) == 2  # --engine spark without --scan
    assert "without --scan" in capsys.readouterr().err
