"""Commands of the governance layer: ``init``, ``verify`` and ``anchor``."""

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
@click.option(
    "--checkpoint",
    "checkpoint",
    default=None,
    metavar="FILE",
    help="A checkpoint kept from earlier (a checkpoints.jsonl line): the log must extend it.",
)
@click.option(
    "--anchor",
    "anchor",
    default=None,
    metavar="FILE|REPO:REF",
    help="Where `finetrail anchor` published checkpoints: refuse a rolled-back, truncated or "
    "rewritten log.",
)
@json_option("the findings")
def verify_cmd(
    workspace: str,
    keyring: str | None,
    trust: str | None,
    checkpoint: str | None,
    anchor: str | None,
    as_json: bool,
) -> int:
    """Recompute every digest and walk the ledger chain; exit 1 on any problem.

    With --trust, every signature is checked against the trust file (by role, validity window
    and release); a trust file inside WORKSPACE is refused (exit 2). The ledger's signed
    checkpoints are checked against it (RFC 9162 consistency proofs); --checkpoint and --anchor
    prove it extends checkpoints kept outside the workspace.
    """
    from finetrail.governance.verify import verify_workspace

    report = verify_workspace(
        workspace, keyring=keyring, trust=trust, checkpoint=checkpoint, anchor=anchor
    )
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


@click.command("anchor")
@workspace_argument()
@click.option("--to", "to", default=None, metavar="FILE", help="Team anchor file (JSON lines).")
@click.option(
    "--git-ref",
    "git_ref",
    default=None,
    metavar="REPO:REF",
    help="A git ref to publish to, e.g. ../team-repo:refs/finetrail/<workspace id>.",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Anchor an unsigned checkpoint (development workspaces only).",
)
@json_option("what was published")
def anchor_cmd(
    workspace: str, to: str | None, git_ref: str | None, allow_unsigned: bool, as_json: bool
) -> int:
    """Publish the workspace's latest signed log checkpoint outside the workspace.

    `finetrail verify --anchor` then refuses a copy of the workspace that is older than the
    checkpoint, or not consistent with it. Exit 1 when the workspace does not extend what was
    anchored before.
    """
    from finetrail.governance.anchor import anchor_workspace

    res = anchor_workspace(workspace, to=to, git_ref=git_ref, allow_unsigned=allow_unsigned)
    cp = res.checkpoint
    if as_json:
        echo_json({"checkpoint": cp.to_json_dict(), "published": list(res.published)})
    else:
        for place in res.published:
            click.echo(f"anchored checkpoint of {cp.size} entries (root {cp.root}) to {place}")
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(init_cmd)
    group.add_command(verify_cmd)
    group.add_command(anchor_cmd)
