"""The ``finetrail`` command line: assembles each layer's commands and maps errors to exit codes.

Exit codes: 0 success, 1 a check or gate failed, 2 bad usage or bad input. ``--debug`` shows
tracebacks; otherwise an error prints its diagnostics and no traceback.

Each layer contributes its commands from its own ``cli`` module through a ``register(group)``
function listed in :data:`COMMAND_MODULES`. Those modules import nothing heavy at module level:
torch, transformers, mlflow and presidio are imported inside the commands that need them.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence

import click

from finetrail._version import __version__
from finetrail.cli_options import describe_arguments
from finetrail.errors import EXIT_BAD_INPUT, FinetrailError
from finetrail.textsafe import NeutralStream
from finetrail.third_party import quieted

# The literal registry of command providers: one ``cli`` module per package, each beside its
# ``api``. Each module's ``register(group)`` adds its commands; the help lists them in
# :data:`WORKFLOW_ORDER`, the order a release goes through.
COMMAND_MODULES: tuple[str, ...] = (
    "finetrail.governance.cli",
    "finetrail.governance.provenance.cli",
    "finetrail.governance.probes.cli",
    "finetrail.training.cli",
    "finetrail.governance.bias.cli",
    "finetrail.governance.policy.cli",
    "finetrail.governance.gate.cli",
    "finetrail.governance.review.cli",
    "finetrail.reports.cli",
    "finetrail.demo",
    "finetrail.console.cli",
)

WORKFLOW_ORDER: tuple[str, ...] = (
    "init",
    "data",
    "canaries",
    "train",
    "probe",
    "audit",
    "policy",
    "gate",
    "review",
    "keys",
    "report",
    "diff",
    "verify",
    "synth",
    "base-model",
    "demo",
)


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # registration order, not alphabetical


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="finetrail")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option(
    "--ledger-key",
    type=click.Path(dir_okay=False),
    default=None,
    help="Sign this command's ledger entries and checkpoints with this Ed25519 key (PEM, from "
    "`finetrail keys generate`); the same as setting FINETRAIL_LEDGER_KEY for the command.",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, ledger_key: str | None) -> None:
    """finetrail: auditable fine-tuning of language models.

    Exit codes: 0 success, 1 a check or the gate failed, 2 bad usage or bad input.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if ledger_key is not None:
        _use_ledger_key(ctx, ledger_key)


def _use_ledger_key(ctx: click.Context, path: str) -> None:
    """``--ledger-key FILE``: ``$FINETRAIL_LEDGER_KEY`` for this command (and the processes it
    starts), restored when it ends; a file that is not an Ed25519 private key is refused (exit 2)."""
    from finetrail.governance.keys import LEDGER_KEY_ENV, load_private_key

    load_private_key(path)  # refuse a missing or wrong key before anything is written
    before = os.environ.get(LEDGER_KEY_ENV)
    os.environ[LEDGER_KEY_ENV] = os.path.abspath(path)

    def restore() -> None:
        if before is None:
            os.environ.pop(LEDGER_KEY_ENV, None)
        else:
            os.environ[LEDGER_KEY_ENV] = before

    ctx.call_on_close(restore)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(cli)
    known = [c for c in WORKFLOW_ORDER if c in cli.commands]
    rest = sorted(set(cli.commands) - set(known))
    cli.commands = {c: cli.commands[c] for c in (*known, *rest)}
    describe_arguments(cli)  # one description of WORKSPACE, CONFIG, ... in every --help


_register_all()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises for expected errors)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FINETRAIL_DEBUG") == "1"
    # every line a command prints passes the neutraliser: no raw ESC/BEL/OSC or bidi override
    # from a user string reaches the terminal
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = NeutralStream(out), NeutralStream(err)  # type: ignore[assignment]
    try:
        with quieted():  # the third-party warnings listed, with reasons, in third_party.py
            return _main(args, debug)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(args: list[str], debug: bool) -> int:
    try:
        rv = cli.main(args=args, prog_name="finetrail", standalone_mode=False)
    except FinetrailError as err:
        if debug:
            traceback.print_exc()
        click.echo(err.diagnostics(), err=True)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code if err.exit_code else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    if isinstance(rv, int):
        return rv
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
