"""Ed25519 keys: generate, PEM load/save, key ids, signature checks (``cryptography``).

Shared by the gate (attestation signing) and reviews (signed sign-off). A key's id is the
SHA-256 of its raw 32-byte public key; private keys are PKCS#8 PEM, public keys
SubjectPublicKeyInfo PEM.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from finetrail.errors import InputError
from finetrail.governance.io import sha256_bytes

__all__ = [
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "generate_key",
    "keyid_of",
    "load_private_key",
    "load_public_key",
    "private_pem",
    "public_b64",
    "public_from_b64",
    "public_pem",
    "public_raw",
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
