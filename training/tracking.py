"""MLflow tracking of a training run (``import mlflow`` costs seconds: imported lazily).

Default backend: ``sqlite:///<workspace>/mlflow.db`` with artifacts in ``<workspace>/mlflow-artifacts``
(MLflow 3's file store refuses to run); ``MLFLOW_TRACKING_URI`` overrides it for a team server.

Logged: the config as params; per-step ``train_loss`` and ``epsilon_rdp``; ``epsilon`` (PRV) at the
accounting checkpoints; ``val_loss``; each dataset as an input whose ``sha256`` tag holds the full
digest (MLflow's own digest column holds at most 36 characters); the adapter; the evidence JSON;
and a version of the registered model. No dataset content is logged, only its source and digest.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from finetrail.governance.evidence.registry import location
from finetrail.governance.evidence.training import EpsilonPoint, MlflowRecord
from finetrail.governance.workspace import tracking_uri as resolve_tracking_uri
from finetrail.training.data import Datasets

__all__ = ["MlflowTracker"]

FLUSH_EVERY = 50


def redact(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", uri)


def _flatten(data: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix.rstrip(".")] = str(data)[:6000]
    return out


def _model_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "finetrail-model"


class MlflowTracker:
    def __init__(
        self,
        *,
        workspace_root: Path,
        experiment: str,
        registered_model: str,
        tracking_uri: str | None = None,
    ) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow
        from mlflow import MlflowClient

        self.mlflow = mlflow
        resolved = resolve_tracking_uri(workspace_root, explicit=tracking_uri)
        self.uri, default = resolved.uri, resolved.is_default
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.experiment_id = self._experiment(
            experiment,
            (workspace_root.resolve() / "mlflow-artifacts").as_uri() if default else None,
        )
        self.model_name = _model_name(registered_model)
        self.run_id: str | None = None
        self.model_version: str | None = None
        self._buffer: list[Any] = []

    # -- run lifecycle ---------------------------------------------------------------------
    def start(self, *, params: dict[str, Any], datasets: Datasets, tags: dict[str, str]) -> str:
        run = self.client.create_run(
            self.experiment_id, tags={"mlflow.runName": "finetrail-train", **tags}
        )
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        flat = _flatten(params)
        items = [Param(k, v) for k, v in sorted(flat.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        self._log_inputs(datasets)
        return self.run_id

    def _log_inputs(self, datasets: Datasets) -> None:
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        source_cls = _local_source()
        inputs = []
        for d in datasets.all():
            source = source_cls(Path(d.path).resolve().as_uri())
            ds = MetaDataset(source=source, name=Path(d.path).name, digest=d.sha256[:36])  # type: ignore[abstract]
            tags = [
                InputTag("mlflow.data.context", d.role),
                InputTag("sha256", d.sha256),
                InputTag("records", str(len(d.texts))),
                InputTag("registered", str(d.registered).lower()),
            ]
            inputs.append(DatasetInput(ds._to_mlflow_entity(), tags))
        assert self.run_id is not None
        # Two runs starting at once against one server, logging a dataset with the same name and
        # digest, race in the server's check-then-insert of the dataset row (the loser gets a
        # unique-constraint error). Logging again then finds the winner's row and only links it.
        for attempt in range(4):
            try:
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except self.mlflow.exceptions.MlflowException as exc:
                text = str(exc)
                if attempt == 3 or not ("UniqueViolation" in text or "UNIQUE constraint" in text):
                    raise
                time.sleep(0.2 * (attempt + 1))

    def metric(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        if value != value:  # NaN (an empty Poisson batch has no loss)
            return
        self._buffer.append(Metric(key, float(value), int(time.time() * 1000), step))
        if len(self._buffer) >= FLUSH_EVERY:
            self.flush()

    def _experiment(self, name: str, location: str | None) -> str:
        """The experiment's id, created if missing. Two runs starting at once against one
        server both see it missing; the loser of the create race reads the winner's."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except self.mlflow.exceptions.MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
            exp = self.client.get_experiment_by_name(name)
            if exp is None:  # pragma: no cover - created and deleted in between
                raise
            return str(exp.experiment_id)

    def flush(self) -> None:
        if self._buffer and self.run_id is not None:
            for i in range(0, len(self._buffer), 1000):
                self.client.log_batch(self.run_id, metrics=self._buffer[i : i + 1000])
            self._buffer = []

    def epsilon_curve(self, points: tuple[EpsilonPoint, ...]) -> None:
        for p in points:
            self.metric("epsilon", p.epsilon, p.step)

    def log_adapter(self, folder: Path, *, sha256: str) -> None:
        assert self.run_id is not None
        self.client.log_artifacts(self.run_id, str(folder), "adapter")
        try:
            self.client.create_registered_model(self.model_name)
        except self.mlflow.exceptions.MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        run = self.client.get_run(self.run_id)
        mv = self.client.create_model_version(
            self.model_name,
            source=f"{run.info.artifact_uri}/adapter",
            run_id=self.run_id,
            tags={"sha256": sha256},
        )
        self.model_version = str(mv.version)
        self.client.set_tag(self.run_id, "finetrail.adapter_sha256", sha256)

    def log_evidence(self, data: bytes) -> None:
        assert self.run_id is not None
        self.client.log_text(self.run_id, data.decode("utf-8"), location("training"))

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id is None:
            return
        try:
            self.flush()
        finally:
            self.client.set_terminated(self.run_id, status=status)

    def record(self) -> MlflowRecord:
        return MlflowRecord(
            run_id=self.run_id,
            experiment_id=self.experiment_id,
            tracking_uri=redact(self.uri),
            registered_model=self.model_name,
            model_version=self.model_version,
        )


def _local_source() -> Any:
    from mlflow.data.dataset_source_registry import get_registered_sources

    for cls in get_registered_sources():
        if getattr(cls, "__name__", "") == "LocalArtifactDatasetSource":
            return cls
    raise RuntimeError("MLflow has no LocalArtifactDatasetSource registered")  # pragma: no cover
