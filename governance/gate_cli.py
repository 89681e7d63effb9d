"""Commands: ``policy lint``, ``gate``, ``review approve|reject|comment|status``, ``keys generate|add``.

Light on import: click only; each command imports what it needs (never torch, transformers,
presidio; mlflow only for the registry step of ``gate``, when the training evidence names a
registered model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from finetrail.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, ConfigError, InputError

if TYPE_CHECKING:
    from finetrail.governance.evidence.review import Decision

DECISIONS: tuple[Decision, ...] = ("approve", "reject", "comment")


# -- policy ------------------------------------------------------------------------------------
@click.group("policy")
def policy_group() -> None:
    """Policy packs: check them before the gate uses them."""


@policy_group.command("lint")
@click.argument("files", nargs=-1, required=True)
def policy_lint(files: tuple[str, ...]) -> int:
    """Validate policy FILES (or shipped names); exit 2 with line and column on any problem."""
    from finetrail.governance.policy_load import load_policy, resolve_policy

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


# -- gate --------------------------------------------------------------------------------------
@click.command("gate")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.option(
    "--policy",
    "policy",
    required=True,
    help="Policy file, or a shipped policy name (eu-ai-act-high-risk, nist-ai-rmf, development).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the decision as JSON instead of a table."
)
@click.option("--junit", "junit", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option("--sarif", "sarif", type=click.Path(dir_okay=False), help="Write SARIF 2.1.0 here.")
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False),
    help="Ed25519 private key (PEM) to sign the attestation [env FINETRAIL_SIGNING_KEY].",
)
@click.option(
    "--keyring",
    type=click.Path(dir_okay=False),
    help="Keyring of trusted reviewer keys [env FINETRAIL_KEYRING; default WORKSPACE/keyring.json].",
)
@click.option(
    "--require-approvals",
    is_flag=True,
    help="Fail unless the policy's required approvals are in place.",
)
@click.option("--dry-run", is_flag=True, help="Evaluate only: record nothing, tag nothing.")
@click.option("--no-registry", is_flag=True, help="Do not tag the MLflow registered model.")
@click.option("--tracking-uri", help="MLflow tracking/registry URI for the registry step.")
@click.option("--actor", default="finetrail-gate", show_default=True, help="Who runs the gate.")
def gate_cmd(
    workspace: str,
    policy: str,
    as_json: bool,
    junit: str | None,
    sarif: str | None,
    signing_key: str | None,
    keyring: str | None,
    require_approvals: bool,
    dry_run: bool,
    no_registry: bool,
    tracking_uri: str | None,
    actor: str,
) -> int:
    """Evaluate every rule of a policy on WORKSPACE; exit 0 pass, 1 fail, 2 bad input.

    Fails closed: missing, unparseable, tampered or stale evidence fails its rule, and a
    workspace that `finetrail verify` rejects fails the gate.
    """
    from finetrail.governance.gate_report import (
        render_junit,
        render_sarif,
        render_table,
        sarif_bytes,
    )
    from finetrail.governance.gate_run import run_gate
    from finetrail.governance.io import atomic_write_bytes

    result = run_gate(
        workspace=workspace,
        policy=policy,
        signing_key=signing_key,
        keyring_file=keyring,
        require_approvals=require_approvals,
        record=not dry_run,
        registry_update=not (dry_run or no_registry),
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
        click.echo(json.dumps(d.to_json_dict(), indent=2, sort_keys=True, ensure_ascii=False))
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
            click.echo(result.registry.render())
    return code


# -- review ------------------------------------------------------------------------------------
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
    @click.argument("workspace", type=click.Path(file_okay=False))
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
    @click.option("--keyring", type=click.Path(dir_okay=False), help="Keyring of trusted keys.")
    @click.option("--policy", help="Policy whose approval rules apply (author_may_approve).")
    def cmd(
        workspace: str,
        reviewer: str,
        role: str,
        key: str,
        note: str,
        keyring: str | None,
        policy: str | None,
    ) -> int:
        from finetrail.governance.review import record_review

        rule = None
        if policy:
            from finetrail.governance.policy_load import load_policy, resolve_policy

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
        )
        click.echo(
            f"{decision}: {reviewer} ({role}) signed files digest "
            f"{entry.payload['manifest_sha256'][:12]}... (ledger entry {entry.seq})"
        )
        return EXIT_OK

    return cmd


@review_group.command("status")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.option("--policy", help="Policy whose approval requirement to check.")
@click.option("--keyring", type=click.Path(dir_okay=False), help="Keyring of trusted keys.")
def review_status(workspace: str, policy: str | None, keyring: str | None) -> int:
    """List reviews (current, stale, invalid); exit 1 if a policy's requirement is not met."""
    from finetrail.governance import review
    from finetrail.governance.workspace import Workspace

    ws = Workspace.open(workspace)
    rule = None
    if policy:
        from finetrail.governance.policy_load import load_policy, resolve_policy

        rule = load_policy(resolve_policy(policy)).policy.approvals
    kr_path = review.keyring_path(ws.root, keyring)
    kr = review.load_keyring(kr_path) if kr_path else None
    entries = ws.ledger.entries()
    a = review.assess(entries, ws.read_manifest(), kr)
    for s in a.states:
        who = s.payload.reviewer if s.payload else s.entry.actor
        state = "invalid" if not s.valid else ("current" if s.current else "stale")
        decision = s.payload.decision if s.payload else s.entry.kind
        role = f" ({s.payload.role})" if s.payload else ""
        note = f": {s.payload.note}" if s.payload and s.payload.note else ""
        click.echo(f"{s.entry.time.isoformat()}  {decision:8} {who}{role} [{state}]{note}")
        for p in s.problems:
            click.echo(f"    {p}")
    fe = review.four_eyes(a, rule, review.authors(ws.metadata.owner, entries))
    for p in fe.problems:
        click.echo(f"  - {p}")
    click.echo("approvals: " + ("in place" if fe.satisfied else "NOT in place"))
    return EXIT_OK if fe.satisfied else EXIT_CHECK_FAILED


# -- keys --------------------------------------------------------------------------------------
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

    from finetrail.governance import attest
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
    key = attest.generate_key()
    atomic_write_bytes(private, attest.private_pem(key))
    private.chmod(0o600)
    atomic_write_bytes(public, attest.public_pem(key.public_key()))
    public.chmod(0o644)
    click.echo(f"private key: {private} (keep it secret)")
    click.echo(f"public key:  {public}")
    click.echo(f"keyid:       {attest.keyid_of(key.public_key())}")
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
@click.option("--actor", default=None, help="Who adds the key (default: the workspace owner).")
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
    group.add_command(policy_group)
    group.add_command(gate_cmd)
    group.add_command(review_group)
    group.add_command(keys_group)
