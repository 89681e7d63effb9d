"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs. Standard library only.

The one home of the Merkle arithmetic finetrail uses: dataset inclusion proofs
(:mod:`finetrail.governance.provenance`) and the ledger's log checkpoints
(:mod:`finetrail.governance.checkpoint`).

- ``leaf = SHA-256(0x00 || leaf bytes)``, ``node = SHA-256(0x01 || left || right)``; a tree of
  ``n`` leaves splits at ``k``, the largest power of two smaller than ``n`` (RFC 9162 2.1.1);
- inclusion proofs: generation ``PATH(m, D[n])`` (2.1.3.1), verification (2.1.3.2);
- consistency proofs: generation ``PROOF(m, D[n])`` / ``SUBPROOF`` (2.1.4.1), verification
  (2.1.4.2).

Functions that take ``leaves`` take the leaf *hashes* (32 bytes each), not the records.
This file imports nothing outside the standard library so that it can be copied beside
``provenance/proofcheck.py`` and run by anyone who was handed a proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_consistency_proof",
    "root_from_inclusion_path",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(record: bytes) -> bytes:
    """RFC 9162 leaf hash of one leaf's bytes."""
    return hashlib.sha256(LEAF_PREFIX + record).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """``MTH(D[n])`` over leaf hashes, without recursion (a binary-counter stack)."""
    if not leaves:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        size, h = 1, leaf
        while stack and stack[-1][0] == size:
            _, left = stack.pop()
            size, h = 2 * size, node_hash(left, h)
        stack.append((size, h))
    acc = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        acc = node_hash(left, acc)
    return acc


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """``PATH(m, D[n])``: the audit path of leaf ``index``, from the leaf up."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf {index} is outside a tree of {n} leaves")
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(tree_hash(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(tree_hash(leaves[lo : lo + k]))
            lo += k
    path.reverse()
    return path


def root_from_inclusion_path(
    leaf_index: int, tree_size: int, leaf: bytes, path: Sequence[bytes]
) -> bytes | None:
    """The root that ``path`` leads to from ``leaf`` (RFC 9162 2.1.3.2), or None if malformed."""
    if not 0 <= leaf_index < tree_size:
        return None
    fn, sn = leaf_index, tree_size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """True if ``leaf`` is at ``leaf_index`` in the tree of ``tree_size`` leaves with ``root``."""
    got = root_from_inclusion_path(leaf_index, tree_size, leaf, path)
    return got is not None and got == root


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """``PROOF(m, D[n])`` (RFC 9162 2.1.4.1): the tree of the first ``old_size`` leaves is a
    prefix of the tree of all ``leaves``. Empty when ``old_size`` is 0 or ``len(leaves)``."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"cannot prove a tree of {old_size} leaves consistent with {n}")
    if old_size in (0, n):
        return []
    out: list[bytes] = []
    # SUBPROOF(m, D[lo:hi], b), iteratively: descend, noting the sibling subtrees.
    m, lo, hi, complete = old_size, 0, n, True
    while True:
        if m == hi - lo:
            if not complete:
                out.append(tree_hash(leaves[lo:hi]))
            break
        k = _split(hi - lo)
        if m <= k:
            out.append(tree_hash(leaves[lo + k : hi]))
            hi = lo + k
        else:
            out.append(tree_hash(leaves[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    out.reverse()
    return out


def root_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> bytes | None:
    """The new root a consistency proof leads to from ``old_root`` (RFC 9162 2.1.4.2), or None
    when the proof does not show ``old_root`` to be the root of the first ``old_size`` leaves."""
    if not 0 < old_size <= new_size:
        return None
    if old_size == new_size:
        return old_root if not proof else None
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return None
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root:
        return None
    return sr


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True if the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``).

    A tree of 0 leaves is a prefix of every tree (with an empty proof)."""
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT and new_size >= 0
    got = root_from_consistency_proof(old_size, new_size, old_root, proof)
    return got is not None and got == new_root
