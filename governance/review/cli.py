"""Commands: ``review approve|reject|comment|status`` and ``keys generate|add``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from finetrail.cli_options import (
    actor_option,
    keyring_option,
    policy_option,
    trust_option,
    workspace_argument,
)
from finetrail.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError

if TYPE_CHECKING:
    from finetrail.governance.evidence.review import Decision

DECISIONS: tuple[Decision, ...] = ("approve", "reject", "comment")


@click.group("review")
def review_group() -> None:
    """Signed sign-off bound to the workspace's files (four-eyes)."""


REVIEW_HELP = {
    "approve": "Approve WORKSPACE: sign its current files digest.",
    "reject": "Reject WORKSPACE (blocks approval until you approve again); needs --note.",
    "comment": "Comment on WORKSPACE (signed; no effect on approval).",
}


def _review_command(decision: Decision) -> click.Command:
    @click.command(decision, help=REVIEW_HELP[decision])
    @workspace_argument()
    @click.option("--reviewer", required=True, help="Your name as listed in the keyring.")
    @click.option("--role", required=True, help="The role you review in (granted by the keyring).")
    @click.option(
        "--key",
        "key",
        required=True,
        type=click.Path(dir_okay=False),
        help="Your Ed25519 private key (from `finetrail keys generate`).",
    )
    @click.option("--note", default="", help="What you reviewed, or why.")
    @keyring_option()
    @trust_option()
    @policy_option(required=False, help="Policy whose approval rules apply (author_may_approve).")
    def cmd(
        workspace: str,
        reviewer: str,
        role: str,
        key: str,
        note: str,
        keyring: str | None,
        trust: str | None,
        policy: str | None,
    ) -> int:
        from finetrail.governance.review.assess import record_review

        rule = None
        if policy:
            from finetrail.governance.policy.load import load_policy, resolve_policy

            rule = load_policy(resolve_policy(policy)).policy.approvals
        if decision == "reject" and not note:
            raise InputError("a rejection needs a --note saying why", field="note")
        entry = record_review(
            workspace,
            decision=decision,
            reviewer=reviewer,
            role=role,
            key_file=key,
            note=note,
            keyring_file=keyring,
            rule=rule,
            trust=trust,
        )
        click.echo(
            f"{decision}: {reviewer} ({role}) signed files digest "
            f"{entry.payload['manifest_sha256'][:12]}... (ledger entry {entry.seq})"
        )
        return EXIT_OK

    return cmd


@review_group.command("status")
@workspace_argument()
@policy_option(required=False, help="Policy whose approval requirement to check.")
@keyring_option()
@trust_option()
def review_status_cmd(
    workspace: str, policy: str | None, keyring: str | None, trust: str | None
) -> int:
    """List reviews (current, stale, invalid); exit 1 if a policy's requirement is not met."""
    from finetrail.governance.review.api import workspace_review_status

    rule = None
    if policy:
        from finetrail.governance.policy.load import load_policy, resolve_policy

        rule = load_policy(resolve_policy(policy)).policy.approvals
    status = workspace_review_status(workspace, rule=rule, keyring_file=keyring, trust=trust)
    if status.keyring_problem:
        click.echo(f"  - {status.keyring_problem}")
    for row in status.rows:
        role = f" ({row.role})" if row.role else ""
        note = f": {row.note}" if row.note else ""
        click.echo(f"{row.time}  {row.decision:8} {row.reviewer}{role} [{row.state}]{note}")
        for p in row.problems:
            click.echo(f"    {p}")
    for p in status.four_eyes.problems:
        click.echo(f"  - {p}")
    click.echo("approvals: " + ("in place" if status.satisfied else "NOT in place"))
    return EXIT_OK if status.satisfied else EXIT_CHECK_FAILED


@click.group("keys")
def keys_group() -> None:
    """Ed25519 keys for reviewers and gate signers, and the keyring of trusted keys."""


@keys_group.command("generate")
@click.option("--reviewer", required=True, help="Name the key belongs to (as in the keyring).")
@click.option(
    "--out",
    "out",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for NAME.key (private, mode 0600) and NAME.pub.",
)
def keys_generate(reviewer: str, out: str) -> int:
    """Create an Ed25519 key pair for REVIEWER."""
    import re

    from finetrail.governance import keys
    from finetrail.governance.evidence.review import NAME_PATTERN
    from finetrail.governance.io import atomic_write_bytes

    if not re.match(NAME_PATTERN, reviewer):
        raise InputError(
            f"invalid reviewer name {reviewer!r}",
            field="reviewer",
            fix="use letters, digits, '.', '_', '@' or '-'",
        )
    folder = Path(out)
    private, public = folder / f"{reviewer}.key", folder / f"{reviewer}.pub"
    for p in (private, public):
        if p.exists():
            raise InputError("refusing to overwrite an existing key file", path=str(p))
    key = keys.generate_key()
    atomic_write_bytes(private, keys.private_pem(key))
    private.chmod(0o600)
    atomic_write_bytes(public, keys.public_pem(key.public_key()))
    public.chmod(0o644)
    click.echo(f"private key: {private} (keep it secret)")
    click.echo(f"public key:  {public}")
    click.echo(f"keyid:       {keys.keyid_of(key.public_key())}")
    click.echo(f"public_key:  {keys.public_b64(key.public_key())} (for a trust file)")
    click.echo(
        f"trust it:    finetrail keys add --reviewer {reviewer} --public-key {public} "
        "--role ROLE (--workspace WS | --keyring FILE)"
    )
    return EXIT_OK


@keys_group.command("add")
@click.option("--reviewer", required=True, help="Name of the key's owner.")
@click.option("--public-key", required=True, type=click.Path(dir_okay=False), help="NAME.pub file.")
@click.option(
    "--role", "roles", multiple=True, required=True, help="A role this person may review in."
)
@click.option(
    "--workspace", type=click.Path(file_okay=False), help="Add to WORKSPACE/keyring.json."
)
@click.option("--keyring", type=click.Path(dir_okay=False), help="Add to this keyring file.")
@actor_option("adds the key")
def keys_add(
    reviewer: str,
    public_key: str,
    roles: tuple[str, ...],
    workspace: str | None,
    keyring: str | None,
    actor: str | None,
) -> int:
    """Trust a public key: add it to a keyring with the roles its owner may review in."""
    from finetrail.governance import review

    if bool(workspace) == bool(keyring):
        raise InputError("give exactly one of --workspace or --keyring")
    if workspace:
        from finetrail.governance.workspace import Workspace

        owner = Workspace.open(workspace).metadata.owner
        entry = review.trust_in_workspace(
            workspace, name=reviewer, public_key_file=public_key, roles=roles, actor=actor or owner
        )
        target = str(Path(workspace) / review.KEYRING_FILE)
    else:
        assert keyring is not None
        entry = review.add_trusted_key(
            keyring, name=reviewer, public_key_file=public_key, roles=roles
        )
        target = keyring
    click.echo(
        f"trusted {reviewer} ({', '.join(entry.roles)}) keyid {entry.keyid[:16]}... in {target}"
    )
    return EXIT_OK


def register(group: click.Group) -> None:
    for decision in DECISIONS:
        review_group.add_command(_review_command(decision))
    group.add_command(review_group)
    group.add_command(keys_group)
