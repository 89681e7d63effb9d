"""Commands of the governance layer: ``init`` and ``verify``."""

from __future__ import annotations

from dataclasses import asdict

import click

from finetrail.cli_options import (
    echo_json,
    json_option,
    keyring_option,
    trust_option,
    workspace_argument,
)
from finetrail.errors import EXIT_CHECK_FAILED, EXIT_OK


@click.command("init")
@workspace_argument()
@click.option("--model", required=True, help="Model name, e.g. support-assistant.")
@click.option("--version", "version", required=True, help="Release version, e.g. 1.0.0.")
@click.option("--owner", required=True, help="Accountable owner (person or team).")
@click.option("--description", default="", help="One-line description of the system.")
@click.option("--purpose", default="", help="Intended purpose (EU AI Act Annex IV 1(a)).")
@click.option("--provider", default="", help="Provider (organisation) name.")
def init_cmd(
    workspace: str,
    model: str,
    version: str,
    owner: str,
    description: str,
    purpose: str,
    provider: str,
) -> int:
    """Create an evidence workspace for one model release."""
    from finetrail.governance.workspace import Workspace

    ws = Workspace.init(
        workspace,
        model=model,
        version=version,
        owner=owner,
        description=description,
        intended_purpose=purpose,
        provider=provider,
    )
    click.echo(f"created workspace {ws.root} for {model} {version} (owner: {owner})")
    return EXIT_OK


@click.command("verify")
@click.argument("workspace", type=click.Path())
@keyring_option()
@trust_option()
@json_option("the findings")
def verify_cmd(workspace: str, keyring: str | None, trust: str | None, as_json: bool) -> int:
    """Recompute every digest and walk the ledger chain; exit 1 on any problem.

    With --trust, every signature is checked against the trust file (by role, validity window
    and release); a trust file inside WORKSPACE is refused (exit 2).
    """
    from finetrail.governance.verify import verify_workspace

    report = verify_workspace(workspace, keyring=keyring, trust=trust)
    if as_json:
        echo_json(
            {
                "workspace": report.workspace,
                "ok": report.ok,
                "entries": report.entries,
                "files": report.files,
                "findings": [asdict(f) for f in report.findings],
            }
        )
    else:
        click.echo(report.render())
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def register(group: click.Group) -> None:
    group.add_command(init_cmd)
    group.add_command(verify_cmd)
