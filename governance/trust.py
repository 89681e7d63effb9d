"""The trust root: which Ed25519 keys may sign what, and when, kept outside the workspace it judges.

A trust file (YAML, or JSON when its name ends in ``.json``) names public keys by role::

    finetrail_trust: 1
    gate:                       # CI signers of gate attestations
      - name: ci
        public_key: 3q2+7w...   # base64 of the raw 32-byte key, or a PEM block
        not_before: 2026-01-01T00:00:00Z
        not_after: 2027-01-01T00:00:00Z
    reviewers:                  # people who sign approvals, with the roles they review in
      - name: alice
        roles: [model-risk]
        public_key: ...
        not_before: 2026-01-01T00:00:00Z
        not_after: 2027-01-01T00:00:00Z
        revoked_at: 2026-06-01T00:00:00Z   # optional: nothing it signs from then on counts
    training: []                # keys of training jobs (signed ledger events)
    probes: []                  # keys of probe and audit jobs

A key serves one role (its keyid appears once in the file); a person may have several keys over
time (rotation: one entry per key, each with its window). A signature counts when its key is
named in the role the record needs, the time the record claims lies in ``[not_before,
not_after]`` and before ``revoked_at``, and it verifies with the key from *this* file (never the
key a record carries).

:func:`load_trust` parses with a safe loader that refuses aliases and duplicate keys, and refuses a
trust file that lies inside the workspace it would judge (whoever can write the workspace could
rewrite it). :func:`check_trust` is ``verify``'s check of signed ledger entries (reviews are checked
by :func:`finetrail.governance.review.assess.check_reviews`, gate attestations by
:func:`finetrail.governance.gate.attest.check_attestations`), and without a trust root it reports
that signatures were not checked against one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, Field, ValidationError, field_validator, model_validator

from finetrail.errors import ConfigError, InputError
from finetrail.governance.evidence.base import Frozen
from finetrail.governance.evidence.review import NAME_PATTERN
from finetrail.governance.evidence.workspace import (
    SHA256_PATTERN,
    LedgerEntry,
    LedgerSummary,
    WorkspaceMetadata,
)
from finetrail.governance.findings import Finding
from finetrail.governance.io import read_text_strict, sha256_bytes

__all__ = [
    "MAX_BYTES",
    "ROLES",
    "TRUST_LOCATION",
    "Problem",
    "ReleaseIdentity",
    "ReviewerKey",
    "RootKey",
    "TrustFile",
    "TrustKey",
    "TrustRoot",
    "check_trust",
    "entry_problems",
    "event_role",
    "ledger_summary",
    "load_trust",
    "parse_trust",
    "read_identity",
    "refuse_inside",
    "release_identity",
]

Role = Literal["training", "probes", "gate", "reviewer"]
ROLES: tuple[Role, ...] = ("training", "probes", "gate", "reviewer")
SECTIONS: dict[str, Role] = {
    "training": "training",
    "probes": "probes",
    "gate": "gate",
    "reviewers": "reviewer",
}
MAX_BYTES = 1 << 20  # a trust file lists keys; anything bigger is not one
CLOCK_SKEW = timedelta(minutes=5)
TRUST_LOCATION = "trust root"  # the location of findings about the trust root itself
FIX = "keep the trust file outside the workspace, e.g. in the repository that runs the release"


# -- the file -------------------------------------------------------------------------------------
def _decode_public_key(text: str) -> bytes:
    """The raw 32 bytes of a base64 raw key or a PEM SubjectPublicKeyInfo block."""
    from finetrail.governance.keys import public_raw

    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            key = serialization.load_pem_public_key(stripped.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError("not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return public_raw(key)
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64 (give the raw 32-byte key in base64, or a PEM block)") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
    return raw


class TrustKey(Frozen):
    """One public key, who holds it and when it may sign."""

    name: str = Field(pattern=NAME_PATTERN)
    public_key: str = Field(min_length=1, max_length=1000)
    keyid: str | None = Field(default=None, pattern=SHA256_PATTERN)
    not_before: AwareDatetime
    not_after: AwareDatetime
    revoked_at: AwareDatetime | None = None

    @field_validator("not_before", "not_after", "revoked_at", mode="before")
    @classmethod
    def _timestamp(cls, v: Any) -> Any:
        if isinstance(v, date) and not isinstance(v, datetime):
            raise ValueError("give a time with a timezone (e.g. 2027-01-01T00:00:00Z), not a date")
        if isinstance(v, bool | int | float):
            raise ValueError("give an ISO 8601 time with a timezone, e.g. 2027-01-01T00:00:00Z")
        return v

    @field_validator("public_key")
    @classmethod
    def _key(cls, v: str) -> str:
        _decode_public_key(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TrustKey:
        if self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")
        if self.keyid is not None and self.keyid != self.raw_keyid():
            raise ValueError(f"keyid {self.keyid} is not the SHA-256 of public_key")
        return self

    def raw(self) -> bytes:
        return _decode_public_key(self.public_key)

    def raw_keyid(self) -> str:
        return sha256_bytes(self.raw())


class ReviewerKey(TrustKey):
    """A reviewer's key, with the roles the person may review in."""

    roles: tuple[str, ...] = Field(min_length=1)

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for r in v:
            if not r.strip() or len(r) > 100:
                raise ValueError("a review role is a non-empty name of at most 100 characters")
        return v


class TrustFile(Frozen):
    """The trust file's schema (what :func:`parse_trust` validates)."""

    finetrail_trust: Literal[1]
    training: tuple[TrustKey, ...] = ()
    probes: tuple[TrustKey, ...] = ()
    gate: tuple[TrustKey, ...] = ()
    reviewers: tuple[ReviewerKey, ...] = ()

    @model_validator(mode="after")
    def _one_role_per_key(self) -> TrustFile:
        seen: dict[str, str] = {}
        for section in SECTIONS:
            for i, key in enumerate(getattr(self, section)):
                keyid = key.raw_keyid()
                where = f"{section}[{i}]"
                if keyid in seen:
                    raise ValueError(
                        f"the key of {where} ({key.name}) is also {seen[keyid]}: a key serves "
                        "one role and one holder"
                    )
                seen[keyid] = where
        if not seen:
            raise ValueError("the trust file names no key")
        return self

    def to_yaml(self) -> str:
        """The file as YAML (times in ISO 8601), for writing a trust file from code."""
        data = self.model_dump(mode="json", exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# -- the safe loader ------------------------------------------------------------------------------
class _TrustLoader(yaml.SafeLoader):
    """SafeLoader without aliases (no alias bombs) and without duplicate keys."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.constructor.ConstructorError(
                None, None, "aliases (*name) are not allowed in a trust file", event.start_mark
            )
        return super().compose_node(parent, index)


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise yaml.constructor.ConstructorError(
                None, None, "merge keys (<<) are not allowed in a trust file", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            ) from exc
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_TrustLoader.add_constructor("tag:yaml.org,2002:map", _mapping)


def _parse_text(text: str, path: str) -> Any:
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=path
            ) from exc
        except RecursionError as exc:
            raise ConfigError("the trust file is nested too deeply", path=path) from exc
        except ValueError as exc:
            raise ConfigError(f"unreadable JSON: {_first_line(exc)}", path=path) from exc
    try:
        return yaml.load(text, Loader=_TrustLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"malformed YAML{at}: {exc.problem or exc.context}", path=path) from exc
    except RecursionError as exc:
        raise ConfigError("the trust file is nested too deeply", path=path) from exc
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"unreadable YAML: {_first_line(exc)}", path=path) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed(loc: tuple[int | str, ...]) -> list[str]:
    if len(loc) == 3 and loc[0] in SECTIONS:
        model = ReviewerKey if loc[0] == "reviewers" else TrustKey
        return list(model.model_fields)
    return list(TrustFile.model_fields)


def _validation_error(exc: ValidationError, path: str) -> ConfigError:
    errors = exc.errors()
    msgs = []
    for err in errors:
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field (allowed: {', '.join(_allowed(tuple(err['loc'])))})"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "literal_error" and err["loc"] == ("finetrail_trust",):
            msg = "must be 1 (the trust file format version)"
        msgs.append((_loc(tuple(err["loc"])), msg))
    field, what = msgs[0]
    why = "; ".join(f"{f}: {m}" for f, m in msgs[1:6]) or None
    return ConfigError(
        f"invalid trust file: {what}",
        path=path,
        field=field,
        why=why,
        fix="see the trust file format in docs/security.md",
    )


def parse_trust(data: Any, *, source: str) -> TrustFile:
    """Validate parsed trust-file data; errors name the file and the field."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"a trust file is a mapping (finetrail_trust, gate, reviewers, ...), "
            f"not {type(data).__name__}",
            path=source,
            fix="see the trust file format in docs/security.md",
        )
    try:
        return TrustFile.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, source) from exc
    except RecursionError as exc:
        raise ConfigError("the trust file is nested too deeply", path=source) from exc


# -- the trust root in use ------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """Why a signature does not count (``code`` as in verify's findings)."""

    code: str  # untrusted, wrong-role, not-yet-valid, expired, revoked, future, wrong-signer
    message: str


@dataclass(frozen=True)
class RootKey:
    role: Role
    where: str  # "reviewers[1]"
    entry: TrustKey
    keyid: str
    public_key_b64: str  # base64 of the raw key (what keys.verify_signature takes)

    @property
    def review_roles(self) -> tuple[str, ...]:
        return self.entry.roles if isinstance(self.entry, ReviewerKey) else ()


def _fp(keyid: str) -> str:
    return f"sha256:{keyid}"


@dataclass(frozen=True)
class TrustRoot:
    """A loaded trust file: look keys up by id and say whether a signature counts."""

    path: Path
    sha256: str  # of the file's bytes (recorded in gate decisions)
    file: TrustFile
    keys: dict[str, RootKey]

    @classmethod
    def from_file(cls, file: TrustFile, *, path: Path, sha256: str) -> TrustRoot:
        keys: dict[str, RootKey] = {}
        for section, role in SECTIONS.items():
            for i, key in enumerate(getattr(file, section)):
                raw = key.raw()
                keyid = sha256_bytes(raw)
                keys[keyid] = RootKey(
                    role, f"{section}[{i}]", key, keyid, base64.b64encode(raw).decode("ascii")
                )
        return cls(path=path, sha256=sha256, file=file, keys=keys)

    def lookup(self, keyid: str | None) -> RootKey | None:
        return self.keys.get(keyid) if keyid else None

    def check(
        self,
        *,
        keyid: str | None,
        role: Role,
        at: datetime,
        name: str | None = None,
        review_role: str | None = None,
        now: datetime | None = None,
    ) -> list[Problem]:
        """Every reason a signature by ``keyid`` dated ``at`` does not count for ``role``."""
        key = self.lookup(keyid)
        if key is None or keyid is None:
            return [
                Problem(
                    "untrusted",
                    f"signed by key {_fp(keyid or '?')}, which the trust root {self.path.name} "
                    "does not name",
                )
            ]
        who = f"key {_fp(keyid)} ({key.entry.name}, {key.where})"
        out: list[Problem] = []
        if key.role != role:
            out.append(
                Problem(
                    "wrong-role",
                    f"{who} is trusted as {key.role}, not as {role}: it cannot sign this",
                )
            )
        e = key.entry
        if at < e.not_before:
            out.append(
                Problem(
                    "not-yet-valid",
                    f"{who} signed at {at.isoformat()}, before it became valid "
                    f"(not_before {e.not_before.isoformat()})",
                )
            )
        if at > e.not_after:
            out.append(
                Problem(
                    "expired",
                    f"{who} signed at {at.isoformat()}, after it expired "
                    f"(not_after {e.not_after.isoformat()})",
                )
            )
        if e.revoked_at is not None and at >= e.revoked_at:
            out.append(
                Problem(
                    "revoked",
                    f"{who} signed at {at.isoformat()}, after it was revoked "
                    f"(revoked_at {e.revoked_at.isoformat()})",
                )
            )
        if now is not None and at > now + CLOCK_SKEW:
            out.append(
                Problem("future", f"{who} signed at {at.isoformat()}, later than now ({now})")
            )
        if name is not None and name != e.name:
            out.append(Problem("wrong-signer", f"{who} belongs to {e.name!r}, not {name!r}"))
        if (
            review_role is not None
            and key.role == "reviewer"
            and review_role not in key.review_roles
        ):
            out.append(
                Problem(
                    "wrong-role",
                    f"the trust root does not grant {e.name!r} the review role {review_role!r} "
                    f"(granted: {', '.join(key.review_roles)})",
                )
            )
        return out

    def verify(self, *, keyid: str, signature: bytes, message: bytes) -> bool:
        """True when the trusted key ``keyid`` made ``signature`` over ``message``."""
        from finetrail.governance.keys import verify_signature

        key = self.lookup(keyid)
        return key is not None and verify_signature(key.public_key_b64, signature, message)


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def _hard_linked_into(path: Path, root: Path) -> bool:
    """Whether ``path`` is a hard link to a file of the workspace (same inode)."""
    try:
        st = path.stat()
        if st.st_nlink < 2 or not root.is_dir():
            return False
        return any(
            f.is_file() and (f.stat().st_dev, f.stat().st_ino) == (st.st_dev, st.st_ino)
            for f in root.rglob("*")
            if not f.is_symlink()
        )
    except (OSError, RuntimeError):
        return False


def refuse_inside(path: str | os.PathLike[str], workspace: str | os.PathLike[str]) -> None:
    """Refuse a trust file inside ``workspace`` (directly, through symbolic links, or hard-linked
    to one of its files)."""
    p, root = Path(path), Path(workspace)
    if _inside(p, root) or _inside(p.parent, root) or _hard_linked_into(p, root):
        raise ConfigError(
            "the trust file lies inside the workspace it would judge",
            path=str(p),
            why="whoever can write the workspace could rewrite its own trust root",
            fix=FIX,
        )


def load_trust(
    path: str | os.PathLike[str], *, workspace: str | os.PathLike[str] | None = None
) -> TrustRoot:
    """Read, validate and index a trust file; refuse one inside ``workspace``."""
    p = Path(path)
    shown = str(p)
    if workspace is not None:
        refuse_inside(p, workspace)
    try:
        too_big = p.is_file() and p.stat().st_size > MAX_BYTES
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"cannot read the trust file: {_first_line(exc)}", path=shown) from exc
    if too_big:
        raise ConfigError(f"a trust file is at most {MAX_BYTES} bytes", path=shown)
    try:
        text = read_text_strict(p)
    except InputError as exc:
        raise ConfigError(f"trust file: {exc.what}", path=shown, fix=exc.fix) from exc
    except (OSError, RuntimeError) as exc:  # symlink loops, I/O errors
        raise ConfigError(f"cannot read the trust file: {_first_line(exc)}", path=shown) from exc
    if "\x00" in text:
        raise ConfigError("the trust file contains a NUL byte", path=shown)
    data = _parse_text(text, shown)
    file = parse_trust(data, source=shown)
    return TrustRoot.from_file(file, path=p, sha256=sha256_bytes(text.encode("utf-8")))


def ensure_outside(trust: TrustRoot, workspace: str | os.PathLike[str]) -> None:
    """Refuse a trust root that was loaded from inside ``workspace``."""
    refuse_inside(trust.path, workspace)


def as_trust_root(
    trust: TrustRoot | str | os.PathLike[str] | None, workspace: str | os.PathLike[str]
) -> TrustRoot | None:
    """A :class:`TrustRoot` from a path or an already loaded root, checked to be outside."""
    if trust is None:
        return None
    if isinstance(trust, TrustRoot):
        ensure_outside(trust, workspace)
        return trust
    return load_trust(trust, workspace=workspace)


# -- release identity -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReleaseIdentity:
    """What a signature binds a record to: the release's model and version and the digest of its
    ``workspace.json`` (which the ledger's first event records)."""

    model: str
    version: str
    workspace_sha256: str
    workspace_id: str | None = None

    def describe(self) -> str:
        return f"{self.model} {self.version} (workspace sha256:{self.workspace_sha256[:16]}...)"


def release_identity(metadata: WorkspaceMetadata | None) -> ReleaseIdentity | None:
    if metadata is None:
        return None
    return ReleaseIdentity(
        metadata.model, metadata.version, metadata.content_digest(), metadata.workspace_id
    )


def read_identity(root: str | os.PathLike[str]) -> ReleaseIdentity | None:
    """The identity of the workspace at ``root`` (None when ``workspace.json`` is unreadable)."""
    from finetrail.errors import FinetrailError
    from finetrail.governance.workspace import WORKSPACE_FILE

    try:
        return release_identity(WorkspaceMetadata.read(Path(root) / WORKSPACE_FILE))
    except FinetrailError:
        return None


# -- verify's check -------------------------------------------------------------------------------
EVENT_ROLES: tuple[tuple[str, Role], ...] = (
    ("review.", "reviewer"),
    ("gate.", "gate"),
    ("probe.", "probes"),
    ("probes.", "probes"),
    ("bias.", "probes"),
    ("canaries.", "probes"),
    # comments and findings written by the review console (``console.comment``): signed by a
    # key the trust file names under ``reviewers`` (the console's own key, or a reviewer's)
    ("console.", "reviewer"),
)


def event_role(kind: str) -> Role:
    """The role whose key signs a ledger event of ``kind`` (training for the pipeline's own)."""
    return next((role for prefix, role in EVENT_ROLES if kind.startswith(prefix)), "training")


def _signed_counts(root: Path, ctx: Any) -> tuple[int, int]:
    """How many gate attestations and ledger entries carry signatures."""
    manifest = getattr(ctx, "manifest", None)
    entries: list[LedgerEntry] = getattr(ctx, "entries", [])
    envelopes = 0
    for rel in manifest.files if manifest is not None else ():
        if rel.endswith(".dsse.json"):
            try:
                data = json.loads((root / rel).read_bytes())
            except (OSError, ValueError, RecursionError):
                continue  # unreadable: check_attestations says so
            envelopes += bool(isinstance(data, dict) and data.get("signatures"))
    return envelopes, sum(1 for e in entries if e.signature or e.signer)


ANY_ROLE_EVENTS = ("workspace.recovered", "ledger.recovered")  # repairs: any command writes them


def entry_problems(trust: TrustRoot, e: LedgerEntry, *, now: datetime | None) -> list[Problem]:
    """Every reason entry ``e``'s signature does not count under ``trust`` for its role."""
    if not (e.signature and e.signer):
        return [Problem("unsigned", f"{e.kind} by {e.actor!r} is not signed")]
    key = trust.lookup(e.signer)
    role = key.role if key is not None and e.kind in ANY_ROLE_EVENTS else event_role(e.kind)
    problems = trust.check(keyid=e.signer, role=role, at=e.time, now=now)
    if key is None:
        return problems
    try:
        raw = base64.b64decode(e.signature, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not trust.verify(keyid=e.signer, signature=raw, message=e.signing_bytes()):
        problems.append(Problem("forged", "the signature does not verify with the trusted key"))
    return problems


def ledger_summary(
    entries: list[LedgerEntry],
    trust: TrustRoot | None,
    metadata: WorkspaceMetadata | None,
    *,
    checkpoints: int = 0,
) -> LedgerSummary:
    """The computed policy kind ``ledger``: how many entries are unsigned, and (with a trust
    root) how many are unsigned or not signed by a key it names for the entry's role."""
    from finetrail.governance.clock import release_now

    unsigned = sum(1 for e in entries if not (e.signature and e.signer))
    not_trusted: int | None = None
    if trust is not None:
        now = release_now()
        not_trusted = sum(1 for e in entries if entry_problems(trust, e, now=now))
    return LedgerSummary(
        entries=len(entries),
        unsigned=unsigned,
        not_trusted=not_trusted,
        workspace_id=metadata.workspace_id if metadata is not None else None,
        checkpoints=checkpoints,
    )


def check_trust(root: Path, ctx: Any) -> list[Finding]:
    """Signed ledger entries other than reviews, against the trust root; or, without one, the
    warning that no signature was checked against a trust root. Unsigned entries (development
    mode) are one warning; the shipped policy packs fail them (rule ``ledger-entries-signed``)."""
    from finetrail.governance.clock import release_now
    from finetrail.governance.ledger import LEDGER_NAME

    trust: TrustRoot | None = getattr(ctx, "trust", None)
    entries: list[LedgerEntry] = getattr(ctx, "entries", [])
    out: list[Finding] = []
    unsigned = [e for e in entries if not (e.signature or e.signer)]
    if unsigned:
        out.append(
            Finding(
                "warning",
                "unsigned",
                LEDGER_NAME,
                f"{len(unsigned)} of {len(entries)} ledger entries are unsigned (development "
                "mode, FINETRAIL_DEV_UNSIGNED=1; the shipped policy packs fail them): first "
                f"entry {unsigned[0].seq + 1} ({unsigned[0].kind})",
            )
        )
    if trust is None:
        envelopes, signed = _signed_counts(root, ctx)
        if not envelopes and not signed:
            return out
        return [
            *out,
            Finding(
                "warning",
                "untrusted",
                TRUST_LOCATION,
                f"signatures not checked against a trust root ({envelopes} gate "
                f"attestation(s), {signed} signed ledger entr{'y' if signed == 1 else 'ies'}): "
                "pass --trust FILE (kept outside the workspace) or set FINETRAIL_TRUST",
            ),
        ]
    now = release_now()
    for e in entries:
        if e.kind.startswith("review.") or not (e.signature or e.signer):
            continue
        loc = f"{LEDGER_NAME}:{e.seq + 1}"
        if not (e.signature and e.signer):
            out.append(Finding("error", "unsigned", loc, f"{e.kind}: signer or signature missing"))
            continue
        out += [
            Finding("error", p.code, loc, f"{e.kind} by {e.actor!r}: {p.message}")
            for p in entry_problems(trust, e, now=now)
        ]
    return out
