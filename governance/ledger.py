"""The append-only, hash-chained ledger (``ledger.jsonl``).

Each line is one :class:`~finetrail.governance.evidence.LedgerEntry` in canonical JSON. An entry
carries the digest of its predecessor, so removing, reordering, duplicating or editing a line
breaks the chain. Appends take an exclusive lock, write one line, flush and fsync. A crash in the
middle of an append can leave at most one torn (unterminated) last line: readers ignore it and
report it, and the next append cuts it off before writing (recording that it did).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from finetrail.errors import InputError
from finetrail.governance import clock
from finetrail.governance.evidence.workspace import GENESIS, LedgerEntry
from finetrail.governance.findings import Finding
from finetrail.governance.io import (
    canonical_json,
    open_regular,
    os_error,
    read_bytes_strict,
    sha256_bytes,
)
from finetrail.governance.locking import file_lock

Signer = Callable[[bytes], bytes]
LEDGER_NAME = "ledger.jsonl"


def payload_digest(payload: Mapping[str, Any]) -> str:
    return sha256_bytes(canonical_json(dict(payload)))


_PAYLOAD_KEY = b'"payload":'


def payload_bytes_in(canonical_line: bytes, digest: str) -> bytes:
    """The canonical JSON of an entry's payload, cut from the entry's canonical line.

    Canonical JSON sorts keys and has no whitespace, so the payload object appears in the line
    byte for byte as it would alone. It starts after the first ``"payload":`` (the members before
    it, ``actor``, ``digest``, ``finetrail_version`` and ``kind``, are strings, and a JSON string
    cannot hold an unescaped quote) and ends before the last ``,"payload_digest":"<digest>"`` (the
    members after it cannot hold that either). Saves serialising every payload a second time.
    """
    start = canonical_line.find(_PAYLOAD_KEY)
    end = canonical_line.rfind(b',"payload_digest":"' + digest.encode() + b'"')
    if start == -1 or end == -1:
        return b""  # no digest can match: reported as a payload mismatch
    return canonical_line[start + len(_PAYLOAD_KEY) : end] + b"\n"


@dataclass
class LedgerScan:
    """What was read from a ledger file: complete entries and any problems found while parsing."""

    entries: list[LedgerEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    torn_tail_bytes: int = 0
    lines: int = 0
    # where the chain stands after the last complete line (a later scan of the same bytes plus
    # appended lines resumes from it: :func:`scan_bytes`)
    state: ScanState | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ScanState:
    """The chain after ``lines`` complete lines: the next ``prev``, the next sequence number,
    the digests seen (digest -> line) and the findings and entries of those lines."""

    lines: int
    prev: str
    expected_seq: int
    seen: Mapping[str, int]
    entries: tuple[LedgerEntry, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Tail:
    """Where the next entry goes: its sequence number, its ``prev``, and the byte offsets of the
    end of the last complete line (``complete_end``) and of the file (``size``)."""

    seq: int
    prev: str
    complete_end: int
    size: int

    @property
    def torn_bytes(self) -> int:
        return self.size - self.complete_end


def read_tail(path: str | os.PathLike[str]) -> Tail:
    """The ledger's tail, read from its last complete line (not the whole file).

    An absent or empty ledger starts at entry 0 after :data:`GENESIS`. An unreadable file or an
    unreadable last entry raises :class:`~finetrail.errors.InputError`: appending after it would
    chain to an entry nobody can check.
    """
    p = Path(path)
    try:
        fh = open(open_regular(p), "rb")  # noqa: SIM115 - closed below, errors mapped first
    except FileNotFoundError:
        return Tail(0, GENESIS, 0, 0)
    except OSError as exc:
        raise os_error(exc, p) from exc
    with fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            window = 1 << 16
            while True:
                if size == 0:
                    return Tail(0, GENESIS, 0, 0)
                start = max(0, size - window)
                fh.seek(start)
                data = fh.read(size - start)
                end = data.rfind(b"\n")
                if end == -1 and start > 0:
                    window *= 2
                    continue
                if end == -1:
                    return Tail(0, GENESIS, 0, size)  # only a torn first line
                complete_end = start + end + 1
                prev_nl = data.rfind(b"\n", 0, end)
                if prev_nl == -1 and start > 0:
                    window *= 2
                    continue
                line = data[prev_nl + 1 : end]
                break
        except OSError as exc:
            raise os_error(exc, p) from exc
    fix = "run `finetrail verify` on the workspace to see what changed"
    try:
        last = LedgerEntry.model_validate_json(line)
        intact = last.line() == line + b"\n" and last.compute_digest() == last.digest
    except ValueError as exc:  # ValidationError, JSON pydantic cannot read, or cannot re-encode
        raise InputError(
            "the last complete ledger entry is unreadable; refusing to append",
            path=str(p),
            fix=fix,
        ) from exc
    if not intact:
        raise InputError(
            "the last complete ledger entry is not in canonical form or does not match its "
            "digest (edited?); refusing to append after it",
            path=str(p),
            fix=fix,
        )
    return Tail(last.seq + 1, last.digest, complete_end, size)


def build_entry(
    seq: int,
    prev: str,
    kind: str,
    actor: str,
    payload: Mapping[str, Any],
    *,
    signer: str | None = None,
    sign: Signer | None = None,
) -> LedgerEntry:
    """The entry ``seq`` after ``prev``, with its payload digest, signature and digest."""
    payload = dict(payload)
    draft = LedgerEntry(
        seq=seq,
        kind=kind,
        time=clock.now(),
        actor=actor,
        payload=payload,
        payload_digest=payload_digest(payload),
        prev=prev,
        signer=signer,
        signature=None,
        digest=GENESIS,
    )
    if sign is not None:
        signature = base64.b64encode(sign(draft.signing_bytes())).decode("ascii")
        draft = draft.model_copy(update={"signature": signature})
    return draft.model_copy(update={"digest": draft.compute_digest()})


def write_lines(path: str | os.PathLike[str], offset: int, data: bytes) -> None:
    """Cut the ledger at ``offset`` (a torn tail, or a partial earlier attempt), append ``data``,
    fsync. Idempotent: run twice with the same arguments it leaves the same bytes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if os.fstat(fd).st_size != offset:
            os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


class Ledger:
    """Appends to and reads one ledger file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name("." + self.path.name + ".lock")

    def append(
        self,
        kind: str,
        *,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        signer: str | None = None,
        sign: Signer | None = None,
    ) -> LedgerEntry:
        """Append one event atomically and durably; returns the entry written.

        For a ledger used on its own; a workspace appends through its write-ahead journal
        (:mod:`finetrail.governance.journal`).
        """
        with file_lock(self.lock_path, what="the ledger"):
            tail = read_tail(self.path)
            seq, prev, lines = tail.seq, tail.prev, b""
            if tail.torn_bytes:
                # A previous append was interrupted: cut the torn line and say so in the ledger.
                recovery = build_entry(
                    seq,
                    prev,
                    "ledger.recovered",
                    "finetrail",
                    {"torn_bytes_removed": tail.torn_bytes},
                )
                lines, seq, prev = recovery.line(), seq + 1, recovery.digest
            entry = build_entry(seq, prev, kind, actor, payload or {}, signer=signer, sign=sign)
            write_lines(self.path, tail.complete_end, lines + entry.line())
            return entry

    def scan(self) -> LedgerScan:
        return scan_ledger(self.path)

    def entries(self) -> list[LedgerEntry]:
        return self.scan().entries


def scan_ledger(path: str | os.PathLike[str]) -> LedgerScan:
    """Read every line, check each entry and the chain, and collect every problem found."""
    p = Path(path)
    name = p.name
    scan = LedgerScan()
    if not os.path.lexists(p):
        scan.findings.append(Finding("error", "missing", name, "the ledger file is missing"))
        return scan
    try:
        raw = read_bytes_strict(p)
    except InputError as err:
        scan.findings.append(Finding("error", "unreadable", name, err.what))
        return scan
    return scan_bytes(raw, name=name)


def scan_bytes(raw: bytes, *, name: str, resume: ScanState | None = None) -> LedgerScan:
    """:func:`scan_ledger` over the ledger's bytes. With ``resume`` (the :attr:`LedgerScan.state`
    of an earlier scan) the first ``resume.lines`` lines are taken as that scan found them and
    only the lines after them are checked: the caller must know those lines are the same bytes
    (``VerifyCache`` compares their SHA-256)."""
    scan = LedgerScan()
    if not raw:
        scan.findings.append(Finding("error", "truncated", name, "the ledger is empty"))
        return scan
    lines = raw.split(b"\n")
    if lines[-1] != b"":
        scan.torn_tail_bytes = len(lines[-1])
        scan.findings.append(
            Finding(
                "warning",
                "incomplete",
                f"{name}:{len(lines)}",
                f"an interrupted append left {len(lines[-1])} bytes without a line end; "
                "ignored (the ledger is valid up to the last complete entry, and the next "
                "append removes them)",
            )
        )
    complete = lines[:-1]
    scan.lines = len(complete)
    tail_findings = len(scan.findings)
    prev = GENESIS
    expected_seq = 0
    seen: dict[str, int] = {}
    done = 0
    if resume is not None and resume.lines <= len(complete):
        done, prev, expected_seq, seen = (
            resume.lines, resume.prev, resume.expected_seq, dict(resume.seen)
        )  # fmt: skip
        scan.findings += resume.findings  # after the torn tail's warning, as in a full scan
        scan.entries = list(resume.entries)
    for lineno, line in enumerate(complete[done:], start=done + 1):
        loc = f"{name}:{lineno}"
        try:
            # pydantic-core's parser (about 3x json.loads here); NaN and Infinity are not JSON
            data = from_json(line, allow_inf_nan=False)
            entry = LedgerEntry.model_validate(data)
        except (ValueError, ValidationError) as exc:
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                where = ".".join(str(x) for x in first["loc"]) or "(line)"
                detail = f"{where}: {first['msg']}"
            else:
                detail = f"not JSON: {exc}"
            scan.findings.append(Finding("error", "modified", loc, f"unreadable entry ({detail})"))
            prev = "?"  # the chain cannot be followed across an unreadable entry
            expected_seq += 1
            continue
        # One serialisation serves three checks: canonical form, the entry's digest (the canonical
        # line minus its "digest" member) and the payload's digest (a slice of the line).
        try:
            canonical = canonical_json(data)
        except (ValueError, RecursionError) as exc:  # inf from 1e999, an over-long integer
            detail = str(exc).split(";")[0]
            scan.findings.append(Finding("error", "modified", loc, f"unreadable entry ({detail})"))
            prev = "?"
            expected_seq += 1
            continue
        if canonical != line + b"\n":
            scan.findings.append(
                Finding("error", "modified", loc, f"entry {entry.seq} is not in canonical form")
            )
        member = b'"digest":"' + entry.digest.encode() + b'",'
        if sha256_bytes(canonical.replace(member, b"", 1)) != entry.digest:
            scan.findings.append(
                Finding(
                    "error",
                    "modified",
                    loc,
                    f"entry {entry.seq}: content does not match its digest",
                )
            )
        if entry.payload_digest != sha256_bytes(payload_bytes_in(canonical, entry.payload_digest)):
            scan.findings.append(
                Finding(
                    "error",
                    "modified",
                    loc,
                    f"entry {entry.seq}: payload does not match payload_digest",
                )
            )
        if entry.digest in seen:
            scan.findings.append(
                Finding(
                    "error",
                    "duplicated",
                    loc,
                    f"entry {entry.seq} repeats line {seen[entry.digest]}",
                )
            )
        seen.setdefault(entry.digest, lineno)
        if entry.seq > expected_seq:
            scan.findings.append(
                Finding(
                    "error",
                    "deleted",
                    loc,
                    f"expected entry {expected_seq}, found {entry.seq} (entries missing before it)",
                )
            )
        elif entry.seq < expected_seq:
            scan.findings.append(
                Finding(
                    "error",
                    "reordered",
                    loc,
                    f"expected entry {expected_seq}, found {entry.seq} (out of order or repeated)",
                )
            )
        if prev != "?" and entry.prev != prev:
            scan.findings.append(
                Finding(
                    "error", "chain", loc, f"entry {entry.seq} does not link to the entry before it"
                )
            )
        prev = entry.digest
        expected_seq = entry.seq + 1
        scan.entries.append(entry)
    scan.state = ScanState(
        lines=len(complete),
        prev=prev,
        expected_seq=expected_seq,
        seen=seen,
        entries=tuple(scan.entries),
        findings=tuple(scan.findings[tail_findings:]),
    )
    return scan
