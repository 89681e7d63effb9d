"""Commands of the training layer: ``train``, ``synth`` (synthetic data) and ``base-model build``.

Nothing heavy at import: torch, transformers, peft, opacus, mlflow, Faker and tokenizers load
inside the commands that need them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from finetrail.cli_options import actor_option, tracking_uri_option, workspace_then
from finetrail.errors import EXIT_BAD_INPUT, EXIT_OK, ConfigError
from finetrail.extras import require_extra
from finetrail.progress import progress_option, wanted
from finetrail.training.mechanism_bugs import PLANTED_BUGS


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
    require_extra("train", command="synth", modules={"train": ("faker",)})
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
    """The tiny base model: tokenizer + pretrained causal LM (Llama, or GPT-2), built locally."""


@base_model_group.command("build")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Seed; same seed, same bytes.")
@click.option(
    "--architecture",
    type=click.Choice(["llama", "gpt2"]),
    default="llama",
    show_default=True,
    help="llama: the demo's base model; gpt2: the same sizes as GPT-2 (modules c_attn, c_fc, "
    "c_proj), a stand-in for a model whose module names differ from Llama's.",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="Pretraining steps (default 450)."
)
@click.option(
    "--quick", is_flag=True, help="A seconds-long build (small corpus, 20 steps), for tests."
)
@click.option("--force", is_flag=True, help="Rebuild even when OUT_DIR holds the same build.")
def base_model_build_cmd(
    out_dir: str, seed: int, architecture: str, steps: int | None, quick: bool, force: bool
) -> int:
    """Train the tokenizer and pretrain the tiny base model into OUT_DIR (a new folder; cached).

    Load it later with AutoTokenizer / AutoModelForCausalLM.from_pretrained(OUT_DIR).
    """
    require_extra(
        "train",
        command="base-model build",
        modules={"train": ("torch", "transformers", "tokenizers", "safetensors", "faker")},
    )
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
    path = build_base_model(
        out_dir=out_dir,
        seed=seed,
        architecture=architecture,
        force=force,
        progress=click.echo,
        **kwargs,
    )
    compute = TrainingCompute.model_validate(read_json_strict(path / COMPUTE_FILE))
    click.echo(
        f"base model in {path}: {compute.parameters} parameters, {compute.steps} steps, "
        f"{compute.tokens} tokens, {compute.flops:.3g} FLOPs, {compute.wall_seconds:.1f} s pretraining, "
        f"final loss {compute.losses[-1]:.3f}"
    )
    return EXIT_OK


@click.command("train")
@workspace_then("config", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option(
    "--check-dp/--no-check-dp",
    default=True,
    show_default=True,
    help="Before a DP run, compare Opacus's per-sample gradients with a brute-force "
    "per-example loop on a sampled batch (relative error <= 1e-5); exit 1 if they disagree. "
    "The result is in the evidence (dp.check) and the shipped packs require it.",
)
@click.option(
    "--nproc",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="Processes under torchrun (Opacus DPDDP; gloo on CPU). Rank 0 writes.",
)
@progress_option("training (step, loss, epsilon, ETA)")
@click.option(
    "--plant-mechanism-bug",
    type=click.Choice(sorted(PLANTED_BUGS)),
    default=None,
    hidden=True,
    help="Demonstration only: break the DP optimizer this way (the evidence keeps stating the "
    "planned mechanism, as with a real bug; the ledger's training event names it) to show the "
    "mechanism audit and the gate failing the release.",
)
@actor_option("trains")
@tracking_uri_option()
def train_cmd(
    workspace: str,
    config: str,
    check_dp: bool,
    nproc: int,
    progress: bool | None,
    plant_mechanism_bug: str | None,
    actor: str | None,
    tracking_uri: str | None,
) -> int:
    """Fine-tune a model as CONFIG says into WORKSPACE; write evidence/training.json.

    The stated epsilon is the PRV accountant's; RDP is recorded beside it. The run is tracked in
    MLflow (sqlite:///WORKSPACE/mlflow.db unless --tracking-uri or MLFLOW_TRACKING_URI is given).
    """
    require_extra("train", command="train")
    progress = wanted(progress)
    if plant_mechanism_bug and nproc > 1:
        raise ConfigError(
            "--plant-mechanism-bug is for single-process demonstrations", field="nproc"
        )
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _torchrun(config, workspace, check_dp, nproc, progress, actor, tracking_uri)
    from finetrail.training.api import train

    record = train(
        config=config,
        workspace=workspace,
        check_dp=check_dp,
        progress=progress,
        actor=actor,
        tracking_uri=tracking_uri,
        plant_mechanism_bug=plant_mechanism_bug,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return EXIT_OK
    dp = record.dp
    if dp.enabled:
        claim = (
            f"epsilon={dp.epsilon:.4g} (PRV; RDP {dp.epsilon_rdp:.4g}), delta={dp.delta:g}, "
            f"{dp.steps} steps, noise {dp.noise_multiplier:.4g}, clipping {dp.clipping_mode}"
        )
    else:
        claim = "no DP guarantee (privacy: none)"
    if dp.check is not None:
        claim += f"; --check-dp max relative error {dp.check.max_relative_error:.2g}"
    from finetrail.governance.evidence.registry import location

    adapter = record.adapter.sha256 if record.adapter else "-"
    click.echo(f"trained {record.method}: {claim}")
    click.echo(f"adapter sha256 {adapter}; evidence {workspace}/{location('training')}")
    if record.mlflow.run_id:
        click.echo(f"mlflow run {record.mlflow.run_id} ({record.mlflow.tracking_uri})")
    return EXIT_OK


def _torchrun(
    config: str,
    workspace: str,
    check_dp: bool,
    nproc: int,
    progress: bool,
    actor: str | None,
    tracking_uri: str | None,
) -> int:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "finetrail.training.distributed",
        workspace,
        config,
        "--progress" if progress else "--no-progress",
    ]
    cmd.append("--check-dp" if check_dp else "--no-check-dp")
    if actor:
        cmd += ["--actor", actor]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    try:
        proc = subprocess.run(cmd, env=env, check=False)
    except FileNotFoundError as exc:  # pragma: no cover
        raise ConfigError("could not start torchrun", why=str(exc)) from exc
    if proc.returncode in (0, 1, 2):
        return proc.returncode
    return EXIT_BAD_INPUT if proc.returncode < 0 else 1


def register(group: click.Group) -> None:
    group.add_command(train_cmd)
    group.add_command(synth_cmd)
    group.add_command(base_model_group)
