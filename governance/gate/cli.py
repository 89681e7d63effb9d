"""Command: ``gate`` (evaluate a policy on a workspace; exit codes, JUnit, SARIF, attestation).

Light on import: click only; the command imports what it needs (never torch, transformers,
presidio or mlflow). The gate writes only inside the workspace: when the training evidence names
a registered model it prints the tags and aliases its decision implies, and
``finetrail registry promote WORKSPACE`` (:mod:`.promote`, registered here) applies them.
"""

from __future__ import annotations

import click

from finetrail.cli_options import (
    actor_option,
    echo_json,
    json_option,
    keyring_option,
    policy_option,
    signing_key_option,
    tracking_uri_option,
    trust_option,
    workspace_argument,
)
from finetrail.errors import EXIT_CHECK_FAILED, EXIT_OK


@click.command("gate")
@workspace_argument()
@policy_option(required=True)
@json_option("the decision (instead of a table)")
@click.option("--junit", "junit", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option("--sarif", "sarif", type=click.Path(dir_okay=False), help="Write SARIF 2.1.0 here.")
@signing_key_option()
@keyring_option()
@trust_option()
@click.option(
    "--require-approvals",
    is_flag=True,
    help="Fail unless the policy's required approvals are in place.",
)
@click.option("--dry-run", is_flag=True, help="Evaluate only: record nothing.")
@click.option(
    "--no-registry",
    is_flag=True,
    hidden=True,
    help="Deprecated, no effect: the gate no longer tags the registry (`registry promote`).",
)
@tracking_uri_option()
@actor_option("runs the gate")
def gate_cmd(
    workspace: str,
    policy: str,
    as_json: bool,
    junit: str | None,
    sarif: str | None,
    signing_key: str | None,
    keyring: str | None,
    trust: str | None,
    require_approvals: bool,
    dry_run: bool,
    no_registry: bool,
    tracking_uri: str | None,
    actor: str | None,
) -> int:
    """Evaluate every rule of a policy on WORKSPACE; exit 0 pass, 1 fail, 2 bad input.

    Fails closed: missing, unparseable, tampered or stale evidence fails its rule, and a
    workspace that `finetrail verify` rejects fails the gate. Without --trust, signatures are not
    checked against a trust root and the release policies fail (trust-root).
    """
    from finetrail.governance.gate.api import run_gate
    from finetrail.governance.gate.outputs import (
        render_junit,
        render_sarif,
        render_table,
        sarif_bytes,
    )
    from finetrail.governance.io import atomic_write_bytes

    if no_registry:
        click.echo(
            "note: --no-registry is deprecated and has no effect: the gate never tags the MLflow "
            "registry; run `finetrail registry promote WORKSPACE` after the gate to tag it",
            err=True,
        )
    result = run_gate(
        workspace=workspace,
        policy=policy,
        signing_key=signing_key,
        keyring_file=keyring,
        trust_file=trust,
        require_approvals=require_approvals,
        record=not dry_run,
        tracking_uri=tracking_uri,
        actor=actor,
    )
    d = result.decision
    code = EXIT_OK if d.passed else EXIT_CHECK_FAILED
    if junit:
        atomic_write_bytes(junit, render_junit(d, result.policy))
    if sarif:
        atomic_write_bytes(
            sarif, sarif_bytes(render_sarif(d, result.policy, workspace=workspace, exit_code=code))
        )
    if as_json:
        echo_json(d.to_json_dict())
    else:
        click.echo(render_table(d))
        if result.decision_path:
            click.echo(
                f"recorded: {result.decision_path} and {result.attestation_path}"
                f" ({'signed' if d.signer else 'unsigned'})"
            )
        if result.not_recorded:
            click.echo(f"not recorded: {result.not_recorded}")
        if result.registry:
            click.echo(result.registry.render(workspace))
        if result.registry_skipped:
            click.echo(result.registry_skipped)
    return code


def register(group: click.Group) -> None:
    from finetrail.governance.gate.promote import registry_group

    group.add_command(gate_cmd)
    group.add_command(registry_group)
