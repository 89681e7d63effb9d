"""Merkle trees (RFC 6962), inclusion proofs, streaming digests and the standalone checker."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finetrail.cli import main
from finetrail.errors import InputError
from finetrail.governance import merkle_log
from finetrail.governance.provenance import hashing, merkle, proofcheck

H = hashlib.sha256


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, written from the RFC's recursive definition."""
    n = len(leaves)
    if n == 0:
        return H(b"").digest()
    if n == 1:
        return H(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return H(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*reference_path(m, leaves[:k]), reference_root(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), reference_root(leaves[:k])]


def test_rfc6962_known_vector() -> None:
    # Certificate Transparency's test vector: the root of the empty tree, and of one empty leaf.
    assert merkle.MerkleBuilder().root().hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    b = merkle.MerkleBuilder()
    b.add_records([b""])
    assert b.root().hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.binary(max_size=12), min_size=1, max_size=70),
    cuts=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=20),
)
def test_builder_matches_rfc_definition_for_any_batching(
    records: list[bytes], cuts: list[int]
) -> None:
    b = merkle.MerkleBuilder()
    i = 0
    for cut in cuts * 20:
        if i >= len(records):
            break
        b.add_records(records[i : i + cut])
        i += cut
    b.add_records(records[i:])
    assert b.size == len(records)
    assert b.root() == reference_root(records)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 100])
def test_every_leaf_has_the_rfc_audit_path_and_verifies(tmp_path: Path, n: int) -> None:
    records = [f"record {i}".encode() for i in range(n)]
    leaves = tmp_path / "leaves"
    leaves.write_bytes(b"".join(merkle.leaf_hashes(records)))
    root = reference_root(records)
    assert merkle.root_of_leaves_file(leaves) == (root, n)
    for m in range(n):
        leaf, path, size = merkle.inclusion_path(leaves, m)
        assert path == reference_path(m, records)
        assert proofcheck.verify_inclusion(m, size, leaf, path, root)
        if n > 1:  # the same path does not prove the leaf at another position
            assert not proofcheck.verify_inclusion((m + 1) % n, size, leaf, path, root)
        outsider = merkle.leaf_hash(b"not in the set")
        assert not proofcheck.verify_inclusion(m, size, outsider, path, root)


def test_find_leaf_and_out_of_range(tmp_path: Path) -> None:
    records = [b"a", b"b", b"c"]
    leaves = tmp_path / "leaves"
    leaves.write_bytes(b"".join(merkle.leaf_hashes(records)))
    assert merkle.find_leaf(leaves, merkle.leaf_hash(b"c")) == 2
    assert merkle.find_leaf(leaves, merkle.leaf_hash(b"d")) is None
    with pytest.raises(InputError, match="record 3 is out of range: the dataset has 3 records"):
        merkle.inclusion_path(leaves, 3)


@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 20])
def test_line_digest_handles_chunk_boundaries_and_crlf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(hashing, "CHUNK", chunk)
    records = [b'{"a": 1}', b"second line", b"x" * 40, b"tab\there", b"last"]
    data = b'{"a": 1}\r\nsecond line\n\n' + b"x" * 40 + b"\r\ntab\there\nlast"
    path = tmp_path / "d.jsonl"
    path.write_bytes(data)
    d = hashing.digest_line_file(path)
    assert d.sha256 == H(data).hexdigest()
    assert d.records == len(records)
    assert d.merkle_root == reference_root(records).hex()
    assert d.size_bytes == len(data)


def test_line_digest_refuses_an_oversized_record(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"ok\n" + b"y" * 5000 + b"\nok\n")
    with pytest.raises(
        InputError, match=r"line 2: a record of 5,000 bytes exceeds the limit of 1,000 bytes"
    ):
        hashing.digest_line_file(path, max_record_bytes=1000)


def test_checker_rejects_malformed_and_tampered_proofs() -> None:
    records = [b"r0", b"r1", b"r2", b"r3", b"r4"]
    root = reference_root(records).hex()
    proof = {
        "format": proofcheck.PROOF_FORMAT,
        "merkle_root": root,
        "tree_size": 5,
        "leaf_index": 4,
        "leaf_hash": merkle.leaf_hash(b"r4").hex(),
        "audit_path": [p.hex() for p in reference_path(4, records)],
    }
    assert proofcheck.check_proof(proof, root=root) == (True, [])
    assert proofcheck.check_proof(proof, root=root, record=b"r4\n")[0]
    ok, problems = proofcheck.check_proof(proof, root=root, record=b"r3")
    assert not ok and problems == ["the record's bytes do not hash to the proof's leaf_hash"]
    forged = {**proof, "audit_path": [merkle.leaf_hash(b"r0").hex()]}
    assert not proofcheck.check_proof(forged, root=root)[0]
    moved = {**proof, "leaf_index": 3}
    assert not proofcheck.check_proof(moved, root=root)[0]
    other_root = reference_root([*records, b"r5"]).hex()
    ok, problems = proofcheck.check_proof(proof, root=other_root)
    assert not ok and "the proof names a different Merkle root than the trusted one" in problems
    ok, problems = proofcheck.check_proof(
        {**proof, "tree_size": "5", "audit_path": ["zz"]}, root=root
    )
    assert not ok and problems == [
        "tree_size must be a positive integer",
        "audit_path must be a list of 64-digit hex SHA-256 values",
    ]


def test_checker_runs_standalone_with_the_standard_library_only(tmp_path: Path) -> None:
    records = [b"alpha", b"beta", b"gamma"]
    root = reference_root(records).hex()
    proof = {
        "format": proofcheck.PROOF_FORMAT,
        "tree_size": 3,
        "leaf_index": 1,
        "leaf_hash": merkle.leaf_hash(b"beta").hex(),
        "audit_path": [p.hex() for p in reference_path(1, records)],
    }
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    # A copy of the checker and the Merkle module beside it, run in isolated mode (no
    # site-packages, no finetrail).
    checker = tmp_path / "proofcheck.py"
    checker.write_text(Path(proofcheck.__file__).read_text())
    (tmp_path / "merkle_log.py").write_text(Path(merkle_log.__file__).read_text())
    code = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    args = [sys.executable, "-I", "-S", "-c", code, str(checker), str(tmp_path / "proof.json")]
    ok = subprocess.run([*args, "--root", root], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "proof: VALID"
    bad = subprocess.run([*args, "--root", "0" * 64], capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "the audit path does not lead from the leaf to the trusted root" in bad.stdout


def test_digest_command_matches_plain_sha256(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.txt"
    path.write_text("one\ntwo\n\nthree\n", encoding="utf-8")
    assert main(["data", "digest", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "sha256": H(path.read_bytes()).hexdigest(),
        "merkle_root": reference_root([b"one", b"two", b"three"]).hex(),
        "records": 3,
    }
