"""Command: ``policy lint`` (check policy packs before the gate uses them)."""

from __future__ import annotations

import click

from finetrail.errors import EXIT_BAD_INPUT, EXIT_OK, ConfigError, InputError


@click.group("policy")
def policy_group() -> None:
    """Policy packs: check them before the gate uses them."""


@policy_group.command("lint")
@click.argument("files", nargs=-1, required=True)
def policy_lint(files: tuple[str, ...]) -> int:
    """Validate policy FILES (or shipped names); exit 2 with line and column on any problem."""
    from finetrail.governance.policy.load import load_policy, resolve_policy

    code = EXIT_OK
    for f in files:
        try:
            loaded = load_policy(resolve_policy(f))
        except (ConfigError, InputError) as err:
            click.echo(err.diagnostics(), err=True)
            code = EXIT_BAD_INPUT
            continue
        pol = loaded.policy
        approvals = (
            (
                f"{pol.approvals.count} approval(s)"
                + (f" ({', '.join(pol.approvals.roles)})" if pol.approvals.roles else "")
            )
            if pol.approvals
            else "no approvals"
        )
        click.echo(
            f"{loaded.path}: ok: policy {pol.id} {pol.version}: {len(pol.rules)} rules, "
            f"{len(pol.required_evidence)} required evidence kinds, {approvals}, "
            f"{len(pol.waivers)} waiver(s); sha256 {loaded.sha256[:12]}"
        )
    return code


def register(group: click.Group) -> None:
    group.add_command(policy_group)
