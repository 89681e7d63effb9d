"""The model card in the Hugging Face format: ``README.md`` with YAML metadata and ``model-index``.

The metadata is built with ``huggingface_hub.ModelCardData`` / ``EvalResult`` (so
``huggingface_hub.ModelCard`` parses it back); the body follows the Hugging Face template's
sections and states the DP guarantee as measured facts.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

from finetrail.reports.loader import get, num
from finetrail.reports.model import ReportModel, losses
from finetrail.textsafe import neutralise

HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def meta_text(value: object) -> str:
    """Free text for the YAML metadata: no markup survives a renderer that shows front matter raw
    (angle brackets become single guillemets, so ``<EMAIL_ADDRESS>`` reads as ``‹EMAIL_ADDRESS›``)."""
    text = " ".join(neutralise(str(value)).split()).replace("<", "\u2039").replace(">", "\u203a")
    return text.replace("](", "] (")  # no Markdown link survives either


def meta_id(value: object) -> str:
    """An identifier-like form (Hub ids are ``[A-Za-z0-9._-]``) for ``dataset.type``."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip("-._")
    return out[:64] or "dataset"


def _eval_results(m: ReportModel) -> list[Any]:
    from huggingface_hub import EvalResult

    ev = m.ev
    rel = m.release
    if rel.evaluated_on:
        eval_name = rel.name(rel.evaluated_on)
    else:
        eval_name = "evaluation data (not recorded)"
    train_name = ", ".join(d.name for d in rel.with_role("train")) or "training data"
    validation_name = ", ".join(d.name for d in rel.with_role("validation")) or (
        "validation data (not recorded)"
    )
    task_type = str(get(ev.bias, "task.type") or "text-generation")
    results: list[Any] = []

    def add(dataset: str, metric: str, value: float | None, name: str) -> None:
        if value is not None:
            results.append(
                EvalResult(
                    task_type=task_type,
                    dataset_type=meta_id(dataset),
                    dataset_name=meta_text(dataset),
                    metric_type=metric,
                    metric_value=value,
                    metric_name=name,
                )
            )

    add(eval_name, "accuracy", num(get(ev.bias, "task.accuracy")), "Task accuracy")
    add(eval_name, "f1", num(get(ev.bias, "task.f1")), "Task F1")
    for metric in (
        "demographic_parity_difference",
        "equalized_odds_difference",
        "accuracy_difference",
    ):
        add(
            eval_name,
            metric,
            num(get(ev.bias, f"disparities.{metric}.value")),
            metric.replace("_", " ").capitalize(),
        )
    vl = losses(get(ev.training, "val_loss"))
    if vl:
        add(validation_name, "validation_loss", vl[-1], "Validation loss (final)")
    add(
        train_name,
        "canary_exposure_max_bits",
        num(get(ev.probes.get("exposure"), "max_bits")),
        "Canary exposure, max (bits)",
    )
    add(
        train_name,
        "membership_inference_auc",
        num(get(ev.probes.get("membership"), "max_auc")),
        "Membership inference AUC, max over attacks",
    )
    add(
        train_name,
        "extraction_memorized_rate",
        num(get(ev.probes.get("extraction"), "memorized_rate")),
        "Extraction: memorised identifier rate",
    )
    add(
        train_name,
        "dp_audit_epsilon_lower_bound",
        num(get(ev.probes.get("dp_audit"), "empirical_epsilon_lower_bound")),
        "Empirical epsilon lower bound (one-run audit)",
    )
    return results


def front_matter(m: ReportModel) -> Markup:
    """The YAML metadata block (without the ``---`` fences), trusted text for the template."""
    from huggingface_hub import ModelCardData

    ev = m.ev
    # The metadata's base_model links to the Hub: only a name shaped like a Hub id goes there.
    base = get(ev.training, "base_model.name")
    if not (isinstance(base, str) and HUB_ID.fullmatch(base)):
        base = None
    data = ModelCardData(
        model_name=meta_text(ev.workspace.get("model")),
        language="en",
        license=meta_id(ev.workspace.get("license") or "other"),
        library_name="peft" if m.release.peft else ("transformers" if ev.training else None),
        base_model=base,  # None, or matched HUB_ID (no markup can pass)
        tags=list(m.release.tags),
        eval_results=_eval_results(m) or None,
    )
    return Markup(data.to_yaml().strip())  # YAML from huggingface_hub
