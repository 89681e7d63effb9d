"""Team mode's costs, measured on this machine: server start-up (PostgreSQL, moto's S3 server,
`mlflow server` on both), a round trip per logged record against that server beside a local
SQLite store, and the PII scan on Spark (`local[2]`) beside the one-machine scan of the same file.

The services are the same ones the team-mode tests start (tests/support/team.py). Ratios are
measured side by side in one run; this machine is shared, so read them, not the absolute times.

    python benchmarks/team.py            # 300 logged metrics, 2,000 records scanned
    python benchmarks/team.py --quick    # 100 metrics, 600 records
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def log_round_trips(uri: str, n: int) -> float:
    """Median seconds per `log_metric` (one REST call to a server; one commit locally)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(f"bench-{time.time_ns()}")
    run = client.create_run(exp).info.run_id
    times = []
    for i in range(n):
        t = time.perf_counter()
        client.log_metric(run, "loss", 1.0 / (i + 1), step=i)
        times.append(time.perf_counter() - t)
    with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints the run's URL on exit
        client.set_terminated(run)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    metrics, records = (100, 600) if args.quick else (300, 2000)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from tests.governance.pii.test_spark import _records
    from tests.support.team import S3_ENV, mlflow_team_server, postgres_server, s3_server

    work = Path(tempfile.mkdtemp(prefix="finetrail-team-bench-"))
    print("## Team mode (`python benchmarks/team.py" + (" --quick" if args.quick else "") + "`)\n")
    with (
        postgres_server() as (pg, pg_s),
        s3_server(work) as (s3, s3_s),
        mlflow_team_server(work, pg, s3) as (url, ml_s),
    ):
        os.environ.update(S3_ENV, MLFLOW_S3_ENDPOINT_URL=s3)
        remote = log_round_trips(url, metrics)
        local = log_round_trips(f"sqlite:///{work / 'local.db'}", metrics)
    print("| part | measured |")
    print("|---|---|")
    print(f"| PostgreSQL start (initdb + pg_ctl start + database) | {pg_s:.1f} s |")
    print(f"| moto S3 server start (+ bucket) | {s3_s:.1f} s |")
    print(f"| `mlflow server` start on PostgreSQL + S3 (schema migration) | {ml_s:.1f} s |")
    print(
        f"| one logged metric, team server (REST) | {remote * 1000:.1f} ms "
        f"(local SQLite store: {local * 1000:.1f} ms, ratio {remote / local:.2f}) |"
    )

    from finetrail.governance.pii.config import ScanConfig
    from finetrail.governance.pii.scan import scan_file
    from finetrail.governance.pii.spark import scan_file_spark, spark_session

    path = work / "tickets.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records(records, seed=3)), "utf-8")
    texts = sum(1 for _ in path.open())
    spark = spark_session("local[2]")
    scan_file_spark(path, config=ScanConfig(workers=1), spark=spark)  # warm the JVM and workers
    timings: dict[str, list[float]] = {
        "local, 1 process": [],
        "local, 2 processes": [],
        "spark": [],
    }
    for _ in range(2):
        for label, fn in (
            ("local, 1 process", lambda: scan_file(path, config=ScanConfig(workers=1))),
            ("local, 2 processes", lambda: scan_file(path, config=ScanConfig(workers=2))),
            ("spark", lambda: scan_file_spark(path, config=ScanConfig(workers=1), spark=spark)),
        ):
            t = time.perf_counter()
            fn()
            timings[label].append(time.perf_counter() - t)
    spark.stop()
    base = min(timings["local, 1 process"])
    for label, ts in timings.items():
        best = min(ts)
        print(
            f"| PII scan, {label} ({records:,} records, {texts:,} lines) | {best:.1f} s, "
            f"{records / best:,.0f} records/s ({base / best:.2f}x one local process) |"
        )
    print(
        "\nSpark runs on `local[2]` (both cores), so its figure per core is half its rate; its "
        "fixed cost (job scheduling, the driver's re-read of the file for the partition digests) "
        "weighs most on small files."
    )


if __name__ == "__main__":
    main()
