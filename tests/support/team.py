"""Real team services on 127.0.0.1 for the team-mode tests: a throwaway PostgreSQL cluster from
Debian's packages, moto's S3-compatible server, and ``mlflow server`` on both.

Nothing here is a stub: PostgreSQL is the distribution's server binary (``initdb`` + ``pg_ctl``,
run as the ``postgres`` user when the tests run as root, as CI does), the S3 store is moto's
standalone server (``moto.server``, the HTTP API boto3 talks to), and MLflow is its own server
process with a ``postgresql://`` backend store and an ``s3://`` artifact destination, serving
artifacts through its proxy. Each is started on a free loopback port and stopped (process group)
at the end. `.ci/run` installs PostgreSQL; :func:`postgres_bindir` finds it.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STARTUP_LIMIT_S = 180  # migrations on 2 shared cores
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "finetrail-test",
    "AWS_SECRET_ACCESS_KEY": "finetrail-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
BUCKET = "finetrail-artifacts"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_bindir() -> Path | None:
    """The folder holding Debian's ``initdb`` and ``pg_ctl`` (newest version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parts[4])
    except (IndexError, ValueError):
        return 0


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root, so drop to the package's user
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited ({proc.returncode}): " + log.read_text(errors="replace")[-3000:]
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what} not up after {STARTUP_LIMIT_S} s: {log.read_text()[-2000:]}"
            )
        time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextmanager
def postgres_server() -> Iterator[tuple[str, float]]:
    """A fresh PostgreSQL cluster with a database ``mlflow``: (its URL, seconds to start)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    start = time.perf_counter()
    # under /tmp, not pytest's 0700 tmp_path: the postgres user must reach it
    root = Path(tempfile.mkdtemp(prefix="finetrail-pg-"))
    os.chmod(root, 0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    port = free_port()
    log = root / "server.log"
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-w",
                    "-o",
                    f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE mlflow")
        yield f"postgresql://postgres@127.0.0.1:{port}/mlflow", time.perf_counter() - start
    finally:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def s3_server(workdir: Path) -> Iterator[tuple[str, float]]:
    """moto's S3-compatible server with the bucket :data:`BUCKET`: (endpoint URL, seconds)."""
    start = time.perf_counter()
    port = free_port()
    log = workdir / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **S3_ENV),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/moto-api/", proc, log, "moto server")
        import boto3

        boto3.client("s3", endpoint_url=url, **_boto_credentials()).create_bucket(Bucket=BUCKET)
        yield url, time.perf_counter() - start
    finally:
        _stop(proc)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_DEFAULT_REGION"],
    }


def s3_objects(endpoint: str, prefix: str = "") -> dict[str, bytes]:
    """Every object under ``prefix`` in :data:`BUCKET`, read back through the S3 API."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
    return out


@contextmanager
def mlflow_team_server(workdir: Path, backend: str, s3: str) -> Iterator[tuple[str, float]]:
    """``mlflow server`` on PostgreSQL and S3 (proxied artifacts): (tracking URL, seconds)."""
    start = time.perf_counter()
    port = free_port()
    log = workdir / "mlflow.log"
    env = dict(os.environ, MLFLOW_S3_ENDPOINT_URL=s3, MLFLOW_DISABLE_TELEMETRY="true", **S3_ENV)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                f"s3://{BUCKET}/mlflow",
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/health", proc, log, "mlflow server")
        yield url, time.perf_counter() - start
    finally:
        _stop(proc)


def rest(url: str, path: str, **params: str) -> dict[str, object]:
    """GET an MLflow REST endpoint (``/api/2.0/mlflow/...``) and decode its JSON."""
    import json
    import urllib.parse

    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/{path}?{query}", timeout=30) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data
