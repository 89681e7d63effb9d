"""RFC 9162 proofs of :mod:`finetrail.governance.merkle_log` against a brute-force reference.

The reference below is the RFC's recursive definitions written out literally (MTH, PATH,
SUBPROOF), sharing nothing with the module but ``hashlib``.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from finetrail.governance import merkle_log as ml


def ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def ref_node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = ref_k(len(leaves))
    return ref_node(ref_mth(leaves[:k]), ref_mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


LEAVES = [ref_leaf(f"entry {i}".encode()) for i in range(64)]
SIZES = range(1, 65)


def test_hashing_matches_the_rfc_definition() -> None:
    assert ml.leaf_hash(b"x") == ref_leaf(b"x")
    assert ml.node_hash(b"a" * 32, b"b" * 32) == ref_node(b"a" * 32, b"b" * 32)
    assert ml.tree_hash([]) == ml.EMPTY_ROOT == hashlib.sha256(b"").digest()
    for n in SIZES:
        assert ml.tree_hash(LEAVES[:n]) == ref_mth(LEAVES[:n]), n


def test_inclusion_proofs_for_every_leaf_of_every_size() -> None:
    for n in SIZES:
        leaves = LEAVES[:n]
        root = ref_mth(leaves)
        for m in range(n):
            path = ml.inclusion_proof(leaves, m)
            assert path == ref_path(m, leaves), (m, n)
            assert ml.verify_inclusion(m, n, leaves[m], path, root)
            # the same path proves nothing for another leaf, index or root (the size is bound
            # to the root by the signed checkpoint, not by the path)
            assert not ml.verify_inclusion(m, n, ref_leaf(b"outsider"), path, root)
            if n > 1:
                assert not ml.verify_inclusion((m + 1) % n, n, leaves[m], path, root)
            assert not ml.verify_inclusion(m, n, leaves[m], path, ref_leaf(b"root"))


def test_consistency_proofs_for_every_pair_of_sizes() -> None:
    for n in SIZES:
        new = LEAVES[:n]
        new_root = ref_mth(new)
        for m in range(1, n + 1):
            old_root = ref_mth(LEAVES[:m])
            proof = ml.consistency_proof(new, m)
            assert proof == ref_subproof(m, new, True), (m, n)
            assert ml.verify_consistency(m, n, old_root, new_root, proof), (m, n)
            assert ml.root_from_consistency_proof(m, n, old_root, proof) == new_root


def test_tampered_consistency_proofs_are_rejected() -> None:
    rng = random.Random(9162)
    pairs = [(rng.randint(1, 64), rng.randint(1, 64)) for _ in range(300)]
    for a, b in pairs:
        m, n = min(a, b), max(a, b)
        new, old_root, new_root = LEAVES[:n], ref_mth(LEAVES[:m]), ref_mth(LEAVES[:n])
        proof = ml.consistency_proof(new, m)
        for i in range(len(proof)):  # flip one byte of each element
            bad = list(proof)
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            assert not ml.verify_consistency(m, n, old_root, new_root, bad), (m, n, i)
        if proof:
            assert not ml.verify_consistency(m, n, old_root, new_root, proof[:-1])
            assert not ml.verify_consistency(m, n, old_root, new_root, [*proof, proof[0]])
        # a rewritten history: the old tree differs in one leaf
        forged = list(LEAVES[:n])
        forged[rng.randrange(m)] = ref_leaf(b"rewritten")
        assert not ml.verify_consistency(m, n, ref_mth(forged[:m]), new_root, proof)
        assert not ml.verify_consistency(m, n, old_root, ref_mth(forged), proof)
        if m < n:  # sizes swapped
            assert not ml.verify_consistency(n, m, new_root, old_root, proof)


def test_equal_and_empty_trees() -> None:
    root = ref_mth(LEAVES[:5])
    assert ml.verify_consistency(5, 5, root, root, [])
    assert not ml.verify_consistency(5, 5, root, root, [root])
    assert not ml.verify_consistency(5, 5, root, ref_mth(LEAVES[:4]), [])
    assert ml.verify_consistency(0, 5, ml.EMPTY_ROOT, root, [])
    assert not ml.verify_consistency(0, 5, root, root, [])


@pytest.mark.parametrize(("leaves", "arg"), [(LEAVES[:3], 3), (LEAVES[:3], -1)])
def test_out_of_range_proof_requests_are_refused(leaves: list[bytes], arg: int) -> None:
    with pytest.raises(ValueError, match="outside a tree of 3 leaves"):
        ml.inclusion_proof(leaves, arg)


def test_consistency_request_beyond_the_tree_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot prove a tree of 4 leaves consistent with 3"):
        ml.consistency_proof(LEAVES[:3], 4)
