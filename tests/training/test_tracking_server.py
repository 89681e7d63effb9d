"""Integration: a real ``mlflow server`` (SQLite backend) on 127.0.0.1; training logs to its http
URI through ``tracking_uri`` (the CLI's ``--tracking-uri`` / MLFLOW_TRACKING_URI); the run is read back with ``MlflowClient``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from finetrail.governance.workspace import Workspace
from finetrail.training import train
from tests.support.tiny_training import base_config, tiny_model, write_config

pytestmark = pytest.mark.slow

STARTUP_LIMIT_S = 180  # the server migrates its SQLite schema first; slow on 2 shared cores


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed in finally
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        (tmp_path / "server-artifacts").as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"mlflow server exited ({proc.returncode}): "
                    + (tmp_path / "server.log").read_text(errors="replace")[-2000:]
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not up after {STARTUP_LIMIT_S} s")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: its own group
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def test_training_logs_to_a_tracking_server(
    mlflow_server: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = tiny_model("llama", tmp_path_factory)
    data = tmp_path / "data"
    data.mkdir()
    cfg = write_config(
        tmp_path / "train.yaml",
        base_config(
            base,
            data,
            tracking={"mlflow": True, "experiment": "team-exp", "registered_model": "team model"},
        ),
    )
    ws = Workspace.init(tmp_path / "ws", model="support-assistant", version="1", owner="alice")
    rec = train(config=cfg, workspace=ws, tracking_uri=mlflow_server)

    assert rec.mlflow.tracking_uri == mlflow_server and rec.mlflow.run_id
    assert not (ws.root / "mlflow.db").exists()  # the override replaces the workspace default
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    run = client.get_run(rec.mlflow.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "team-exp"
    assert run.data.params["config.method.rank"] == "4"
    assert run.data.tags["finetrail.adapter_sha256"] == (
        rec.adapter.sha256 if rec.adapter else None
    )
    assert len(client.get_metric_history(run.info.run_id, "epsilon_rdp")) == 6
    tags = {t.key: t.value for i in run.inputs.dataset_inputs for t in i.tags if t.key == "sha256"}
    assert tags and set(tags.values()) <= {d.sha256 for d in rec.datasets}
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"adapter", "evidence"} <= names
    version = client.get_model_version("team-model", rec.mlflow.model_version or "")
    assert version.run_id == run.info.run_id
