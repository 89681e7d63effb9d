"""Ed25519 keys: generate, PEM load/save, key ids, signature checks (``cryptography``).

Shared by the gate (attestation signing), reviews (signed sign-off) and every ledger write: a
command signs its ledger entries and the log checkpoint with the key :func:`active_signer`
returns (:func:`signing_with`, or the PEM file ``$FINETRAIL_LEDGER_KEY`` names); without one it
may write unsigned entries only in development mode (:func:`development_mode`, or
``$FINETRAIL_DEV_UNSIGNED=1``). A key's id is the
SHA-256 of its raw 32-byte public key; private keys are PKCS#8 PEM, public keys
SubjectPublicKeyInfo PEM.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from finetrail.errors import InputError
from finetrail.governance.io import sha256_bytes

__all__ = [
    "DEV_UNSIGNED_ENV",
    "LEDGER_KEY_ENV",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "EntrySigner",
    "active_signer",
    "dev_unsigned",
    "development_mode",
    "generate_key",
    "keyid_of",
    "load_private_key",
    "load_public_key",
    "private_pem",
    "public_b64",
    "public_from_b64",
    "public_pem",
    "public_raw",
    "signing_by_role",
    "signing_with",
    "verify_signature",
]


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keyid_of(key: Ed25519PublicKey) -> str:
    return sha256_bytes(public_raw(key))


def public_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_raw(key)).decode("ascii")


def public_from_b64(text: str) -> Ed25519PublicKey:
    raw = base64.b64decode(text, validate=True)
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(
            "key file not found",
            path=str(p),
            fix="create one with `finetrail keys generate --reviewer NAME`",
        ) from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(
            "not an unencrypted PEM private key",
            path=str(p),
            why=str(exc).split("\n")[0],
            fix="use the .key file written by `finetrail keys generate`",
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError("not an Ed25519 private key", path=str(p))
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("public key file not found", path=str(p)) from exc
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise InputError("not a PEM public key", path=str(p)) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InputError("not an Ed25519 public key", path=str(p))
    return key


def verify_signature(public_key_b64: str, signature: bytes, message: bytes) -> bool:
    try:
        public_from_b64(public_key_b64).verify(signature, message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


# -- the key that signs a command's ledger entries and checkpoints ---------------------------------
DEV_UNSIGNED_ENV = "FINETRAIL_DEV_UNSIGNED"
LEDGER_KEY_ENV = "FINETRAIL_LEDGER_KEY"


@dataclass(frozen=True)
class EntrySigner:
    """The Ed25519 key a command signs its ledger entries and log checkpoints with."""

    key: Ed25519PrivateKey
    keyid: str

    @classmethod
    def of(cls, key: Ed25519PrivateKey) -> EntrySigner:
        return cls(key, keyid_of(key.public_key()))

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


_SIGNER: ContextVar[EntrySigner | dict[str, EntrySigner] | None] = ContextVar(
    "finetrail_entry_signer", default=None
)
_DEV: ContextVar[bool | None] = ContextVar("finetrail_dev_unsigned", default=None)


@contextmanager
def signing_with(key: Ed25519PrivateKey | None) -> Iterator[EntrySigner | None]:
    """Sign every ledger entry and checkpoint written in the block with ``key``."""
    signer = EntrySigner.of(key) if key is not None else None
    token = _SIGNER.set(signer)
    try:
        yield signer
    finally:
        _SIGNER.reset(token)


@contextmanager
def signing_by_role(keys: dict[str, Ed25519PrivateKey]) -> Iterator[None]:
    """Sign each entry with the key of its event's role (``training``, ``probes``, ``gate``,
    ``reviewer``: :func:`finetrail.governance.trust.event_role`), for a job that holds several
    role keys; an entry whose role has no key here is refused unless in development mode."""
    token = _SIGNER.set({role: EntrySigner.of(k) for role, k in keys.items()})
    try:
        yield
    finally:
        _SIGNER.reset(token)


@contextmanager
def development_mode(enabled: bool = True) -> Iterator[None]:
    """Allow (``True``) or refuse (``False``) unsigned ledger entries in the block."""
    token = _DEV.set(enabled)
    try:
        yield
    finally:
        _DEV.reset(token)


def active_signer(kind: str | None = None) -> EntrySigner | None:
    """The key that signs an entry of ``kind``: set by :func:`signing_with` (or, by role,
    :func:`signing_by_role`), else the one ``$FINETRAIL_LEDGER_KEY`` names."""
    signer = _SIGNER.get()
    if isinstance(signer, dict):
        from finetrail.governance.trust import ANY_ROLE_EVENTS, event_role

        if kind in ANY_ROLE_EVENTS:  # a repair: whichever key the job holds
            return next(iter(signer.values()), None)
        return signer.get(event_role(kind or ""))
    if signer is not None:
        return signer
    path = os.environ.get(LEDGER_KEY_ENV, "").strip()
    return EntrySigner.of(load_private_key(path)) if path else None


def dev_unsigned() -> bool:
    """Whether unsigned ledger entries may be written: :func:`development_mode`, else
    ``$FINETRAIL_DEV_UNSIGNED=1`` (the explicit development mode; ``verify`` warns about every
    unsigned entry and the shipped policy packs fail them)."""
    flag = _DEV.get()
    if flag is not None:
        return flag
    return os.environ.get(DEV_UNSIGNED_ENV, "").strip() == "1"
