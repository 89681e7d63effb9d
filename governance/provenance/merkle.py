"""RFC 6962 Merkle trees over dataset records: the root, inclusion proofs, and leaf files.

Leaves are ``SHA-256(0x00 || record bytes)``; interior nodes ``SHA-256(0x01 || left || right)``;
a tree of ``n`` leaves splits at the largest power of two below ``n`` (RFC 6962 section 2.1).

:class:`MerkleBuilder` takes leaves in batches and keeps only the roots of the perfect subtrees
it has completed (one per set bit of the leaf count), so memory stays flat in the dataset size.
Batches are hashed with ``map`` over hashlib objects (no Python frame per node), and the leaf
hashes can be streamed to a file (32 bytes each) from which proofs are made later without the
dataset.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from operator import methodcaller
from typing import BinaryIO

from finetrail.errors import InputError
from finetrail.governance.merkle_log import LEAF_PREFIX, NODE_PREFIX, leaf_hash, node_hash
from finetrail.governance.provenance.proofcheck import PROOF_FORMAT

HASH_SIZE = 32
_sha256 = hashlib.sha256
_digest = methodcaller("digest")
_LEAF_ADD = LEAF_PREFIX.__add__
_NODE_ADD = NODE_PREFIX.__add__
_READ_LEAVES = 1 << 16  # leaves per read when streaming a leaves file (2 MiB)

__all__ = [
    "PROOF_FORMAT",
    "MerkleBuilder",
    "find_leaf",
    "inclusion_path",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root_of_leaves_file",
]


def leaf_hashes(records: Sequence[bytes]) -> list[bytes]:
    """Leaf hashes of many records at once."""
    return list(map(_digest, map(_sha256, map(_LEAF_ADD, records))))


def _parent_level(level: Sequence[bytes]) -> list[bytes]:
    pairs = map(bytes.__add__, level[0::2], level[1::2])
    return list(map(_digest, map(_sha256, map(_NODE_ADD, pairs))))


def _perfect_root(level: Sequence[bytes]) -> bytes:
    """Root of a perfect subtree (``len(level)`` is a power of two)."""
    nodes = list(level)
    while len(nodes) > 1:
        nodes = _parent_level(nodes)
    return nodes[0]


class MerkleBuilder:
    """Incremental RFC 6962 tree hash; optionally writes every leaf hash to ``leaves_out``."""

    def __init__(self, leaves_out: BinaryIO | None = None) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (size, root) of completed perfect subtrees
        self.size = 0
        self._out = leaves_out

    def add_records(self, records: Sequence[bytes]) -> None:
        self.add_leaves(leaf_hashes(records))

    def add_leaves(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            return
        if self._out is not None:
            self._out.write(b"".join(leaves))
        i, m = 0, len(leaves)
        stack = self._stack
        while i < m:
            # The largest block that keeps the tree's shape: aligned to the current size and
            # no longer than what is left. Block roots then merge like a binary counter.
            block = 1 << ((m - i).bit_length() - 1)
            if self.size:
                block = min(block, self.size & -self.size)
            root = leaves[i] if block == 1 else _perfect_root(leaves[i : i + block])
            stack.append((block, root))
            while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
                size, right = stack.pop()
                _, left = stack.pop()
                stack.append((2 * size, node_hash(left, right)))
            i += block
            self.size += block

    def root(self) -> bytes:
        """The Merkle tree hash of all leaves added so far (RFC 6962 MTH)."""
        if not self._stack:
            return _sha256(b"").digest()
        acc = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            acc = node_hash(left, acc)
        return acc


# -- leaves files ----------------------------------------------------------------------------
def _leaf_count(path: str | os.PathLike[str]) -> int:
    size = os.path.getsize(path)
    if size % HASH_SIZE:
        raise InputError(
            "the leaves file is not a whole number of 32-byte hashes",
            path=str(path),
            fix="run `finetrail verify` on the workspace; the artifact was altered",
        )
    return size // HASH_SIZE


def _iter_leaves(fh: BinaryIO, lo: int, hi: int) -> Iterator[list[bytes]]:
    fh.seek(lo * HASH_SIZE)
    pos = lo
    while pos < hi:
        n = min(_READ_LEAVES, hi - pos)
        data = fh.read(n * HASH_SIZE)
        if len(data) != n * HASH_SIZE:
            raise InputError("the leaves file ended early", path=getattr(fh, "name", None))
        yield [data[k : k + HASH_SIZE] for k in range(0, len(data), HASH_SIZE)]
        pos += n


def _subtree_root(fh: BinaryIO, lo: int, hi: int) -> bytes:
    builder = MerkleBuilder()
    for batch in _iter_leaves(fh, lo, hi):
        builder.add_leaves(batch)
    return builder.root()


def root_of_leaves_file(path: str | os.PathLike[str]) -> tuple[bytes, int]:
    """(Merkle root, leaf count) of a leaves file."""
    n = _leaf_count(path)
    with open(path, "rb") as fh:
        return _subtree_root(fh, 0, n), n


def inclusion_path(path: str | os.PathLike[str], index: int) -> tuple[bytes, list[bytes], int]:
    """(leaf hash, audit path, tree size) for leaf ``index`` of a leaves file (RFC 6962 PATH)."""
    n = _leaf_count(path)
    if not 0 <= index < n:
        raise InputError(
            f"record {index} is out of range: the dataset has {n} records (0 to {n - 1})",
            field="record",
        )
    with open(path, "rb") as fh:
        fh.seek(index * HASH_SIZE)
        leaf = fh.read(HASH_SIZE)
        audit: list[bytes] = []
        lo, hi = 0, n
        while hi - lo > 1:
            k = 1 << ((hi - lo - 1).bit_length() - 1)  # largest power of two below hi - lo
            if index < lo + k:
                audit.append(_subtree_root(fh, lo + k, hi))
                hi = lo + k
            else:
                audit.append(_subtree_root(fh, lo, lo + k))
                lo = lo + k
    audit.reverse()  # RFC order: from the leaf up
    return leaf, audit, n


def find_leaf(path: str | os.PathLike[str], leaf: bytes) -> int | None:
    """Index of the first leaf equal to ``leaf``, or None."""
    n = _leaf_count(path)
    with open(path, "rb") as fh:
        base = 0
        for batch in _iter_leaves(fh, 0, n):
            try:
                return base + batch.index(leaf)
            except ValueError:
                base += len(batch)
    return None
