"""``finetrail audit bias``: the bias audit command (light at import)."""

from __future__ import annotations

import click

from finetrail.cli_options import actor_option, tracking_uri_option
from finetrail.errors import EXIT_OK
from finetrail.progress import Bar, progress_option, wanted


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@click.group("audit")
def audit_group() -> None:
    """Audits of the fine-tuned model (bias)."""


@audit_group.command("bias")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.option(
    "--eval",
    "eval_path",
    type=click.Path(dir_okay=False),
    help="Evaluation set (JSONL: prompt or text, label, sensitive columns).",
)
@click.option(
    "--sensitive", required=True, help="Sensitive columns, comma-separated (e.g. gender,age_band)."
)
@click.option(
    "--predictions",
    "predictions_path",
    type=click.Path(dir_okay=False),
    help="Predictions made elsewhere (JSONL: y_true, y_pred, optional score, sensitive columns).",
)
@click.option(
    "--base-predictions",
    "base_predictions_path",
    type=click.Path(dir_okay=False),
    help="The base model's predictions on the same rows (for the fine-tune's effect).",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(file_okay=False),
    help="Score a local model folder instead of the workspace's model.",
)
@click.option(
    "--base-model",
    "base_model_path",
    type=click.Path(file_okay=False),
    help="The base model folder that goes with --model.",
)
@click.option(
    "--labels",
    default="yes,no",
    show_default=True,
    help="The two labels, positive first; scored as ' <label>' after the prompt (as the reply, with --prompt-format chat).",
)
@click.option(
    "--prompt-format",
    type=click.Choice(["auto", "text", "chat"]),
    default="auto",
    show_default=True,
    help="text: the label appended to the prompt; chat: the prompt as the user's turn and the "
    "label as the assistant's reply, rendered as training renders chat data; auto: chat when "
    "the workspace's model was trained on chat data.",
)
@click.option("--resamples", type=int, default=1000, show_default=True, help="Bootstrap resamples.")
@click.option(
    "--confidence",
    type=float,
    default=0.95,
    show_default=True,
    help="Confidence level of the bootstrap intervals.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option(
    "--min-group-size",
    type=int,
    default=30,
    show_default=True,
    help="Smaller groups are reported as too small to judge.",
)
@click.option(
    "--counterfactual",
    "counterfactual_path",
    type=click.Path(dir_okay=False),
    help="Your counterfactual probe file (YAML); default: the shipped one.",
)
@click.option("--no-counterfactual", is_flag=True, help="Skip the counterfactual probes.")
@progress_option("the model scores the evaluation set and the probes")
@actor_option("runs the audit")
@tracking_uri_option()
def bias_cmd(
    workspace: str,
    eval_path: str | None,
    sensitive: str,
    predictions_path: str | None,
    base_predictions_path: str | None,
    model_path: str | None,
    base_model_path: str | None,
    labels: str,
    prompt_format: str,
    resamples: int,
    confidence: float,
    seed: int,
    min_group_size: int,
    counterfactual_path: str | None,
    no_counterfactual: bool,
    progress: bool | None,
    actor: str | None,
    tracking_uri: str | None,
) -> int:
    """Audit the model for group disparities; write evidence/bias.json.

    Per group of each sensitive column and their intersection: count, selection rate, accuracy,
    TPR, FPR, FNR with bootstrap intervals; disparities (demographic parity, equalized odds,
    accuracy difference); the change from the base model; counterfactual probes.
    """
    from finetrail.extras import require_extra

    # with --predictions no model is loaded: the audit extra alone
    require_extra(*(() if predictions_path else ("train",)), "audit", command="audit bias")
    from finetrail.governance.bias import audit_workspace_bias, make_settings

    settings = make_settings(
        labels=tuple(_split(labels)),
        prompt_format=prompt_format,
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        min_group_size=min_group_size,
    )
    cf: bool | str = False if no_counterfactual else (counterfactual_path or True)
    record = audit_workspace_bias(
        workspace=workspace,
        sensitive=_split(sensitive),
        eval_path=eval_path,
        predictions_path=predictions_path,
        base_predictions_path=base_predictions_path,
        model_path=model_path,
        base_model_path=base_model_path,
        counterfactual=cf,
        settings=settings,
        actor=actor,
        tracking_uri_arg=tracking_uri,
        progress=Bar(wanted(progress)),
    )
    click.echo(render_summary(record))
    return EXIT_OK


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def render_summary(record: object) -> str:
    """A short text summary of a BiasAuditEvidence (numbers only, no examples)."""
    from finetrail.governance.evidence.bias import BiasAuditEvidence

    assert isinstance(record, BiasAuditEvidence)
    t = record.task
    lines = [
        f"bias audit: {t.n} rows, accuracy {t.accuracy:.3f} "
        f"[{t.accuracy_ci[0]:.3f}, {t.accuracy_ci[1]:.3f}], F1 {t.f1:.3f}, AUC {_fmt(t.auc)}",
        f"{int(record.method.confidence * 100)}% intervals from {record.method.resamples} resamples",
    ]
    for m, d in record.disparities.items():
        line = f"  {m}: {_fmt(d.value)} [{_fmt(d.ci_low)}, {_fmt(d.ci_high)}] ({d.feature}: {' vs '.join(d.groups)})"
        if record.finetune_effect and m in record.finetune_effect:
            e = record.finetune_effect[m]
            line += f"; fine-tune effect {_fmt(e.delta)} [{_fmt(e.ci_low)}, {_fmt(e.ci_high)}]"
        lines.append(line)
    if record.too_small_groups:
        lines.append(
            "too small to judge: "
            + ", ".join(f"{g.feature}={g.group} (n={g.count})" for g in record.too_small_groups)
        )
    if record.counterfactual:
        for a in record.counterfactual.attributes.values():
            lines.append(
                f"  counterfactual {a.attribute}: {a.pairs} pairs, flip share "
                f"{_fmt(a.flip_share.value)}, mean change {_fmt(a.mean_change.value)}"
            )
    from finetrail.governance.evidence.registry import location

    lines.append(f"wrote {location('bias')}")
    return "\n".join(lines)


def register(group: click.Group) -> None:
    group.add_command(audit_group)
