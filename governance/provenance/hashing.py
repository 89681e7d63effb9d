"""Streaming dataset digests: the file's byte SHA-256 and the Merkle root over its records.

The file digest runs in a background thread fed with large chunks (hashlib releases the GIL on
those), while the calling thread splits records and hashes leaves; memory stays flat in the
file size (a bounded queue of chunks plus the Merkle builder's O(log n) stack).

:func:`digest_line_file` is the fast path for line formats (JSONL, plain text): a record is one
non-empty line, its canonical bytes are the line without its terminator (``\\n`` or ``\\r\\n``).
It does not parse JSON; for a file without bad records it yields the same root as registration.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

from finetrail.errors import InputError
from finetrail.governance.provenance.merkle import MerkleBuilder, leaf_hashes
from finetrail.governance.provenance.proofcheck import LEAF_PREFIX

CHUNK = 4 << 20
_QUEUE_CHUNKS = 6  # at most ~24 MiB of file data in flight
DEFAULT_MAX_RECORD_BYTES = 8 << 20
# hashlib releases the GIL while hashing 2 KiB or more; records that large are hashed by two
# threads at once (smaller ones are cheaper to hash in one C-level ``map``).
_THREADED_RECORD_BYTES = 2048
_LEAF_THREADS = 2
_LEAF_SEED = hashlib.sha256(LEAF_PREFIX)


def _leaves_one_thread(records: list[bytes]) -> list[bytes]:
    out = []
    for rec in records:
        h = _LEAF_SEED.copy()
        h.update(rec)  # GIL released for large records
        out.append(h.digest())
    return out


class LeafHasher:
    """Leaf hashes of a batch of records: C-level ``map`` for small records, two threads for
    large ones."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, records: list[bytes]) -> list[bytes]:
        if len(records) < 2 * _LEAF_THREADS or sum(
            map(len, records)
        ) < _THREADED_RECORD_BYTES * len(records):
            return leaf_hashes(records)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_LEAF_THREADS, thread_name_prefix="finetrail-leaves")
        step = -(-len(records) // _LEAF_THREADS)
        parts = [records[i : i + step] for i in range(0, len(records), step)]
        return [h for res in self._pool.map(_leaves_one_thread, parts) for h in res]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class FileHasher:
    """SHA-256 of a byte stream computed in a background thread."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.size = 0
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._thread = threading.Thread(target=self._run, name="finetrail-file-sha256", daemon=True)
        self._thread.start()
        self._done = False

    def _run(self) -> None:
        update = self._h.update
        while (chunk := self._q.get()) is not None:
            update(chunk)

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._q.put(chunk)

    def hexdigest(self) -> str:
        self.close()
        return self._h.hexdigest()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._q.put(None)
            self._thread.join()


class HashingReader(io.RawIOBase):
    """A raw reader that hashes every byte it reads, in place (no copies, no thread).

    Used under a parser whose own cost dwarfs hashing; :class:`FileHasher` is for the fast
    path, where hashing is the work.
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._h = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(b)  # type: ignore[attr-defined]
        if n:
            with memoryview(b) as view:
                self._h.update(view[:n])
            self.size += n
        return int(n or 0)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


@dataclass(frozen=True)
class LineDigest:
    sha256: str
    merkle_root: str
    records: int
    size_bytes: int


def _check_sizes(parts: list[bytes], max_record_bytes: int, path: str, first_line: int) -> None:
    if parts and max(map(len, parts)) > max_record_bytes:
        at = next(i for i, part in enumerate(parts) if len(part) > max_record_bytes)
        raise InputError(
            f"line {first_line + at}: a record of {len(parts[at]):,} bytes exceeds the limit of "
            f"{max_record_bytes:,} bytes",
            path=path,
            fix="split the record, or raise the limit (--max-record-bytes)",
        )


def digest_line_file(
    path: str | os.PathLike[str],
    *,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    leaves_out: BinaryIO | None = None,
    tick: Callable[[int], None] | None = None,
) -> LineDigest:
    """File SHA-256 and Merkle root of a line-per-record file, in one streaming pass.

    ``tick`` is called with the size of each chunk read (a progress bar's ``advance``)."""
    p = str(path)
    try:
        fh = open(p, "rb", buffering=0)  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise InputError("file not found", path=p, fix="check the path") from exc
    except IsADirectoryError as exc:
        raise InputError("expected a file, found a directory", path=p) from exc
    hasher = FileHasher()
    builder = MerkleBuilder(leaves_out)
    leaves = LeafHasher()
    tail = b""
    line = 1  # the line number of the first line in ``parts`` below
    try:
        with fh:
            while chunk := fh.read(CHUNK):
                hasher.feed(chunk)
                if b"\r" in chunk or tail.endswith(b"\r"):
                    # Normalise CRLF; a CR ending the carried tail pairs with a LF starting this chunk.
                    chunk, tail = (tail + chunk).replace(b"\r\n", b"\n"), b""
                parts = chunk.split(b"\n")
                if tail:
                    parts[0] = tail + parts[0]
                tail = parts.pop()  # the unterminated rest: continued by the next chunk
                if len(tail) > max_record_bytes:
                    _check_sizes([tail], max_record_bytes, p, line + len(parts))
                _check_sizes(parts, max_record_bytes, p, line)
                builder.add_leaves(leaves(list(filter(None, parts))))
                line += len(parts)
                if tick is not None:
                    tick(len(chunk))
            if tail:
                _check_sizes([tail], max_record_bytes, p, line)
                builder.add_records([tail])
    finally:
        leaves.close()
        digest = hasher.hexdigest()
    if builder.size == 0:
        raise InputError("the dataset is empty (no records)", path=p, fix="check the file")
    return LineDigest(digest, builder.root().hex(), builder.size, hasher.size)
