"""``finetrail train``: fine-tune under DP (or the non-private control) and write the evidence.

Light at import: torch, transformers, peft, opacus and mlflow are imported when the command runs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from finetrail.errors import EXIT_BAD_INPUT, EXIT_OK, ConfigError


@click.command("train")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--workspace",
    "-w",
    required=True,
    type=click.Path(file_okay=False),
    help="The evidence workspace (created with `finetrail init`).",
)
@click.option(
    "--check-dp",
    is_flag=True,
    help="Before training, compare Opacus's per-sample gradients with a brute-force "
    "per-example loop (relative error <= 1e-5); exit 1 if they disagree.",
)
@click.option(
    "--nproc",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="Processes under torchrun (Opacus DPDDP; gloo on CPU). Rank 0 writes.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show a progress bar (step, loss, epsilon, ETA) on stderr.",
)
@click.option("--actor", default=None, help="Who runs this (recorded in the ledger).")
def train_cmd(
    config: str, workspace: str, check_dp: bool, nproc: int, progress: bool, actor: str | None
) -> int:
    """Fine-tune a model as CONFIG (YAML) says and write evidence/training.json.

    The stated epsilon is the PRV accountant's; RDP is recorded beside it. The run is tracked in
    MLflow (sqlite:///WORKSPACE/mlflow.db unless MLFLOW_TRACKING_URI is set).
    """
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _torchrun(config, workspace, check_dp, nproc, progress, actor)
    from finetrail.training.api import train

    record = train(
        config=config, workspace=workspace, check_dp=check_dp, progress=progress, actor=actor
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
    adapter = record.adapter.sha256 if record.adapter else "-"
    click.echo(f"trained {record.method}: {claim}")
    click.echo(f"adapter sha256 {adapter}; evidence {workspace}/evidence/training.json")
    if record.mlflow.run_id:
        click.echo(f"mlflow run {record.mlflow.run_id} ({record.mlflow.tracking_uri})")
    return EXIT_OK


def _torchrun(
    config: str, workspace: str, check_dp: bool, nproc: int, progress: bool, actor: str | None
) -> int:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "finetrail.training.distributed",
        config,
        "--workspace",
        workspace,
        "--progress" if progress else "--no-progress",
    ]
    if check_dp:
        cmd.append("--check-dp")
    if actor:
        cmd += ["--actor", actor]
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
