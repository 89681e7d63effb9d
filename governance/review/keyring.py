"""Keyring files: the trusted reviewer keys and the roles each person may review in.

The keyring is found at an explicit path (``--keyring FILE``; the CLI also reads
``$FINETRAIL_KEYRING`` for it), else ``<workspace>/keyring.json`` (whose digest the ledger
records when finetrail writes it). Library code never reads or writes the environment.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from finetrail.errors import InputError
from finetrail.governance.evidence.review import Keyring, TrustedKey
from finetrail.governance.evidence.workspace import LedgerEntry
from finetrail.governance.findings import Finding
from finetrail.governance.io import atomic_write_bytes, sha256_bytes, sha256_file

KEYRING_FILE = "keyring.json"
KEYRING_ENV = "FINETRAIL_KEYRING"  # read by the CLI option only (finetrail.cli_options)
KEYRING_EVENT = "keyring.updated"


def keyring_path(
    root: str | os.PathLike[str] | None, explicit: str | os.PathLike[str] | None = None
) -> Path | None:
    if explicit:
        return Path(explicit)
    if root is not None and (Path(root) / KEYRING_FILE).is_file():
        return Path(root) / KEYRING_FILE
    return None


def load_keyring(path: str | os.PathLike[str]) -> Keyring:
    from finetrail.governance.keys import public_from_b64

    keyring = Keyring.read(path)
    for key in keyring.keys:
        try:
            raw = base64.b64decode(key.public_key, validate=True)
            public_from_b64(key.public_key)
        except (ValueError, binascii.Error) as exc:
            raise InputError(
                f"key of {key.name!r} is not a base64 Ed25519 public key",
                path=str(path),
                field="keys",
            ) from exc
        if sha256_bytes(raw) != key.keyid:
            raise InputError(
                f"keyid of {key.name!r} does not match its public key", path=str(path), field="keys"
            )
    return keyring


def add_trusted_key(
    path: str | os.PathLike[str], *, name: str, public_key_file: str, roles: Iterable[str]
) -> TrustedKey:
    """Add a person's public key to a keyring file (created if absent)."""
    from finetrail.governance.keys import keyid_of, load_public_key, public_b64

    pub = load_public_key(public_key_file)
    p = Path(path)
    keyring = load_keyring(p) if p.exists() else Keyring()
    try:
        entry = TrustedKey(
            name=name, keyid=keyid_of(pub), public_key=public_b64(pub), roles=tuple(roles)
        )
        updated = Keyring(keys=(*keyring.keys, entry))
    except ValidationError as exc:
        msg = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise InputError(f"cannot add {name!r} to the keyring: {msg}", path=str(p)) from exc
    atomic_write_bytes(p, updated.canonical_bytes())
    return entry


def trust_in_workspace(
    root: str | os.PathLike[str],
    *,
    name: str,
    public_key_file: str,
    roles: Iterable[str],
    actor: str,
) -> TrustedKey:
    """Add a key to ``<workspace>/keyring.json`` and record the keyring's digest in the ledger."""
    from finetrail.governance.workspace import Workspace

    ws = Workspace.open(root)
    entry = add_trusted_key(
        ws.root / KEYRING_FILE, name=name, public_key_file=public_key_file, roles=roles
    )
    ws.append_event(
        KEYRING_EVENT,
        actor=actor,
        payload={
            "keyring_sha256": sha256_file(ws.root / KEYRING_FILE),
            "added": name,
            "keyid": entry.keyid,
            "roles": list(entry.roles),
        },
    )
    return entry


def check_keyring_file(root: Path, entries: list[LedgerEntry]) -> list[Finding]:
    """The workspace keyring is the one whose digest the ledger last recorded."""
    recorded = [e.payload.get("keyring_sha256") for e in entries if e.kind == KEYRING_EVENT]
    file = root / KEYRING_FILE
    if not file.is_file():
        if recorded:
            return [Finding("error", "missing", KEYRING_FILE, "recorded in the ledger but absent")]
        return []
    if not recorded:
        return [
            Finding(
                "error",
                "extra",
                KEYRING_FILE,
                "keyring not recorded in the ledger (add keys with `finetrail keys add`)",
            )
        ]
    if sha256_file(file) != recorded[-1]:
        return [
            Finding(
                "error", "modified", KEYRING_FILE, "differs from the digest the ledger recorded"
            )
        ]
    return []
