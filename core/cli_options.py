"""Click options shared by every command, defined once; the only place the CLI reads the environment.

Each option that an environment variable can set names it here with ``envvar=``; library code
takes the value as a parameter and never reads or writes ``os.environ`` for it.

| option | environment variable | used by |
|---|---|---|
| ``WORKSPACE`` argument | | every command that reads or writes a workspace |
| ``--workspace`` | | commands whose first argument is a file (``data register``, ``train``) |
| ``--actor`` | ``FINETRAIL_ACTOR`` | every command that writes to the ledger (default: the owner) |
| ``--json`` | | commands with a machine-readable result |
| ``--policy`` | | ``gate``, ``review``, ``report`` |
| ``--keyring`` | ``FINETRAIL_KEYRING`` | ``gate``, ``verify``, ``review``, ``report`` |
| ``--trust`` | ``FINETRAIL_TRUST`` | ``gate``, ``verify``, ``review`` |
| ``--signing-key`` | ``FINETRAIL_SIGNING_KEY`` | ``gate`` |
| ``--tracking-uri`` | ``MLFLOW_TRACKING_URI`` | ``train``, ``probe``, ``audit bias``, ``gate`` |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

ACTOR_ENV = "FINETRAIL_ACTOR"
KEYRING_ENV = "FINETRAIL_KEYRING"
TRUST_ENV = "FINETRAIL_TRUST"
SIGNING_KEY_ENV = "FINETRAIL_SIGNING_KEY"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def workspace_argument(*, must_exist: bool = False) -> Callable[[F], F]:
    """The positional ``WORKSPACE`` (a folder)."""
    return click.argument("workspace", type=click.Path(file_okay=False, exists=must_exist))


def workspace_option(*, required: bool = True) -> Callable[[F], F]:
    """``--workspace WS`` for commands whose positional argument is something else."""
    return click.option(
        "--workspace",
        "workspace",
        required=required,
        type=click.Path(file_okay=False),
        help="The release's evidence workspace (from `finetrail init`).",
    )


def actor_option(what: str = "runs this") -> Callable[[F], F]:
    return click.option(
        "--actor",
        default=None,
        envvar=ACTOR_ENV,
        show_envvar=True,
        help=f"Who {what} (recorded in the ledger; default: the workspace owner).",
    )


def json_option(what: str = "the result") -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def policy_option(*, required: bool, help: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--policy",
        "policy",
        required=required,
        help=help
        or "Policy file, or a shipped policy name (eu-ai-act-high-risk, nist-ai-rmf, development).",
    )


def keyring_option() -> Callable[[F], F]:
    return click.option(
        "--keyring",
        type=click.Path(dir_okay=False),
        envvar=KEYRING_ENV,
        show_envvar=True,
        help="Keyring of trusted reviewer keys (default: WORKSPACE/keyring.json).",
    )


def trust_option() -> Callable[[F], F]:
    return click.option(
        "--trust",
        "trust",
        default=None,
        type=click.Path(),
        envvar=TRUST_ENV,
        show_envvar=True,
        help="Trust file naming the keys that may sign, by role (kept outside the workspace; "
        "see docs/security.md). Without it signatures are not checked against a trust root.",
    )


def signing_key_option() -> Callable[[F], F]:
    return click.option(
        "--signing-key",
        type=click.Path(dir_okay=False),
        envvar=SIGNING_KEY_ENV,
        show_envvar=True,
        help="Ed25519 private key (PEM) to sign the gate attestation.",
    )


def tracking_uri_option() -> Callable[[F], F]:
    return click.option(
        "--tracking-uri",
        default=None,
        envvar=TRACKING_URI_ENV,
        show_envvar=True,
        help="MLflow tracking URI (default: the workspace's own mlflow.db).",
    )


def echo_json(data: Any) -> None:
    """Print ``data`` as indented, key-sorted JSON (non-ASCII kept as is)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
