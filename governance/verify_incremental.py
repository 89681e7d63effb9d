"""What a repeated ``verify`` of one workspace may skip: :class:`VerifyCache`.

``verify_workspace(root, cache=c)`` gives the report a run without the cache gives; the cache
only lets it skip work whose inputs are provably the ones it saw before. It fails closed: when
it cannot tell, it recomputes.

- **Ledger lines.** The SHA-256 of the ledger's bytes up to the end of the last complete line
  checked before is compared with the file's bytes now (one pass of SHA-256, no parsing). When
  they are equal, only the lines after them are parsed and checked, resuming the chain where it
  stood (:func:`finetrail.governance.ledger.scan_bytes`); any other change to those bytes (an old
  entry rewritten, removed, reordered, the file cut) scans the whole ledger again.
- **Log checkpoints.** The result of checking a stored checkpoint against the log (the RFC 9162
  consistency proof from it to the current log, :func:`finetrail.governance.checkpoint.check_against`)
  and between two consecutive checkpoints depends only on the first ``size`` entry digests; it
  is reused while the ledger's digests extend the ones it was computed over, so a write checks
  the new checkpoint's proof and the proof from the previous one to it. Leaf hashes are kept the
  same way.
- **Files.** A file's SHA-256 is reused while its device, inode, size, modification time and
  change time (``st_ctime_ns``, which no unprivileged process can set back) are those it had
  when it was hashed.
- **Signatures.** An Ed25519 verification is a function of the public key, the signature and the
  message; its result is remembered under those (the message by its SHA-256). Which key is trusted
  for what, validity windows and revocation are checked again on every run.

Everything else verify checks (the manifest, workspace.json, reviews, attestations, dataset
lineage, trust roles, the dossier's digests) runs in full every time.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetrail.errors import InputError
from finetrail.governance.ledger import LedgerScan, ScanState, scan_bytes, scan_ledger
from finetrail.governance.trust import TrustRoot

__all__ = ["VerifyCache"]

MAX_SIGNATURES = 200_000  # remembered verifications (about 30 MB at most)
MAX_FILES = 100_000


@dataclass(frozen=True)
class _LedgerSeen:
    path: str
    end: int  # byte offset after the last complete line scanned
    sha256: bytes  # of the ledger's bytes [0, end)
    state: ScanState


@dataclass(frozen=True)
class _MemoTrustRoot(TrustRoot):
    """A trust root whose signature checks remember their results (keyed by the public key)."""

    memo: dict[tuple[str, bytes, bytes], bool] = field(
        default_factory=dict, compare=False, repr=False
    )

    def verify(self, *, keyid: str, signature: bytes, message: bytes) -> bool:
        key = self.lookup(keyid)
        if key is None:
            return False
        k = (key.public_key_b64, bytes(signature), hashlib.sha256(message).digest())
        hit = self.memo.get(k)
        if hit is None:
            hit = super().verify(keyid=keyid, signature=signature, message=message)
            if len(self.memo) >= MAX_SIGNATURES:
                self.memo.clear()
            self.memo[k] = hit
        return hit


class VerifyCache:
    """One workspace's verify state across runs (thread-safe: runs sharing it take turns, see
    :attr:`lock`)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._ledger: _LedgerSeen | None = None
        self._files: dict[tuple[Any, ...], str] = {}
        self._signatures: dict[tuple[str, bytes, bytes], bool] = {}
        self._memo_base: list[str] = []
        self._memo: dict[tuple[Any, ...], Any] = {}
        self._leaf_digests: list[str] = []
        self._leaves: list[bytes] = []
        self.stats = {"lines_reused": 0, "lines_scanned": 0, "full_scans": 0}

    # -- the ledger -------------------------------------------------------------------------------
    def scan_ledger(self, path: Path) -> LedgerScan:
        """:func:`scan_ledger`'s result, parsing only lines after bytes scanned before."""
        from finetrail.governance.io import read_bytes_strict

        with self.lock:
            try:
                raw = read_bytes_strict(path)
            except InputError:
                self._ledger = None
                return scan_ledger(path)  # says it is missing or unreadable
            end = raw.rfind(b"\n") + 1
            seen = self._ledger
            resume = None
            if (
                seen is not None
                and seen.path == str(path)
                and seen.end <= end
                and hashlib.sha256(memoryview(raw)[: seen.end]).digest() == seen.sha256
            ):
                resume = seen.state
            scan = scan_bytes(raw, name=path.name, resume=resume)
            if resume is None:
                self.stats["full_scans"] += 1
            self.stats["lines_reused"] += resume.lines if resume else 0
            self.stats["lines_scanned"] += scan.lines - (resume.lines if resume else 0)
            self._ledger = (
                _LedgerSeen(
                    str(path), end, hashlib.sha256(memoryview(raw)[:end]).digest(), scan.state
                )
                if scan.state is not None
                else None
            )
            return scan

    # -- checkpoints ------------------------------------------------------------------------------
    def checkpoint_memo(self, digests: list[str]) -> dict[tuple[Any, ...], Any]:
        """Results over the first entries of the log, valid while ``digests`` extends the
        digests they were computed over (otherwise emptied)."""
        with self.lock:
            base = self._memo_base
            if len(base) > len(digests) or digests[: len(base)] != base:
                self._memo = {}
            self._memo_base = list(digests)
            return self._memo

    def leaves(self, digests: list[str]) -> list[bytes]:
        """``checkpoint.leaves_of(digests)``, hashing only digests not seen before."""
        from finetrail.governance.checkpoint import leaves_of

        with self.lock:
            known = self._leaf_digests
            if len(known) > len(digests) or digests[: len(known)] != known:
                self._leaf_digests, self._leaves = [], []
            done = len(self._leaf_digests)
            self._leaves = self._leaves + leaves_of(digests[done:])
            self._leaf_digests = list(digests)
            return self._leaves

    # -- files ------------------------------------------------------------------------------------
    def sha256_file(self, path: Path) -> str:
        """The file's SHA-256, hashed again unless its inode, size, mtime and ctime are those
        it had when it was last hashed."""
        from finetrail.governance.io import sha256_file

        try:
            st = os.stat(path)
        except OSError:
            return sha256_file(path)  # raises the reader's own error
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self.lock:
            hit = self._files.get(key)
        if hit is not None:
            return hit
        digest = sha256_file(path)
        with self.lock:
            if len(self._files) >= MAX_FILES:
                self._files.clear()
            self._files[key] = digest
        return digest

    # -- signatures -------------------------------------------------------------------------------
    def trust_root(self, trust: TrustRoot | None) -> TrustRoot | None:
        """``trust`` with remembered signature checks (the same keys, roles and windows)."""
        if trust is None:
            return None
        return _MemoTrustRoot(
            path=trust.path,
            sha256=trust.sha256,
            file=trust.file,
            keys=trust.keys,
            memo=self._signatures,
        )
