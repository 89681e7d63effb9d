"""Check a finetrail record inclusion proof. Standalone: Python standard library only.

This file and ``governance/merkle_log.py`` (the hashing and the RFC 9162 proof arithmetic,
also standard library only) can be copied into one folder and run
(``python proofcheck.py PROOF.json --root HEX``) by anyone who was handed a proof, without
installing finetrail.

Hashing follows RFC 6962 / RFC 9162 (Certificate Transparency), with SHA-256 and domain
separation: ``leaf = SHA-256(0x00 || record bytes)``, ``node = SHA-256(0x01 || left || right)``.
The inclusion check is RFC 9162 section 2.1.3.2 (:mod:`finetrail.governance.merkle_log`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

try:
    from finetrail.governance.merkle_log import (
        LEAF_PREFIX,
        NODE_PREFIX,
        leaf_hash,
        node_hash,
        root_from_inclusion_path,
        verify_inclusion,
    )
except ImportError:  # pragma: no cover - copied out of finetrail beside merkle_log.py
    import importlib.util
    import os

    _here = os.path.dirname(os.path.abspath(__file__))
    _spec = importlib.util.spec_from_file_location(
        "merkle_log", os.path.join(_here, "merkle_log.py")
    )
    if _spec is None or _spec.loader is None:
        raise
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    LEAF_PREFIX, NODE_PREFIX = _mod.LEAF_PREFIX, _mod.NODE_PREFIX
    leaf_hash, node_hash = _mod.leaf_hash, _mod.node_hash
    root_from_inclusion_path, verify_inclusion = (
        _mod.root_from_inclusion_path,
        _mod.verify_inclusion,
    )

__all__ = [
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "PROOF_FORMAT",
    "check_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_path",
    "strip_terminator",
    "verify_inclusion",
]

PROOF_FORMAT = "finetrail.merkle-inclusion.v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def strip_terminator(record: bytes) -> bytes:
    """Drop one trailing line terminator (records never contain one; saved files often do)."""
    if record.endswith(b"\r\n"):
        return record[:-2]
    return record[:-1] if record.endswith(b"\n") else record


def check_proof(proof: Any, *, root: str, record: bytes | None = None) -> tuple[bool, list[str]]:
    """Check a proof document against a trusted root; returns (valid, problems).

    ``root`` must come from a trusted place (the dataset's evidence record or the dossier),
    never from the proof itself. With ``record``, the leaf is recomputed from the record's bytes.
    """
    problems: list[str] = []
    if not isinstance(proof, dict):
        return False, ["the proof is not a JSON object"]
    if proof.get("format") != PROOF_FORMAT:
        problems.append(f"format is {proof.get('format')!r}, expected {PROOF_FORMAT!r}")
    root = root.strip().lower()
    if not _HEX64.fullmatch(root):
        problems.append("the trusted root is not a 64-digit hex SHA-256")
    index, size = proof.get("leaf_index"), proof.get("tree_size")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        problems.append("leaf_index must be a non-negative integer")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        problems.append("tree_size must be a positive integer")
    leaf_hex = proof.get("leaf_hash")
    if not isinstance(leaf_hex, str) or not _HEX64.fullmatch(leaf_hex):
        problems.append("leaf_hash must be a 64-digit hex SHA-256")
    path = proof.get("audit_path")
    if not isinstance(path, list) or not all(
        isinstance(p, str) and _HEX64.fullmatch(p) for p in path
    ):
        problems.append("audit_path must be a list of 64-digit hex SHA-256 values")
    if problems:
        return False, problems
    assert isinstance(index, int) and isinstance(size, int) and isinstance(path, list)
    assert isinstance(leaf_hex, str)
    claimed_root = proof.get("merkle_root")
    if claimed_root is not None and claimed_root != root:
        problems.append("the proof names a different Merkle root than the trusted one")
    if record is not None and leaf_hash(strip_terminator(record)).hex() != leaf_hex:
        problems.append("the record's bytes do not hash to the proof's leaf_hash")
    if not verify_inclusion(
        index, size, bytes.fromhex(leaf_hex), [bytes.fromhex(p) for p in path], bytes.fromhex(root)
    ):
        problems.append("the audit path does not lead from the leaf to the trusted root")
    return not problems, problems


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    import argparse

    ap = argparse.ArgumentParser(description="Check a finetrail record inclusion proof.")
    ap.add_argument("proof", help="the proof JSON file")
    ap.add_argument("--root", required=True, help="the trusted Merkle root (hex)")
    ap.add_argument("--record", help="a file holding the record's exact bytes")
    args = ap.parse_args(argv)
    with open(args.proof, encoding="utf-8") as fh:
        proof = json.load(fh)
    record = None
    if args.record:
        with open(args.record, "rb") as fh:
            record = fh.read()
    ok, problems = check_proof(proof, root=args.root, record=record)
    print("proof: VALID" if ok else "proof: INVALID\n" + "\n".join(f"  {p}" for p in problems))
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
