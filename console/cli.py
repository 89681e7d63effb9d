"""``finetrail serve``: run the review console; ``finetrail serve user add``: create an account."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from finetrail.errors import EXIT_OK, DependencyMissing, InputError

DB_FILE = ".finetrail-console.db"


def db_url(root: Path, db: str | None) -> str:
    return db or f"sqlite:///{(root / DB_FILE).resolve()}"


def _store(root: str, db: str | None):  # type: ignore[no-untyped-def]
    try:
        from finetrail.console.store import Store
    except ImportError as exc:
        raise DependencyMissing(
            "the console needs its extra, which is not installed",
            why=str(exc),
            fix="pip install 'finetrail[console]'",
        ) from exc
    path = Path(root)
    if not path.is_dir():
        raise InputError("the console's root is not a folder", path=str(path), field="--root")
    return Store(db_url(path, db))


root_option = click.option(
    "--root",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder whose workspaces the console serves (searched for workspace.json).",
)
db_option = click.option(
    "--db",
    default=None,
    help=f"SQLAlchemy URL of the accounts database (default: sqlite <root>/{DB_FILE}).",
)


@click.group("serve", invoke_without_command=True)
@root_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--trust",
    type=click.Path(dir_okay=False),
    default=None,
    help="Trust file (outside the workspaces) that names reviewer keys; needed for sign-off.",
)
@db_option
@click.pass_context
def serve_group(
    ctx: click.Context, root: str, host: str, port: int, trust: str | None, db: str | None
) -> int:
    """Serve the review console over the workspaces under --root (loopback by default)."""
    if ctx.invoked_subcommand is not None:
        return EXIT_OK
    store = _store(root, db)
    if trust is not None and not Path(trust).is_file():
        raise InputError("trust file not found", path=trust, field="--trust")
    import uvicorn

    from finetrail.console.app import create_app

    app = create_app(root=Path(root), store=store, trust=Path(trust) if trust else None)
    click.echo(f"finetrail console on http://{host}:{port}/ (root {Path(root).resolve()})")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
    return EXIT_OK


@serve_group.group("user")
def user_group() -> None:
    """Console accounts."""


@user_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["reviewer", "admin", "auditor"]),
    help="reviewer and admin comment and sign; auditor reads.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@root_option
@db_option
def user_add(name: str, role: str, password_stdin: bool, root: str, db: str | None) -> int:
    """Create the account NAME (the name the trust file gives the person's reviewer key)."""
    store = _store(root, db)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store.add_user(name, role, password)
    click.echo(f"account {name} ({role}) created in {store.url.split('///')[-1]}")
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(serve_group)
