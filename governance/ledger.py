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
from finetrail.governance.io import canonical_json, file_lock, sha256_bytes

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


def _tail_state(path: Path) -> tuple[int, str, int]:
    """(next seq, prev digest, offset of the end of the last complete line) read from the tail."""
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return 0, GENESIS, 0
    with open(path, "rb") as fh:
        window = 1 << 16
        while True:
            start = max(0, size - window)
            fh.seek(start)
            data = fh.read(size - start)
            end = data.rfind(b"\n")
            if end == -1 and start > 0:
                window *= 2
                continue
            if end == -1:
                return 0, GENESIS, 0  # only a torn first line
            complete_end = start + end + 1
            prev_nl = data.rfind(b"\n", 0, end)
            if prev_nl == -1 and start > 0:
                window *= 2
                continue
            line = data[prev_nl + 1 : end]
            try:
                last = LedgerEntry.model_validate_json(line)
            except ValidationError as exc:
                raise InputError(
                    "the last complete ledger entry is unreadable; refusing to append",
                    path=str(path),
                    fix="run `finetrail verify` on the workspace to see what changed",
                ) from exc
            return last.seq + 1, last.digest, complete_end


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
        """Append one event atomically and durably; returns the entry written."""
        payload = dict(payload or {})
        with file_lock(self.lock_path):
            seq, prev, complete_end = _tail_state(self.path)
            size = self.path.stat().st_size if self.path.exists() else 0
            if size > complete_end:
                # A previous append was interrupted: cut the torn line and say so in the ledger.
                with open(self.path, "r+b") as fh:
                    fh.truncate(complete_end)
                    fh.flush()
                    os.fsync(fh.fileno())
                recovery = self._build(
                    seq,
                    prev,
                    "ledger.recovered",
                    "finetrail",
                    {"torn_bytes_removed": size - complete_end},
                )
                self._write(recovery)
                seq, prev = recovery.seq + 1, recovery.digest
            entry = self._build(seq, prev, kind, actor, payload, signer=signer, sign=sign)
            self._write(entry)
            return entry

    @staticmethod
    def _build(
        seq: int,
        prev: str,
        kind: str,
        actor: str,
        payload: dict[str, Any],
        *,
        signer: str | None = None,
        sign: Signer | None = None,
    ) -> LedgerEntry:
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

    def _write(self, entry: LedgerEntry) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = entry.line()
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)

    def scan(self) -> LedgerScan:
        return scan_ledger(self.path)

    def entries(self) -> list[LedgerEntry]:
        return self.scan().entries


def scan_ledger(path: str | os.PathLike[str]) -> LedgerScan:
    """Read every line, check each entry and the chain, and collect every problem found."""
    p = Path(path)
    name = p.name
    scan = LedgerScan()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        scan.findings.append(Finding("error", "missing", name, "the ledger file is missing"))
        return scan
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
    prev = GENESIS
    expected_seq = 0
    seen: dict[str, int] = {}
    for lineno, line in enumerate(complete, start=1):
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
        canonical = canonical_json(data)
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
    return scan
