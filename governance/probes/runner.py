"""Running probes: on models in memory (:func:`run_probes`) or on a trained workspace
(:func:`probe_workspace`, which loads the models lazily, writes the evidence and logs MLflow
metrics when the training run has an MLflow run id)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetrail.errors import InputError, IntegrityError
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.probes import ProbeBaseModel, ProbeSubject
from finetrail.governance.evidence.registry import location, probe_location
from finetrail.governance.io import read_json_strict, sha256_bytes, sha256_file
from finetrail.governance.probes.canaries import (
    CANARIES_ARTIFACT,
    COMMIT_EVENT,
    DATA_FORMATS,
    CanarySet,
    detect_format,
    load_canaries,
    read_chat_jsonl,
    read_jsonl,
    record_texts,
)
from finetrail.governance.probes.context import DPClaim, ProbeConfig, ProbeContext, Progress
from finetrail.governance.probes.extraction_scanner import PiiScanner
from finetrail.governance.probes.models import ProbeModels, from_loaded, trained_model_loader
from finetrail.governance.probes.registry import select_probes
from finetrail.governance.probes.secret_space import PLAIN, CanaryFraming
from finetrail.governance.workspace import Workspace, default_actor, tracking_uri

TRAINING_EVIDENCE = location("training")


@dataclass
class ProbeRun:
    records: dict[str, EvidenceRecord] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def run_probes(ctx: ProbeContext, *, only: str | Sequence[str] | None = None) -> ProbeRun:
    """Run the selected probes. A probe named in ``only`` that cannot run is an error; without
    ``only`` such probes are skipped and listed with the reason."""
    run = ProbeRun()
    probes = select_probes(list(only) if only is not None and not isinstance(only, str) else only)
    for probe in probes:
        reason = probe.missing(ctx)
        if reason is not None:
            if only is not None:
                raise InputError(f"cannot run probe '{probe.cli_name}': {reason}", field="--only")
            run.skipped[probe.name] = reason
            continue
        t0 = time.perf_counter()
        run.records[probe.name] = probe.run(ctx)
        run.seconds[probe.name] = round(time.perf_counter() - t0, 3)
    return run


def write_evidence(ws: Workspace, run: ProbeRun, *, actor: str) -> list[str]:
    """Write each record to ``evidence/probes/<name>.json`` (ledger event ``probes.<name>``)."""
    written = []
    for name, record in run.records.items():
        subject = getattr(record, "subject", None)
        ws.write_record(
            probe_location(name),
            record,
            event=f"probes.{name}",
            actor=actor,
            extra={"adapter_sha256": getattr(subject, "adapter_sha256", None)},
        )
        written.append(probe_location(name))
    return written


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _training(ws: Workspace) -> dict[str, Any]:
    path = ws.path(TRAINING_EVIDENCE)
    if not path.exists():
        raise InputError(
            "no training evidence in the workspace",
            path=str(path),
            fix="train first (`finetrail train`), then probe",
        )
    data = read_json_strict(path)
    if not isinstance(data, dict):
        raise InputError("training evidence is not a JSON object", path=str(path))
    if data.get("completed") is False:
        raise InputError("the training run did not complete", path=str(path), field="completed")
    return data


def _check_commit_order(ws: Workspace) -> None:
    """Canaries must have been committed before the training evidence was first written."""
    commit = train = None
    for e in ws.ledger.entries():
        if e.kind == COMMIT_EVENT and commit is None:
            commit = e.seq
        if e.payload.get("path") == TRAINING_EVIDENCE and train is None:
            train = e.seq
    if commit is None or (train is not None and commit > train):
        raise IntegrityError(
            "the canary set was not committed to the ledger before training",
            path=str(ws.path(CANARIES_ARTIFACT)),
            why="an audit is only valid with canaries fixed before the model saw the data",
            fix="plant canaries with `finetrail canaries plant` before training",
        )


def _texts(path: str | os.PathLike[str], text_field: str) -> list[str]:
    return [str(r[text_field]) for r in read_jsonl(path, text_field=text_field)]


def chat_texts(tokenizer: Any, path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """(each conversation rendered as training rendered it, the texts lineage digests)."""
    from finetrail.training.formats import parse_record, render

    raw = read_chat_jsonl(path)
    rendered = []
    for obj in raw:
        record = parse_record(obj, "messages", "text")
        assert not isinstance(record, str)  # read_chat_jsonl refused those
        rendered.append(render(tokenizer, record)[0])
    return rendered, record_texts(raw, "messages", "text")


def chat_framing(tokenizer: Any, user_turn: str | None) -> CanaryFraming:
    """The framing training gave a chat canary: its conversation (``user_turn``, then the canary
    as the assistant's reply) rendered by training's own code up to the reply, and after it."""
    from finetrail.training.formats import Record, render, rendering_note

    marker = "\x00canary\x00"
    record = Record("messages", messages=(("user", user_turn or ""), ("assistant", marker)))
    full, spans, special = render(tokenizer, record)
    start = spans[0][0]
    if full[start : start + len(marker)] != marker:  # pragma: no cover - a rewriting template
        raise InputError(
            "the chat template does not write the assistant's reply verbatim, so the canaries' "
            "training context cannot be rebuilt",
            field="data.format",
        )
    how = (rendering_note(tokenizer, [record], "completion") or "").split("; loss")[0]
    return CanaryFraming(
        before=full[:start] if user_turn is not None else "",
        special=special,
        after=full[start + len(marker) :] if user_turn is not None else "",
        rendering=how
        + (
            "; canaries scored in their conversation's framing (the recorded user turn, then "
            "the secret in the assistant's reply)"
            if user_turn is not None
            else ""
        ),
    )


def _data_format(
    canaries: CanarySet | None,
    given: str | None,
    path: Path | None,
    text_field: str,
    trained: Any,
) -> str:
    if given is not None and given != "auto":
        if given not in DATA_FORMATS:
            raise InputError(
                f"unknown data format {given!r}", field="--data-format", fix="auto, text or chat"
            )
        return DATA_FORMATS[given]
    if canaries is not None:
        return canaries.data_format
    if trained in ("text", "messages"):
        return str(trained)
    return detect_format(path, text_field=text_field) if path is not None else "text"


def _check_canaries_fit(ctx: ProbeContext, max_length: Any) -> None:
    """A canary whose secret lies beyond training's ``data.max_length`` was never trained on:
    refuse rather than report its exposure."""
    if ctx.canaries is None or not isinstance(max_length, int):
        return
    from finetrail.governance.probes.formats import format_by_name
    from finetrail.governance.probes.secret_space import plan_for

    for c in {c.format: c for c in ctx.canaries.canaries}.values():
        plan = plan_for(ctx.models.tok, format_by_name(c.format), [c.secret], framing=ctx.framing)
        context, secret = plan.pair(ctx.models.tok, c.secret)
        if len(context) + len(secret) > max_length:
            raise InputError(
                f"a {c.format} canary's secret ends at token {len(context) + len(secret)}, "
                f"beyond the training's data.max_length {max_length}: it was truncated away and "
                "never trained on",
                path=str(ctx.canaries.lineage.output.path) if ctx.canaries.lineage else None,
                field="data.max_length",
                fix="train with a larger data.max_length, or plant into data with shorter "
                "user turns",
            )


def _train_path(ws: Workspace, canaries: CanarySet | None, given: str | None) -> Path | None:
    lineage = canaries.lineage if canaries is not None else None
    if given is None and lineage is None:
        return None
    path = Path(given) if given is not None else Path(lineage.output.path)  # type: ignore[union-attr]
    if given is None and not path.exists() and not path.is_absolute():
        path = ws.root / path
    if lineage is not None and path.exists() and sha256_file(path) != lineage.output.sha256:
        raise InputError(
            "the training data differs from the augmented set committed with the canaries",
            path=str(path),
            field="lineage.output.sha256",
            fix="probe with the exact file training used (the output of `finetrail canaries plant`)",
        )
    if not path.exists():
        raise InputError("training data not found", path=str(path), fix="pass --train-data PATH")
    return path


def probe_workspace(
    root: str | os.PathLike[str],
    *,
    only: str | Sequence[str] | None = None,
    config: ProbeConfig | None = None,
    train_data: str | None = None,
    heldout_data: str | None = None,
    text_field: str | None = None,
    actor: str | None = None,
    progress: Progress | None = None,
    scanner: PiiScanner | None = None,
    loader: Callable[..., Any] | None = None,
    tracking_uri_arg: str | None = None,
    base_model: str | os.PathLike[str] | None = None,
    allow_base_mismatch: bool = False,
    data_format: str | None = None,
) -> ProbeRun:
    """Probe a trained workspace: load models, run the probes, write evidence, log metrics.

    ``base_model``: the base model's folder (default: the one the training evidence names); one
    whose digests differ from the evidence is refused unless ``allow_base_mismatch``. Every
    record states the base used (``subject.base_model``). ``data_format`` (``auto``, ``text``,
    ``chat``; default: the canary set's, else detected from the data): chat conversations are
    rendered with the template training used, and chat canaries scored in that framing; the
    records state the rendering (``subject.rendering``)."""
    ws = Workspace.open(root)
    actor = default_actor(actor, owner=ws.metadata.owner)
    training = _training(ws)
    adapter = _get(training, "adapter.sha256")
    if not isinstance(adapter, str):
        raise InputError(
            "training evidence names no adapter digest",
            path=str(ws.path(TRAINING_EVIDENCE)),
            field="adapter.sha256",
        )
    canaries = load_canaries(ws)
    if canaries is not None:
        _check_commit_order(ws)
    field_name = text_field or (
        canaries.lineage.text_field if canaries and canaries.lineage else "text"
    )
    train_path = _train_path(ws, canaries, train_data)
    trained_format = _get(training, "config.data.format")
    fmt = _data_format(canaries, data_format, train_path, field_name, trained_format)
    if canaries is not None and fmt != canaries.data_format:
        raise InputError(
            f"the canary set was planted in {canaries.data_format} data, not {fmt}",
            path=str(ws.path(CANARIES_ARTIFACT)),
            field="--data-format",
            fix="probe with the data format the canaries were planted in",
        )
    if canaries is not None and trained_format == "text" and fmt == "messages":
        raise InputError(
            "the canaries were planted in chat data but training read plain text",
            path=str(ws.path(TRAINING_EVIDENCE)),
            field="config.data.format",
            fix="train the chat data with data.format: messages",
        )
    subject = ProbeSubject(
        adapter_sha256=adapter,
        base_weights_sha256=_get(training, "base_model.weights_sha256"),
        training_evidence_sha256=sha256_file(ws.path(TRAINING_EVIDENCE)),
        canaries_sha256=sha256_bytes(ws.path(CANARIES_ARTIFACT).read_bytes()) if canaries else None,
    )
    claim = None
    if _get(training, "dp.enabled"):
        claim = DPClaim(
            epsilon=_get(training, "dp.epsilon"),
            delta=_get(training, "dp.delta"),
            accountant=_get(training, "dp.accountant"),
        )
    if loader is None:
        loader = trained_model_loader()
    kwargs: dict[str, Any] = {}
    if base_model is not None:
        kwargs["base_model_path"] = base_model
    if allow_base_mismatch:
        kwargs["allow_base_mismatch"] = True
    loaded = loader(ws.root, **kwargs)
    models: ProbeModels = from_loaded(loaded)
    base_path = getattr(loaded, "base_path", None)
    if base_path is not None:
        mismatches = tuple(getattr(loaded, "base_mismatches", ()))
        subject = subject.model_copy(
            update={
                "base_model": ProbeBaseModel(
                    name=_get(training, "base_model.name"),
                    path=str(base_path),
                    source=getattr(loaded, "base_source", "training_evidence"),
                    matches_training=not mismatches,
                    mismatches=mismatches,
                )
            }
        )
    framing = PLAIN
    heldout_lineage = None
    if fmt == "messages":
        framing = chat_framing(models.tokenizer, canaries.chat_user_turn if canaries else None)
        subject = subject.model_copy(update={"rendering": framing.rendering})
        train_texts = chat_texts(models.tokenizer, train_path)[0] if train_path else None
        heldout_texts, heldout_lineage = (
            chat_texts(models.tokenizer, heldout_data) if heldout_data else (None, None)
        )
    else:
        train_texts = _texts(train_path, field_name) if train_path else None
        heldout_texts = _texts(heldout_data, field_name) if heldout_data else None
    ctx = ProbeContext(
        models=models,
        subject=subject,
        canaries=canaries,
        train_texts=train_texts,
        heldout_texts=heldout_texts,
        claim=claim,
        config=config or ProbeConfig(),
        scanner=scanner,
        framing=framing,
        heldout_lineage_texts=heldout_lineage,
    )
    if progress is not None:
        ctx.progress = progress
    _check_canaries_fit(ctx, _get(training, "config.data.max_length"))
    run = run_probes(ctx, only=only)
    write_evidence(ws, run, actor=actor)
    run_id = _get(training, "mlflow.run_id")
    if isinstance(run_id, str) and run.records:
        recorded = _get(training, "mlflow.tracking_uri")
        warning = log_mlflow(
            ws,
            run_id,
            run,
            explicit_uri=tracking_uri_arg,
            recorded_uri=recorded if isinstance(recorded, str) else None,
        )
        if warning:
            run.warnings.append(warning)
    return run


METRICS: tuple[tuple[str, str], ...] = (
    ("exposure", "max_bits"),
    ("extraction", "memorized_identifiers"),
    ("extraction", "memorized_rate"),
    ("membership", "max_auc"),
    ("dp_audit", "empirical_epsilon_lower_bound"),
)


def log_mlflow(
    ws: Workspace,
    run_id: str,
    run: ProbeRun,
    *,
    explicit_uri: str | None = None,
    recorded_uri: str | None = None,
) -> str | None:
    """Log headline probe metrics to the training run; returns a warning instead of failing."""
    try:
        import mlflow
    except ImportError:
        return "mlflow is not installed; probe metrics not logged"
    uri = tracking_uri(ws.root, explicit=explicit_uri, recorded=recorded_uri).uri
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        for probe, key in METRICS:
            record = run.records.get(probe)
            if record is not None and getattr(record, key, None) is not None:
                client.log_metric(run_id, f"probes.{probe}.{key}", float(getattr(record, key)))
    except Exception as exc:  # MLflow raises many kinds; the evidence is already written
        return f"probe metrics not logged to MLflow run {run_id}: {exc}"
    return None
