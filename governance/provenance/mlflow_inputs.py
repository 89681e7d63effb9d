"""Log registered datasets as MLflow dataset inputs of a run (mlflow imported lazily).

MLflow keeps a short digest per dataset input; finetrail puts the full SHA-256 (and the Merkle
root) in the input's tags, so a run in MLflow names exactly the bytes it was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from finetrail.errors import InputError
from finetrail.governance.evidence.dataset import DatasetRecord

TAG_SHA256 = "finetrail.dataset.sha256"
TAG_MERKLE_ROOT = "finetrail.dataset.merkle_root"
TAG_LICENSE = "finetrail.dataset.license"
TAG_CONTEXT = "mlflow.data.context"  # MLflow's own key for the input's role
SOURCE_TYPE = "finetrail"
_COLSPEC_TYPES = {"string": "string", "integer": "long", "number": "double", "boolean": "boolean"}


def _schema(record: DatasetRecord) -> str | None:
    cols = []
    for name, info in record.fields.items():
        types = [t for t in info.types if t != "null"]
        if len(types) == 1 and types[0] in _COLSPEC_TYPES:
            cols.append(
                {
                    "type": _COLSPEC_TYPES[types[0]],
                    "name": name,
                    "required": info.present == record.records and "null" not in info.types,
                }
            )
    return json.dumps({"mlflow_colspec": cols}) if cols else None


def dataset_input(record: DatasetRecord, *, context: str = "training") -> Any:
    """The MLflow ``DatasetInput`` entity for one registered dataset."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(
        name=record.name,
        digest=record.sha256[:16],
        source_type=SOURCE_TYPE,
        source=json.dumps({"uri": record.source, "filename": record.filename}),
        schema=_schema(record),
        profile=json.dumps(
            {
                "records": record.records,
                "size_bytes": record.size_bytes,
                "tokens_estimate": record.tokens.count,
                "format": record.format,
            }
        ),
    )
    tags = [
        InputTag(key=TAG_CONTEXT, value=context),
        InputTag(key=TAG_SHA256, value=record.sha256),
        InputTag(key=TAG_MERKLE_ROOT, value=record.merkle_root),
        InputTag(key=TAG_LICENSE, value=record.license),
    ]
    return DatasetInput(dataset=dataset, tags=tags)


def log_datasets_to_mlflow(
    records: Sequence[DatasetRecord],
    *,
    run_id: str | None = None,
    context: str = "training",
) -> str:
    """Log ``records`` as dataset inputs of ``run_id`` (default: the active run); returns the run id.

    Uses the current tracking URI (``mlflow.set_tracking_uri`` / ``MLFLOW_TRACKING_URI``).
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    if run_id is None:
        run = mlflow.active_run()
        if run is None:
            raise InputError(
                "no MLflow run to log the datasets to",
                field="run_id",
                fix="pass run_id=..., or call inside `with mlflow.start_run():`",
            )
        run_id = str(run.info.run_id)
    if not records:
        return run_id
    MlflowClient().log_inputs(run_id, datasets=[dataset_input(r, context=context) for r in records])
    return run_id
