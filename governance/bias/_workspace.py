"""The bias audit of a workspace's model: load it, audit it and its base, write the evidence."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finetrail.errors import InputError
from finetrail.governance.bias._audit import BiasAuditSettings, audit_bias, scorer_from_path
from finetrail.governance.bias._scoring import chat_framing, lm_scorer
from finetrail.governance.evidence.bias import DISPARITY_METRICS, BiasAuditEvidence, BiasSubject
from finetrail.governance.evidence.registry import location
from finetrail.governance.io import sha256_file
from finetrail.governance.workspace import Workspace, default_actor, tracking_uri

BIAS_FILE = location("bias")
TRAINING_FILE = location("training")
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors")


def _training(ws: Workspace) -> dict[str, Any]:
    """The raw training evidence, when there is one (read as JSON: no training import)."""
    path = ws.path(TRAINING_FILE)
    if not path.is_file():
        return {}
    data = ws.read_json(TRAINING_FILE)
    return data if isinstance(data, dict) else {}


def _get(data: dict[str, Any], dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def weights_digest(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 of a model folder's adapter (preferred) or full weights file."""
    for name in WEIGHT_FILES:
        if (Path(path) / name).is_file():
            return sha256_file(Path(path) / name)
    return None


def _loaded_models(ws: Workspace, settings: BiasAuditSettings) -> tuple[Any, Any]:
    """Scorers for the workspace's fine-tuned model and its base, via the training loader."""
    from finetrail.governance.probes.models import trained_model_loader

    load_trained = trained_model_loader(
        fix="install finetrail[train], or pass --model PATH (and --base-model PATH), "
        "or --predictions FILE"
    )
    loaded = load_trained(ws.root)
    tokenizer = loaded.tokenizer
    verbs = list(settings.verbaliser_map().values())
    frame = chat_framing(tokenizer) if settings.prompt_format == "chat" else None
    tuned = lm_scorer(loaded.model, tokenizer, verbs, batch_size=settings.batch_size, frame=frame)
    base = lm_scorer(
        loaded.base_model, tokenizer, verbs, batch_size=settings.batch_size, frame=frame
    )
    return tuned, base


def trained_on_chat(training: dict[str, Any]) -> bool:
    """Whether the training evidence says the model learned from chat conversations."""
    datasets = training.get("datasets")
    return isinstance(datasets, list) and any(
        isinstance(d, dict) and d.get("role") == "train" and d.get("format") == "messages"
        for d in datasets
    )


def _check_sources(
    eval_path: object,
    predictions: object,
    base_predictions: object,
    model: object,
    base_model: object,
) -> None:
    conflicts = []
    if predictions is not None and (eval_path is not None or model is not None):
        conflicts.append(
            "--predictions excludes --eval and --model (the predictions are the model's output)"
        )
    if base_predictions is not None and predictions is None:
        conflicts.append("--base-predictions needs --predictions")
    if base_model is not None and model is None:
        conflicts.append("--base-model needs --model")
    if conflicts:
        raise InputError("; ".join(conflicts), field="predictions" if predictions else "model")


def audit_workspace_bias(
    *,
    workspace: str | os.PathLike[str],
    sensitive: Sequence[str],
    eval_path: str | os.PathLike[str] | None = None,
    predictions_path: str | os.PathLike[str] | None = None,
    base_predictions_path: str | os.PathLike[str] | None = None,
    model_path: str | os.PathLike[str] | None = None,
    base_model_path: str | os.PathLike[str] | None = None,
    counterfactual: bool | str | os.PathLike[str] = True,
    settings: BiasAuditSettings | None = None,
    actor: str | None = None,
    tracking_uri_arg: str | None = None,
    progress: Any = None,
) -> BiasAuditEvidence:
    """Audit the workspace's model (or given predictions / model folders) and record it.

    Without ``model_path`` or ``predictions_path`` the fine-tuned model and its base come from
    ``finetrail.training.loading.load_trained`` (which checks the adapter digest). The record is
    written to ``evidence/bias.json`` with a ``bias.audited`` ledger event.
    """
    settings = settings or BiasAuditSettings()
    _check_sources(eval_path, predictions_path, base_predictions_path, model_path, base_model_path)
    ws = Workspace.open(workspace)
    actor = default_actor(actor, owner=ws.metadata.owner)
    training = _training(ws)
    if settings.prompt_format == "auto":
        # the workspace's own model reads prompts the way it was trained; a model folder or a
        # predictions file is scored as text unless told otherwise (--prompt-format chat)
        chat = model_path is None and predictions_path is None and trained_on_chat(training)
        settings = settings.model_copy(update={"prompt_format": "chat" if chat else "text"})
    adapter = _get(training, "adapter.sha256")
    base_weights = _get(training, "base_model.weights_sha256")
    scorer = base_scorer = None
    if predictions_path is not None:
        subject = BiasSubject(
            model="predictions", adapter_sha256=adapter, base_weights_sha256=base_weights
        )
    elif model_path is not None:
        if eval_path is None:
            raise InputError("a model needs an evaluation set", field="eval")
        scorer = scorer_from_path(model_path, settings)
        if base_model_path is not None:
            base_scorer = scorer_from_path(base_model_path, settings)
            base_weights = weights_digest(base_model_path)
        subject = BiasSubject(
            model=Path(model_path).name,
            adapter_sha256=weights_digest(model_path),
            base_weights_sha256=base_weights,
        )
    else:
        if eval_path is None:
            raise InputError(
                "nothing to audit",
                field="eval",
                fix="give --eval EVAL.jsonl (or --predictions FILE)",
            )
        scorer, base_scorer = _loaded_models(ws, settings)
        subject = BiasSubject(
            model="workspace", adapter_sha256=adapter, base_weights_sha256=base_weights
        )
    record = audit_bias(
        sensitive=sensitive,
        eval_path=eval_path,
        scorer=scorer,
        base_scorer=base_scorer,
        predictions_path=predictions_path,
        base_predictions_path=base_predictions_path,
        counterfactual=counterfactual,
        settings=settings,
        subject=subject,
        progress=progress,
    )
    ws.write_record(
        BIAS_FILE,
        record,
        event="bias.audited",
        actor=actor,
        extra={"adapter_sha256": record.subject.adapter_sha256},
    )
    run_id = _get(training, "mlflow.run_id")
    if isinstance(run_id, str) and run_id:
        try:
            recorded = _get(training, "mlflow.tracking_uri")
            log_mlflow_metrics(
                ws,
                run_id,
                record,
                explicit_uri=tracking_uri_arg,
                recorded_uri=recorded if isinstance(recorded, str) else None,
            )
        except Exception as exc:  # the evidence is written; MLflow is a secondary copy
            logging.getLogger(__name__).warning(
                "bias metrics not logged to MLflow run %s: %s", run_id, exc
            )
    return record


def log_mlflow_metrics(
    ws: Workspace,
    run_id: str,
    record: BiasAuditEvidence,
    *,
    explicit_uri: str | None = None,
    recorded_uri: str | None = None,
) -> None:
    """Add the headline numbers to the training run in MLflow (numbers only, no examples)."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(ws.root, explicit=explicit_uri, recorded=recorded_uri).uri
    client = MlflowClient(tracking_uri=uri)
    metrics = {f"bias.{m}": record.disparities[m].value for m in DISPARITY_METRICS}
    metrics["bias.task_accuracy"] = record.task.accuracy
    if record.finetune_effect:
        metrics.update(
            {f"bias.finetune_effect.{m}": e.delta for m, e in record.finetune_effect.items()}
        )
    for name, value in metrics.items():
        if value is not None:
            client.log_metric(run_id, name, float(value))
