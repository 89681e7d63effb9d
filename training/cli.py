"""Commands of the training layer: ``synth`` (synthetic data) and ``base-model build``.

Nothing heavy at import: Faker, torch, transformers and tokenizers load inside the commands.
"""

from __future__ import annotations

import click

from finetrail.errors import EXIT_OK


@click.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Seed; same seed, same bytes.")
@click.option(
    "--records",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Domain-corpus records (support notes with PII).",
)
@click.option(
    "--task-records",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Training rows of the credit-approval task.",
)
@click.option(
    "--eval-records",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Evaluation rows of the credit-approval task.",
)
@click.option(
    "--disparity",
    type=click.FloatRange(-1.0, 1.0),
    default=0.2,
    show_default=True,
    help="Planted P(yes | male) - P(yes | female) in the task labels.",
)
@click.option(
    "--public-records",
    type=click.IntRange(min=0),
    default=2000,
    show_default=True,
    help="Public-style support notes added to the generic corpus.",
)
def synth_cmd(
    out_dir: str,
    seed: int,
    records: int,
    task_records: int,
    eval_records: int,
    disparity: float,
    public_records: int,
) -> int:
    """Generate the synthetic domain corpus, labelled task and generic corpus into OUT_DIR.

    domain_pii.jsonl holds the raw PII values per record (restricted test material).
    """
    from finetrail.training.synthetic import write_synthetic

    summary = write_synthetic(
        out_dir=out_dir,
        seed=seed,
        records=records,
        task_records=task_records,
        eval_records=eval_records,
        disparity=disparity,
        public=public_records,
    )
    for f in summary.files.values():
        click.echo(f"{f.path:18s} {f.rows:6d} rows  sha256 {f.sha256[:16]}")
    for split, rates in summary.measured_disparity.items():
        click.echo(
            f"{split}: P(yes|male)={rates.p_yes_male:.3f} P(yes|female)={rates.p_yes_female:.3f} "
            f"difference={rates.difference:+.3f} (planted {disparity:+.3f})"
        )
    return EXIT_OK


@click.group("base-model")
def base_model_group() -> None:
    """The tiny base model: tokenizer + pretrained Llama-style causal LM, built locally."""


@base_model_group.command("build")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="Pretraining steps (default 450)."
)
@click.option(
    "--quick", is_flag=True, help="A seconds-long build (small corpus, 20 steps), for tests."
)
@click.option("--force", is_flag=True, help="Rebuild even when OUT_DIR holds the same build.")
def base_model_build_cmd(
    out_dir: str, seed: int, steps: int | None, quick: bool, force: bool
) -> int:
    """Train the tokenizer and pretrain the tiny base model into OUT_DIR (cached).

    Load it later with AutoTokenizer / AutoModelForCausalLM.from_pretrained(OUT_DIR).
    """
    from finetrail.governance.io import read_json_strict
    from finetrail.training.base_model import (
        COMPUTE_FILE,
        QUICK,
        TrainingCompute,
        build_base_model,
    )

    kwargs = dict(QUICK) if quick else {}
    if steps is not None:
        kwargs["steps"] = steps
    path = build_base_model(out_dir=out_dir, seed=seed, force=force, progress=click.echo, **kwargs)
    compute = TrainingCompute.model_validate(read_json_strict(path / COMPUTE_FILE))
    click.echo(
        f"base model in {path}: {compute.parameters} parameters, {compute.steps} steps, "
        f"{compute.tokens} tokens, {compute.flops:.3g} FLOPs, {compute.wall_seconds:.1f} s pretraining, "
        f"final loss {compute.losses[-1]:.3f}"
    )
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(synth_cmd)
    group.add_command(base_model_group)
