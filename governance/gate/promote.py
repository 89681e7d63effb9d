"""``finetrail registry promote WORKSPACE``: apply the latest gate decision to the MLflow registry.

The gate records a signed decision and stays light; this command is the only one that tags the
registered model version (and the only place in the gate package that imports mlflow, inside
:func:`~.mlflow_aliases.apply_plan`). Fail closed, in this order:

1. the training evidence must name a registered model and version, in a store that belongs to
   this workspace (a recorded local store outside it is refused, exit 2: a copied or moved
   workspace must not tag the original's store); ``--tracking-uri`` names another store;
2. the workspace must pass ``verify`` (with ``--trust`` when given) and hold a gate decision whose
   evidence files are unchanged since; otherwise the version is treated as failing: ``candidate``
   and ``approved`` are taken off it and the command exits 1. When the training record itself
   (which names the store and the version) fails verify, nothing is written anywhere (exit 1);
3. the latest decision must be signed (an unsigned decision sets no alias, exit 2).

``--dry-run`` prints the plan and touches nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import click

from finetrail.cli_options import tracking_uri_option, trust_option, workspace_argument
from finetrail.errors import EXIT_CHECK_FAILED, EXIT_OK, FinetrailError, InputError
from finetrail.governance.gate.mlflow_aliases import (
    RegistryPlan,
    RegistryUpdate,
    apply_plan,
    plan_for,
    registry_target,
)

_NUMBERED = re.compile(r"^(\d+)\.json$")
TRAINING_RECORD = "evidence/training.json"


class PromoteRefused(FinetrailError):
    """The record that names the store fails verify: exit 1, nothing written."""

    exit_code = EXIT_CHECK_FAILED


@dataclass(frozen=True)
class PromoteResult:
    plan: RegistryPlan
    update: RegistryUpdate | None  # None with dry_run
    refused: tuple[str, ...]  # why the version was demoted instead (empty when the decision holds)

    @property
    def ok(self) -> bool:
        return not self.refused


def _latest_decision(root: Path) -> str | None:
    from finetrail.governance.evidence import registry

    folder = root / registry.GATE_DIR
    if not folder.is_dir():
        return None
    numbered = [
        (int(m.group(1)), p.name) for p in folder.iterdir() if (m := _NUMBERED.match(p.name))
    ]
    if not numbered:
        return None
    return f"{registry.GATE_DIR}/{max(numbered)[1]}"


def promote(
    *,
    workspace: str | os.PathLike[str],
    tracking_uri: str | None = None,
    trust_file: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
) -> PromoteResult:
    """Tag the registered model version from the latest recorded gate decision of ``workspace``."""
    from finetrail.governance.evidence.gate import GateDecision
    from finetrail.governance.io import read_json_strict, sha256_file
    from finetrail.governance.verify import verify_workspace

    root = Path(workspace)
    if not root.is_dir():
        raise InputError("workspace not found", path=str(root))
    training_file = root / TRAINING_RECORD
    training = read_json_strict(training_file) if os.path.lexists(training_file) else None
    target = registry_target(root, training if isinstance(training, dict) else None, tracking_uri)
    if target is None:
        raise InputError(
            "the training evidence names no registered model: nothing to promote",
            path=str(training_file),
            field="training.mlflow.registered_model",
            fix="train with MLflow tracking (the default) so that the adapter is registered",
        )
    rel = _latest_decision(root)
    if rel is None:
        raise InputError(
            "no gate decision recorded",
            path=str(root / "evidence/gate"),
            fix="run `finetrail gate WORKSPACE --policy P --signing-key KEY` first",
        )
    decision = GateDecision.read(root / rel)
    refused: list[str] = []
    report = verify_workspace(root, trust=trust_file)
    if not report.ok:
        refused.append(f"the workspace fails `finetrail verify` ({len(report.errors)} problem(s))")
        bad = [f.message for f in report.errors if f.location == TRAINING_RECORD]
        if bad:
            # the record that names the store and version is itself not the recorded one: no
            # store it names is trusted, so nothing is written anywhere
            raise PromoteRefused(
                "refused: the training record is not the one the ledger recorded, so the "
                "registered model it names is not trusted; nothing was tagged",
                path=str(training_file),
                why="; ".join(bad),
                fix="run `finetrail verify WORKSPACE`; restore the workspace from a good copy",
            )
    for path, digest in sorted(decision.evidence.items()):
        file = root / path
        now = sha256_file(file) if file.is_file() else None
        if now != digest:
            refused.append(f"{path} changed since gate decision {rel}")
    if decision.signer is None and not refused:
        raise InputError(
            "the latest gate decision is unsigned: the registry is only tagged from a signed one",
            path=str(root / rel),
            field="signer",
            fix="run the gate with --signing-key (a gate key the trust root names)",
        )
    plan = plan_for(target, decision, rel)
    if refused:  # fail closed: the version loses both aliases
        plan = RegistryPlan(
            target,
            {**plan.tags, "finetrail.gate.result": "refused"},
            (),
            ("candidate", "approved"),
        )
    update = None if dry_run else apply_plan(plan)
    return PromoteResult(plan, update, tuple(refused))


@click.group("registry")
def registry_group() -> None:
    """The MLflow model registry: tag the gated model version (reads the gate's decision)."""


@registry_group.command("promote")
@workspace_argument()
@tracking_uri_option()
@trust_option()
@click.option("--dry-run", is_flag=True, help="Print the tags and aliases; change nothing.")
def promote_cmd(workspace: str, tracking_uri: str | None, trust: str | None, dry_run: bool) -> int:
    """Tag WORKSPACE's registered model version from its latest signed gate decision.

    Exit 0 tagged, 1 the workspace fails verify or changed since the decision (the version's
    candidate/approved aliases are removed), 2 bad input (no decision, unsigned, a recorded store
    outside the workspace).
    """
    res = promote(workspace=workspace, tracking_uri=tracking_uri, trust_file=trust, dry_run=dry_run)
    for why in res.refused:
        click.echo(f"refused: {why}")
    if res.update is not None:
        click.echo(res.update.render())
    else:
        click.echo(res.plan.render(workspace).replace("not tagged by the gate", "dry run"))
    return EXIT_OK if res.ok else EXIT_CHECK_FAILED
