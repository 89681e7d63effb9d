"""Signed checkpoints of the ledger's Merkle log (``checkpoints.jsonl``).

The ledger is an RFC 9162 Merkle log whose leaves are the entries' digests (32 bytes each, the
``digest`` of :class:`~finetrail.governance.evidence.workspace.LedgerEntry`). Every commit of a
workspace transaction appends one :class:`Checkpoint` (size, root, time, workspace id, signer)
to ``checkpoints.jsonl``, through the same write-ahead intent as the command's ledger lines.

The signed text follows the C2SP ``tlog-checkpoint`` note body (origin line, decimal size,
base64 root, then an extension line)::

    finetrail.checkpoint/v1 <workspace id>
    <size>
    <base64 root hash>
    time <ISO 8601>

and is signed with Ed25519 by the key the command signs its ledger entries with
(:func:`finetrail.governance.keys.active_signer`). Like TUF's snapshot/timestamp roles against
rollback, a verifier that saw a checkpoint (stored here, given with ``verify --checkpoint FILE``
or published with ``finetrail anchor``) refuses a log that is smaller than it or not an
append-only extension of it (RFC 9162 consistency proof).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import Field, ValidationError, field_validator
from pydantic_core import from_json

from finetrail.errors import InputError
from finetrail.governance import merkle_log
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.workspace import SHA256_PATTERN, LedgerEntry
from finetrail.governance.findings import Finding
from finetrail.governance.io import read_bytes_strict

if TYPE_CHECKING:
    from finetrail.governance.trust import TrustRoot


class CheckpointSigner(Protocol):
    keyid: str

    def sign(self, message: bytes) -> bytes: ...


__all__ = [
    "CHECKPOINTS_FILE",
    "NOTE_FORMAT",
    "Checkpoint",
    "check_against",
    "check_checkpoints",
    "leaves_of",
    "make_checkpoint",
    "read_checkpoint_file",
    "read_checkpoints",
]

CHECKPOINTS_FILE = "checkpoints.jsonl"
NOTE_FORMAT = "finetrail.checkpoint/v1"
WORKSPACE_ID_PATTERN = r"^[0-9a-f]{32}$"
_DIGEST_MEMBER = re.compile(rb'"digest":"([0-9a-f]{64})"')


class Checkpoint(EvidenceRecord):
    """One signed statement of the log's size and root hash."""

    SCHEMA_VERSION: ClassVar[int] = 1

    record_type: Literal["checkpoint"] = "checkpoint"
    origin: str = Field(min_length=1, max_length=200)
    workspace_id: str | None = Field(default=None, pattern=WORKSPACE_ID_PATTERN)
    size: int = Field(ge=0)
    root: str = Field(pattern=SHA256_PATTERN)
    time: datetime
    signer: str | None = Field(default=None, pattern=SHA256_PATTERN)
    signature: str | None = Field(default=None, max_length=200)

    @field_validator("time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("time must carry a timezone")
        return v

    def note(self) -> bytes:
        """The signed note body (C2SP tlog-checkpoint layout): origin, size, root, then the
        extension lines ``time`` and ``finetrail`` (the version that wrote it), so that no field
        of the stored checkpoint lies outside its signature."""
        root = base64.b64encode(bytes.fromhex(self.root)).decode("ascii")
        return (
            f"{self.origin}\n{self.size}\n{root}\ntime {self.time.isoformat()}\n"
            f"finetrail {self.finetrail_version}\n"
        ).encode()

    def describe(self) -> str:
        return f"checkpoint of {self.size} entries (root {self.root[:16]}...)"

    def signature_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.signature or "", validate=True)
        except (binascii.Error, ValueError):
            return b""


def origin_for(workspace_id: str | None) -> str:
    return f"{NOTE_FORMAT} {workspace_id or 'none'}"


def leaves_of(digests: Sequence[str]) -> list[bytes]:
    """The log's leaf hashes: each entry digest's 32 bytes, hashed as an RFC 9162 leaf."""
    return [merkle_log.leaf_hash(bytes.fromhex(d)) for d in digests]


def entry_digests(entries: Sequence[LedgerEntry]) -> list[str]:
    return [e.digest for e in entries]


def digests_in(ledger_bytes: bytes) -> list[str]:
    """Entry digests of the complete lines of canonical ledger bytes (for the writer, which
    holds the lock and has checked the last entry; ``verify`` re-derives them from a full scan).
    The first ``"digest":"`` member of a canonical line is the entry's own (only ``actor``, a
    string, sorts before it, and a string cannot hold an unescaped quote)."""
    out = []
    for line in ledger_bytes.split(b"\n")[:-1]:
        m = _DIGEST_MEMBER.search(line)
        out.append(m.group(1).decode() if m else "0" * 64)
    return out


def make_checkpoint(
    *,
    digests: Sequence[str],
    workspace_id: str | None,
    time: datetime,
    signer: CheckpointSigner | None,
) -> Checkpoint:
    draft = Checkpoint(
        origin=origin_for(workspace_id),
        workspace_id=workspace_id,
        size=len(digests),
        root=merkle_log.tree_hash(leaves_of(digests)).hex(),
        time=time,
    )
    if signer is None:
        return draft
    sig = base64.b64encode(signer.sign(draft.note())).decode("ascii")
    return draft.model_copy(update={"signer": signer.keyid, "signature": sig})


# -- reading --------------------------------------------------------------------------------------
def _parse_line(line: bytes, where: str) -> Checkpoint:
    try:
        return Checkpoint.model_validate(from_json(line, allow_inf_nan=False))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(x) for x in first["loc"]) or "(line)"
        raise InputError(f"{where}: {field}: {first['msg']}", field=field) from exc
    except ValueError as exc:
        raise InputError(f"{where}: not JSON ({exc})") from exc


def read_checkpoints(path: Path) -> tuple[list[Checkpoint], list[Finding]]:
    """Every checkpoint of a ``checkpoints.jsonl``; unreadable lines become findings."""
    name = path.name
    if not path.exists() and not path.is_symlink():
        return [], []
    try:
        raw = read_bytes_strict(path)
    except InputError as err:
        return [], [Finding("error", "unreadable", name, err.what)]
    out: list[Checkpoint] = []
    findings: list[Finding] = []
    lines = raw.split(b"\n")
    if lines[-1]:
        findings.append(
            Finding("error", "modified", f"{name}:{len(lines)}", "the last line has no line end")
        )
    for i, line in enumerate(lines[:-1], start=1):
        try:
            cp = _parse_line(line, f"{name}:{i}")
        except InputError as err:
            findings.append(Finding("error", "modified", f"{name}:{i}", err.what))
            continue
        if cp.canonical_bytes() != line + b"\n":
            findings.append(
                Finding("error", "modified", f"{name}:{i}", "checkpoint not in canonical form")
            )
        out.append(cp)
    return out, findings


def read_checkpoint_file(path: str | os.PathLike[str], *, what: str = "checkpoint") -> Checkpoint:
    """A checkpoint a user hands ``verify --checkpoint``: one JSON object, or the last line of a
    ``checkpoints.jsonl``. Bad input raises :class:`InputError` naming the file and field."""
    p = Path(path)
    raw = read_bytes_strict(p)
    lines = [x for x in raw.split(b"\n") if x.strip()]
    if not lines:
        raise InputError(f"the {what} file is empty", path=str(p))
    try:
        return _parse_line(lines[-1] if len(lines) > 1 else raw.strip(), p.name)
    except InputError as err:
        raise InputError(
            f"not a finetrail checkpoint: {err.what}",
            path=str(p),
            field=err.field,
            fix="pass a line of a workspace's checkpoints.jsonl or an anchor file",
        ) from err


# -- checking -------------------------------------------------------------------------------------
def signature_findings(
    cp: Checkpoint, loc: str, trust: TrustRoot | None, *, required: bool
) -> list[Finding]:
    """The checkpoint's signature against the trust root (any role's key, in its window)."""
    from finetrail.governance.keys import verify_signature

    if not (cp.signer and cp.signature):
        sev: Literal["error", "warning"] = "error" if required else "warning"
        return [Finding(sev, "unsigned", loc, f"{cp.describe()} is not signed")]
    if trust is None:
        return []
    key = trust.lookup(cp.signer)
    if key is None:
        return [
            Finding(
                "error",
                "untrusted",
                loc,
                f"{cp.describe()} is signed by key sha256:{cp.signer}, which the trust root "
                f"{trust.path.name} does not name",
            )
        ]
    out = [
        Finding("error", p.code, loc, f"{cp.describe()}: {p.message}")
        for p in trust.check(keyid=cp.signer, role=key.role, at=cp.time)
    ]
    if not verify_signature(key.public_key_b64, cp.signature_bytes(), cp.note()):
        out.append(
            Finding("error", "forged", loc, f"{cp.describe()}: the signature does not verify")
        )
    return out


def check_against(
    cp: Checkpoint,
    digests: Sequence[str],
    *,
    loc: str,
    workspace_id: str | None,
    label: str,
    leaves: Sequence[bytes] | None = None,
) -> list[Finding]:
    """Whether the log of ``digests`` extends ``cp``: same workspace, at least as long, and
    consistent (the first ``cp.size`` leaves hash to ``cp.root``, checked with an RFC 9162
    consistency proof from ``cp`` to the current log). ``leaves``: ``leaves_of(digests)`` when
    the caller has them."""
    out: list[Finding] = []
    n = len(digests)
    if cp.origin != origin_for(cp.workspace_id):
        out.append(
            Finding(
                "error",
                "modified",
                loc,
                f"{label}: origin {cp.origin!r} is not {origin_for(cp.workspace_id)!r}",
            )
        )
    if cp.workspace_id != workspace_id:
        out.append(
            Finding(
                "error",
                "replayed",
                loc,
                f"{label} is for workspace {cp.workspace_id or '(none)'}, this is "
                f"{workspace_id or '(no workspace id)'} (copied from another workspace?)",
            )
        )
    if cp.size > n:
        out.append(
            Finding(
                "error",
                "rollback",
                loc,
                f"{label} covers {cp.size} ledger entries; the ledger holds {n} (entries were "
                "removed: the workspace was rolled back or truncated)",
            )
        )
        return out
    leaves = leaves_of(digests) if leaves is None else leaves
    new_root = merkle_log.tree_hash(leaves)
    if cp.size == 0:
        ok = cp.root == merkle_log.EMPTY_ROOT.hex()
    else:
        proof = merkle_log.consistency_proof(leaves, cp.size)
        ok = merkle_log.verify_consistency(cp.size, n, bytes.fromhex(cp.root), new_root, proof)
    if not ok:
        out.append(
            Finding(
                "error",
                "rewritten",
                loc,
                f"{label} ({cp.size} entries, root {cp.root[:16]}...) is not consistent with "
                "the ledger: an entry it covers was changed, removed or reordered",
            )
        )
    return out


def check_checkpoints(root: Path, ctx: Any) -> list[Finding]:
    """``verify``'s check of the stored checkpoints, and of ``--checkpoint`` / ``--anchor``."""
    from finetrail.governance.ledger import LEDGER_NAME

    entries: list[LedgerEntry] = getattr(ctx, "entries", [])
    meta = getattr(ctx, "metadata", None)
    trust: TrustRoot | None = getattr(ctx, "trust", None)
    wsid: str | None = getattr(meta, "workspace_id", None)
    digests = entry_digests(entries)
    # verify's cache (verify_incremental.VerifyCache): the result of a check over the first
    # cp.size entries while those entries are the ones it was computed over, and their leaves
    cache = getattr(ctx, "cache", None)
    memo = cache.checkpoint_memo(digests) if cache is not None else None
    leaves = cache.leaves(digests) if cache is not None else None
    out: list[Finding] = []
    if meta is not None and wsid is None:
        out.append(
            Finding(
                "error",
                "no-workspace-id",
                "workspace.json",
                "no workspace id (made before finetrail 0.9 recorded one at init): evidence "
                "and approvals cannot be bound to this workspace; re-create it with "
                "`finetrail init` and re-run its commands",
            )
        )
    cps, found = read_checkpoints(root / CHECKPOINTS_FILE)
    out += found
    if not cps and not found and entries:
        out.append(
            Finding(
                "error" if wsid else "warning",
                "no-checkpoint",
                CHECKPOINTS_FILE,
                "the ledger has no signed checkpoint (missing, or made before checkpoints)",
            )
        )
    unsigned = 0
    prev: Checkpoint | None = None
    for i, cp in enumerate(cps, start=1):
        loc = f"{CHECKPOINTS_FILE}:{i}"
        key = ("against", i, cp.origin, cp.workspace_id, cp.size, cp.root, wsid)
        if memo is not None and key in memo and cp.size <= len(digests):
            against = memo[key]
        else:
            against = check_against(
                cp, digests, loc=loc, workspace_id=wsid, label=f"checkpoint {i}", leaves=leaves
            )
            if memo is not None and cp.size <= len(digests):
                memo[key] = against
        out += against
        sig = signature_findings(cp, loc, trust, required=False)
        unsigned += sum(1 for f in sig if f.code == "unsigned")
        out += [f for f in sig if f.code != "unsigned"]
        if prev is not None:
            if cp.size < prev.size:
                out.append(
                    Finding(
                        "error",
                        "rollback",
                        loc,
                        f"checkpoint {i} covers {cp.size} entries, fewer than the one before it "
                        f"({prev.size})",
                    )
                )
            elif cp.size <= len(digests) and not against:
                pair = ("pair", prev.size, prev.root, cp.size, cp.root)
                if memo is not None and pair in memo:
                    consistent = memo[pair]
                else:
                    first = leaves_of(digests[: cp.size]) if leaves is None else leaves[: cp.size]
                    proof = merkle_log.consistency_proof(first, prev.size) if prev.size else []
                    consistent = not prev.size or merkle_log.verify_consistency(
                        prev.size, cp.size, bytes.fromhex(prev.root), bytes.fromhex(cp.root), proof
                    )
                    if memo is not None:
                        memo[pair] = consistent
                if not consistent:
                    out.append(
                        Finding(
                            "error",
                            "rewritten",
                            loc,
                            f"checkpoint {i} is not an append-only extension of checkpoint {i - 1}",
                        )
                    )
        prev = cp
    if unsigned:
        out.append(
            Finding(
                "warning",
                "unsigned",
                CHECKPOINTS_FILE,
                f"{unsigned} of {len(cps)} checkpoint(s) unsigned (development mode, "
                "FINETRAIL_DEV_UNSIGNED=1)",
            )
        )
    if prev is not None and prev.size < len(digests):
        tail = entries[prev.size :]
        kinds = sorted({e.kind for e in tail})
        recovered = all(k in ("workspace.recovered", "ledger.recovered") for k in kinds)
        out.append(
            Finding(
                "warning" if recovered else "error",
                "unchecked",
                f"{LEDGER_NAME}:{prev.size + 1}",
                f"{len(tail)} ledger entr{'y' if len(tail) == 1 else 'ies'} after the latest "
                f"checkpoint ({', '.join(kinds)})"
                + ("" if recovered else ": appended outside finetrail?"),
            )
        )
    given: Checkpoint | None = getattr(ctx, "checkpoint", None)
    if given is not None:
        loc = "--checkpoint"
        out += signature_findings(given, loc, trust, required=trust is not None)
        out += check_against(
            given, digests, loc=loc, workspace_id=wsid, label="the checkpoint given"
        )
    return out
