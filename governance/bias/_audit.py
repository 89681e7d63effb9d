"""The bias audit facade: evaluate, measure per group with intervals, compare with the base."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from finetrail.errors import InputError
from finetrail.governance.bias import _metrics
from finetrail.governance.bias._counterfactual import load_probes, run_counterfactual
from finetrail.governance.bias._data import AuditRows, check_same_rows, load_eval, load_predictions
from finetrail.governance.bias._scoring import Scorer, chat_framing, lm_scorer, predict
from finetrail.governance.evidence.base import Frozen, validation_error_to_input_error
from finetrail.governance.evidence.bias import (
    DISPARITY_METRICS,
    GROUP_METRICS,
    BaseAudit,
    BiasAuditEvidence,
    BiasMethod,
    BiasSubject,
    Disparity,
    FeatureAudit,
    PlotBar,
)

PLOT_METRICS = ("selection_rate", "accuracy", "tpr", "fpr")


class BiasAuditSettings(Frozen):
    """How the audit measures. ``labels`` lists the positive label first."""

    labels: tuple[str, ...] = ("yes", "no")
    verbalisers: dict[str, str] | None = None  # label -> continuation; default " " + label
    resamples: int = Field(default=1000, ge=20, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    seed: int = 0
    min_group_size: int = Field(default=30, ge=1)
    batch_size: int = Field(default=32, ge=1)
    # how a prompt and a label reach the model: "text" (the label's verbaliser appended to the
    # prompt), "chat" (the prompt as the user's turn, the label as the assistant's reply, rendered
    # as training rendered chat data) or "auto" (chat when the workspace's model was trained on
    # chat data, else text)
    prompt_format: Literal["auto", "text", "chat"] = "auto"

    @model_validator(mode="after")
    def _verbalisers_cover_labels(self) -> BiasAuditSettings:
        if self.verbalisers is not None and set(self.verbalisers) != set(self.labels):
            raise ValueError("verbalisers must give one continuation per label")
        return self

    def verbaliser_map(self) -> dict[str, str]:
        return (
            dict(self.verbalisers) if self.verbalisers else {lab: f" {lab}" for lab in self.labels}
        )


def make_settings(**kwargs: Any) -> BiasAuditSettings:
    try:
        return BiasAuditSettings(**kwargs)
    except ValidationError as exc:
        raise validation_error_to_input_error(
            exc, source="bias audit settings", what="invalid settings"
        ) from exc


def _binary(settings: BiasAuditSettings) -> tuple[str, str]:
    labels = settings.labels
    if len(labels) != 2 or labels[0] == labels[1]:
        raise InputError(
            f"non-binary task: labels {list(labels)}; demographic parity, equalized odds and the "
            "other bias metrics need exactly two labels",
            field="labels",
            fix="give two labels, positive first (e.g. --labels yes,no)",
        )
    return labels[0], labels[1]


def _check_features(sensitive: Sequence[str]) -> tuple[str, ...]:
    feats = tuple(s.strip() for s in sensitive)
    if not feats or any(not f for f in feats):
        raise InputError(
            "no sensitive feature given",
            field="sensitive",
            fix="name the sensitive columns, e.g. --sensitive gender,age_band",
        )
    if len(set(feats)) != len(feats):
        raise InputError(f"sensitive features repeated: {list(feats)}", field="sensitive")
    return feats


def scorer_from_path(path: str | os.PathLike[str], settings: BiasAuditSettings) -> Scorer:
    """Load a local model folder (``from_pretrained``) and wrap it as a scorer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(path).is_dir():
        raise InputError("model folder not found", path=str(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path))
    return lm_scorer(
        model,
        tokenizer,
        list(settings.verbaliser_map().values()),
        batch_size=settings.batch_size,
        frame=chat_framing(tokenizer) if settings.prompt_format == "chat" else None,
    )


def _ticking(scorer: Scorer, bar: Any, label: str, total: int | None, chunk: int = 64) -> Scorer:
    """``scorer`` in chunks of ``chunk`` prompts, each advancing ``bar`` (a finetrail.progress
    Bar; None: the scorer itself)."""
    if bar is None or not getattr(bar, "enabled", False):
        return scorer
    bar.start(label, total, unit="prompt")

    def score(prompts: Sequence[str]) -> Any:
        import numpy as np

        parts = []
        for i in range(0, len(prompts), chunk):
            parts.append(scorer(prompts[i : i + chunk]))
            bar.advance(min(chunk, len(prompts) - i))
        return np.vstack(parts) if parts else scorer(prompts)

    return score


def audit_bias(
    *,
    sensitive: Sequence[str],
    eval_path: str | os.PathLike[str] | None = None,
    scorer: Scorer | None = None,
    base_scorer: Scorer | None = None,
    model: Any = None,
    tokenizer: Any = None,
    base_model: Any = None,
    predictions_path: str | os.PathLike[str] | None = None,
    base_predictions_path: str | os.PathLike[str] | None = None,
    counterfactual: bool | str | os.PathLike[str] = True,
    settings: BiasAuditSettings | None = None,
    subject: BiasSubject | None = None,
    progress: Any = None,
) -> BiasAuditEvidence:
    """Audit one model (and its base, when given) for group disparities.

    Give either ``eval_path`` plus a model (``scorer``, or ``model`` + ``tokenizer``), or
    ``predictions_path`` (predictions made elsewhere). The base (``base_scorer``, ``base_model``
    or ``base_predictions_path``) adds the fine-tune's own effect. ``counterfactual``: True for
    the shipped probe set, a path for your own, False to skip (also skipped without a model).
    """
    settings = settings or BiasAuditSettings()
    labels = _binary(settings)
    feats = _check_features(sensitive)
    verbalisers = settings.verbaliser_map()
    if scorer is None and model is not None:
        if tokenizer is None:
            raise InputError("a model needs its tokenizer", field="tokenizer")
        frame = chat_framing(tokenizer) if settings.prompt_format == "chat" else None
        scorer = lm_scorer(
            model,
            tokenizer,
            [verbalisers[lab] for lab in labels],
            batch_size=settings.batch_size,
            frame=frame,
        )
    if base_scorer is None and base_model is not None:
        base_scorer = lm_scorer(
            base_model,
            tokenizer,
            [verbalisers[lab] for lab in labels],
            batch_size=settings.batch_size,
            frame=chat_framing(tokenizer) if settings.prompt_format == "chat" else None,
        )

    base_rows: AuditRows | None = None
    scoring: Literal["verbaliser_log_likelihood", "predictions_file"]
    if predictions_path is not None:
        rows = load_predictions(predictions_path, sensitive=feats, labels=labels)
        if base_predictions_path is not None:
            base_rows = load_predictions(base_predictions_path, sensitive=feats, labels=labels)
            check_same_rows(rows, base_rows, feats)
        scoring = "predictions_file"
    elif eval_path is not None:
        if scorer is None:
            raise InputError(
                "no model to evaluate the task with",
                field="model",
                fix="give a model (or a scorer), or a predictions file",
            )
        data = load_eval(eval_path, sensitive=feats, labels=labels)
        n = len(data.prompts)
        y_pred, p_pos = predict(
            _ticking(scorer, progress, "scoring the evaluation set", n), data.prompts
        )
        rows = AuditRows(
            data.path, data.sha256, data.y_true, data.sensitive, data.prompts, y_pred, p_pos
        )
        if base_scorer is not None:
            b_pred, b_pos = predict(
                _ticking(base_scorer, progress, "scoring it with the base model", n), data.prompts
            )
            base_rows = AuditRows(
                data.path, data.sha256, data.y_true, data.sensitive, data.prompts, b_pred, b_pos
            )
        scoring = "verbaliser_log_likelihood"
    else:
        raise InputError(
            "nothing to audit",
            field="eval",
            fix="give an evaluation set (--eval) or a predictions file (--predictions)",
        )

    msettings = _metrics.Settings(
        settings.resamples, settings.confidence, settings.seed, settings.min_group_size
    )
    views = _metrics.feature_views(rows.sensitive, feats)
    assert rows.y_pred is not None
    tuned = _metrics.audit_predictions(
        y_true=rows.y_true,
        y_pred=rows.y_pred,
        score=rows.score,
        views=views,
        labels=labels,
        settings=msettings,
    )
    base = None
    if base_rows is not None and base_rows.y_pred is not None:
        base = _metrics.audit_predictions(
            y_true=base_rows.y_true,
            y_pred=base_rows.y_pred,
            score=base_rows.score,
            views=views,
            labels=labels,
            settings=msettings,
        )

    top = {m: tuned.disparities[tuned.worst[m]][m] for m in DISPARITY_METRICS}
    by_feature = {}
    for v in views:
        effects = None
        if base is not None:
            effects = {
                m: _metrics.effect(
                    base.disparities[v.name][m].value,
                    tuned.disparities[v.name][m].value,
                    tuned.samples[v.name][m] - base.samples[v.name][m],
                    settings.confidence,
                )
                for m in DISPARITY_METRICS
            }
        by_feature[v.name] = FeatureAudit(
            feature=v.name,
            groups=v.groups,
            judged_groups=tuple(
                g for g, c in zip(v.groups, v.counts, strict=True) if c >= settings.min_group_size
            ),
            disparities=tuned.disparities[v.name],
            finetune_effect=effects,
        )
    base_audit = finetune_effect = None
    if base is not None:
        base_top: dict[str, Disparity] = {
            m: base.disparities[base.worst[m]][m] for m in DISPARITY_METRICS
        }
        base_audit = BaseAudit(task=base.task, disparities=base_top)
        finetune_effect = {
            m: _metrics.effect(
                base_top[m].value,
                top[m].value,
                tuned.worst_samples[m] - base.worst_samples[m],
                settings.confidence,
            )
            for m in DISPARITY_METRICS
        }

    cf = None
    if counterfactual is not False and scorer is not None:
        probe_path = None if counterfactual is True else counterfactual
        probes, probe_sha = load_probes(probe_path)
        cf = run_counterfactual(
            probes=probes,
            sha256=probe_sha,
            scorer=_ticking(scorer, progress, "counterfactual probes", None),
            settings=msettings,
        )
    if progress is not None:
        progress.close()

    plot = tuple(
        PlotBar(
            feature=g.feature,
            group=g.group,
            metric=m,
            value=getattr(g, m).value,
            ci_low=getattr(g, m).ci_low,
            ci_high=getattr(g, m).ci_high,
            too_small=g.too_small,
        )
        for g in tuned.groups
        for m in PLOT_METRICS
        if m in GROUP_METRICS
    )
    subj = subject or BiasSubject(model="predictions" if scoring == "predictions_file" else "model")
    subj = subj.model_copy(
        update={
            "eval_sha256": rows.sha256 if scoring != "predictions_file" else None,
            "predictions_sha256": rows.sha256 if scoring == "predictions_file" else None,
            "base_predictions_sha256": base_rows.sha256
            if base_rows is not None and scoring == "predictions_file"
            else None,
        }
    )
    return BiasAuditEvidence(
        subject=subj,
        method=BiasMethod(
            scoring=scoring,
            verbalisers={lab: verbalisers[lab] for lab in labels},
            positive_label=labels[0],
            resamples=settings.resamples,
            confidence=settings.confidence,
            seed=settings.seed,
            min_group_size=settings.min_group_size,
            prompt_format=None
            if scoring == "predictions_file"
            else ("chat" if settings.prompt_format == "chat" else "text"),
        ),
        sensitive_features=feats,
        task=tuned.task,
        disparities=top,
        by_feature=by_feature,
        groups=tuple(tuned.groups),
        too_small_groups=tuple(_metrics.too_small(views, settings.min_group_size)),
        base=base_audit,
        finetune_effect=finetune_effect,
        counterfactual=cf,
        plot_data=plot,
    )
