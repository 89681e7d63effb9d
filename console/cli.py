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


@serve_group.group("trust")
def trust_group() -> None:
    """The trust file's reviewer keys (edited out of band: the console only reads it)."""


def trust_add_command(trust: str, name: str, roles: tuple[str, ...], public_key: str) -> str:
    """The command that adds an enrolled browser key to the trust file (shown to admins)."""
    import shlex

    parts = ["finetrail", "serve", "trust", "add", "--trust", str(Path(trust).resolve())]
    parts += ["--name", name, *[x for r in roles for x in ("--role", r)], "--public-key"]
    return " ".join(shlex.quote(x) for x in parts) + " " + shlex.quote(public_key)


@trust_group.command("add")
@click.option(
    "--trust",
    "trust_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The trust file (YAML) to add the reviewer key to.",
)
@click.option("--name", required=True, help="The reviewer's name (their console account).")
@click.option("--role", "roles", multiple=True, required=True, help="A review role (repeat).")
@click.option("--public-key", required=True, help="Base64 of the raw 32-byte Ed25519 key.")
@click.option("--days", default=365, show_default=True, type=int, help="Validity from now.")
def trust_add(
    trust_file: str, name: str, roles: tuple[str, ...], public_key: str, days: int
) -> int:
    """Add a reviewer key (an enrolment the console's admin page lists) to the trust file.

    The file is re-written with the entry appended under ``reviewers`` and validated as a whole
    before it replaces the old one; its leading comment lines are kept, other comments are not.
    Review the change like code before the console and the gate use it.
    """
    import base64
    import binascii
    import json
    import os
    import tempfile
    from datetime import UTC, datetime, timedelta

    import yaml

    from finetrail.governance.io import (
        load_yaml_strict,
        parse_json_bytes,
        read_text_strict,
        sha256_bytes,
    )
    from finetrail.governance.trust import parse_trust

    path = Path(trust_file)
    text = read_text_strict(path)
    is_json = path.suffix == ".json"
    data = (
        parse_json_bytes(text.encode(), path)
        if is_json
        else load_yaml_strict(text, source=str(path))
    )
    parse_trust(data, source=str(path))  # the file as it is must be a trust file
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("the public key is not base64", field="--public-key") from exc
    if len(raw) != 32:
        raise InputError(f"the public key is {len(raw)} bytes, an Ed25519 one is 32",
                         field="--public-key")  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    entry = {
        "name": name,
        "roles": list(roles),
        "public_key": public_key,
        "not_before": now.isoformat().replace("+00:00", "Z"),
        "not_after": (now + timedelta(days=days)).isoformat().replace("+00:00", "Z"),
    }
    data["reviewers"] = [*(data.get("reviewers") or []), entry]
    parse_trust(data, source=str(path))  # a key serves one role and one holder, names, roles
    if is_json:
        out = json.dumps(data, indent=2) + "\n"
    else:
        head = "".join(line for line in text.splitlines(keepends=True)[:50] if line.startswith("#"))
        out = head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(out)
    os.chmod(tmp, path.stat().st_mode & 0o777)
    os.replace(tmp, path)
    click.echo(f"added reviewer {name} ({', '.join(roles)}), key sha256:{sha256_bytes(raw)}, "
               f"valid until {entry['not_after']}, to {path}")  # fmt: skip
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(serve_group)
