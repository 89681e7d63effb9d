"""Click options shared by every command, defined once; the only place the CLI reads the environment.

Each option that an environment variable can set names it here with ``envvar=``; library code
takes the value as a parameter and never reads or writes ``os.environ`` for it.

| option | environment variable | used by |
|---|---|---|
| ``WORKSPACE`` argument | | every command that reads or writes a workspace: always the first |
| ``--workspace``, ``-w`` | | hidden, deprecated alias (``train CONFIG -w WS``, ``data register FILE -w WS``) |
| ``--actor`` | ``FINETRAIL_ACTOR`` | every command that writes to the ledger (default: the owner) |
| ``--json`` | | commands with a machine-readable result |
| ``--policy`` | | ``gate``, ``review``, ``report`` |
| ``--keyring`` | ``FINETRAIL_KEYRING`` | ``gate``, ``verify``, ``review``, ``report`` |
| ``--trust`` | ``FINETRAIL_TRUST`` | ``gate``, ``verify``, ``review`` |
| ``--signing-key`` | ``FINETRAIL_SIGNING_KEY`` | ``gate`` |
| ``--tracking-uri`` | ``MLFLOW_TRACKING_URI`` | ``train``, ``probe``, ``audit bias``, ``gate`` |
"""

from __future__ import annotations

import functools
import inspect
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


def workspace_then(name: str, *, metavar: str, type: click.ParamType[Any]) -> Callable[[F], F]:
    """``WORKSPACE NAME``: the workspace first, as in every command, then the command's file.

    The older ``NAME --workspace WS`` (or ``-w WS``) still works: a hidden alias that prints a
    deprecation note on stderr. Both forms at once, or a missing argument, is a usage error
    (exit 2).
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def resolve(
            *args: Any, workspace: str | None, workspace_alias: str | None, **kwargs: Any
        ) -> Any:
            second = kwargs.get(name)
            path = click.get_current_context().command_path
            if workspace_alias is not None:
                if second is not None or workspace is None:
                    raise click.UsageError(
                        f"give the workspace once: `{path} WORKSPACE {metavar}` "
                        "(--workspace is a deprecated alias)"
                    )
                workspace, kwargs[name] = workspace_alias, workspace
                click.echo(
                    f"note: --workspace is deprecated; write `{path} WORKSPACE {metavar}`",
                    err=True,
                )
            elif workspace is None or second is None:
                missing = "WORKSPACE" if workspace is None else metavar
                raise click.UsageError(f"Missing argument '{missing}'.")
            # typed once the form is known (the old form has the file in the first place)
            ctx = click.get_current_context()
            params = {p.name: p for p in ctx.command.params}
            workspace = str(
                click.Path(file_okay=False).convert(workspace, params["workspace"], ctx)
            )
            kwargs[name] = type.convert(kwargs[name], params[name], ctx)
            return func(*args, workspace=workspace, **kwargs)

        wrapped: Any = resolve
        wrapped = click.option(
            "--workspace",
            "-w",
            "workspace_alias",
            hidden=True,
            default=None,
            help=f"Deprecated alias: give WORKSPACE first ({metavar} second).",
        )(wrapped)
        wrapped = click.argument(name, required=False, metavar=metavar)(wrapped)
        wrapped = click.argument("workspace", required=False, metavar="WORKSPACE")(wrapped)
        return wrapped  # type: ignore[no-any-return]

    return decorate


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


# What each positional argument is, by its metavar, rendered as an "Arguments:" section into
# every command's help (click arguments take no help text of their own). A command whose
# argument means something narrower overrides it by command path.
ARGUMENTS: dict[str, str] = {
    "WORKSPACE": "the release's evidence workspace (a folder made by `finetrail init`)",
    "CONFIG": "the training config, YAML (docs/training.md)",
    "FILE": "the dataset file: JSONL, CSV, Parquet or text",
    "PATH": "the dataset file: JSONL, CSV, Parquet or text",
    "DATASET": "a registered dataset: its name, digest or digest prefix",
    "PROOF": "a proof file from `finetrail data prove`",
    "FILES": "policy files, or shipped policy names (eu-ai-act-high-risk, ...)",
    "WORKSPACE_A": "the earlier release's workspace",
    "WORKSPACE_B": "the later release's workspace",
    "OUT_DIR": "the folder to write into (created when missing)",
}
ARGUMENT_OVERRIDES: dict[tuple[str, str], str] = {
    ("init", "WORKSPACE"): "the workspace folder to create (new or empty)",
}


def argument_metavar(cmd: click.Command, param: click.Parameter) -> str:
    """``WORKSPACE`` for an argument named workspace (brackets and dots removed)."""
    return param.make_metavar(click.Context(cmd)).strip("[].")


def describe_arguments(group: click.Group, prefix: tuple[str, ...] = ()) -> None:
    """Append an "Arguments:" section to the help of every command under ``group``."""
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        if isinstance(cmd, click.Group):
            describe_arguments(cmd, path)
            continue
        lines = []
        for param in cmd.params:
            if not isinstance(param, click.Argument):
                continue
            metavar = argument_metavar(cmd, param)
            text = ARGUMENT_OVERRIDES.get((" ".join(path), metavar)) or ARGUMENTS.get(metavar)
            if text:
                lines.append(f"  {metavar:<12} {text}")
        if lines and "Arguments:" not in (cmd.help or ""):
            text = inspect.cleandoc(cmd.help or "")
            cmd.help = text + "\n\n\b\nArguments:\n" + "\n".join(lines)
