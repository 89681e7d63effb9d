"""Review and sign-off: signed approvals bound to the exact files of a workspace.

Keyring files are :mod:`.keyring`; what the gate, ``review status`` and the reports show is
composed once in :func:`finetrail.governance.review.api.review_status`.

A review is a ledger event (``review.approve|reject|comment``) whose payload names the manifest
files digest (:meth:`Workspace.manifest_digest`) and which the reviewer signs with an Ed25519 key
(the ledger's ``signer=``/``sign=``). A keyring (``keyring.json``) lists trusted public keys with
the roles each person may review in; it is found at ``--keyring FILE`` (or ``$FINETRAIL_KEYRING``,
read by the CLI only), else ``<workspace>/keyring.json`` (whose digest the ledger records when finetrail writes it).

An approval is *current* while the workspace's files are those it signed. Gate decisions written
after it do not make it stale: they judge the approved files rather than change them (the digest
is recomputed without the gate files recorded after the approval). Any other change does.

Rejected at signing time: keys outside the keyring, a key used under another name, a role the
keyring does not grant, a second current approval by one person, self-approval by an author
(unless the policy allows it), and a workspace that ``verify`` rejects. ``verify`` re-checks every
review entry (:func:`check_reviews`): unknown keys, forged or altered signatures, duplicates.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from finetrail.errors import CheckFailed, InputError
from finetrail.governance.evidence.registry import GATE_DIR
from finetrail.governance.evidence.review import (
    Decision,
    Keyring,
    ReviewPayload,
    ReviewSummary,
)
from finetrail.governance.evidence.workspace import LedgerEntry, Manifest, ManifestFile
from finetrail.governance.findings import Finding
from finetrail.governance.io import canonical_json, sha256_bytes
from finetrail.governance.ledger import LEDGER_NAME
from finetrail.governance.review.keyring import (
    KEYRING_ENV,
    KEYRING_FILE,
    check_keyring_file,
    keyring_path,
    load_keyring,
)

if TYPE_CHECKING:
    from finetrail.governance.policy.rules import Approvals

REVIEW_PREFIX = "review."
GATE_PREFIX = f"{GATE_DIR}/"


# -- who wrote the workspace, and which files the gate added --------------------------------------
def authors(owner: str | None, entries: Iterable[LedgerEntry]) -> set[str]:
    """The owner and every actor that wrote evidence or artifacts (gate outputs excluded)."""
    out = {owner} if owner else set()
    for e in entries:
        path = e.payload.get("path")
        if (
            isinstance(path, str)
            and path.startswith(("evidence/", "artifacts/"))
            and not path.startswith(GATE_PREFIX)
        ):
            out.add(e.actor)
    return {a.casefold() for a in out}


def first_recorded(entries: Iterable[LedgerEntry]) -> dict[str, int]:
    seqs: dict[str, int] = {}
    for e in entries:
        path = e.payload.get("path")
        if isinstance(path, str):
            seqs.setdefault(path, e.seq)
    return seqs


def digest_as_of(manifest: Manifest, seq: int, first_seq: dict[str, int]) -> str:
    """The files digest without gate outputs recorded after ledger entry ``seq``."""
    files: dict[str, ManifestFile] = {
        rel: f
        for rel, f in manifest.files.items()
        if not (rel.startswith(GATE_PREFIX) and first_seq.get(rel, -1) > seq)
    }
    return sha256_bytes(canonical_json({k: v.model_dump() for k, v in files.items()}))


# -- assessing the reviews in a ledger ------------------------------------------------------------
@dataclass
class ReviewState:
    entry: LedgerEntry
    payload: ReviewPayload | None
    problems: list[str] = field(default_factory=list)  # unknown key, forged, ... (not counted)
    current: bool = False

    @property
    def valid(self) -> bool:
        return self.payload is not None and not self.problems


@dataclass
class Assessment:
    states: list[ReviewState]
    findings: list[Finding]
    keyring: Keyring | None

    def current(self, decision: Decision) -> list[ReviewState]:
        return [
            s
            for s in self.states
            if s.valid and s.current and s.payload is not None and s.payload.decision == decision
        ]


def _check_entry(e: LedgerEntry, keyring: Keyring | None) -> ReviewState:
    from finetrail.governance.keys import verify_signature

    try:
        payload = ReviewPayload.model_validate(e.payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        return ReviewState(
            e,
            None,
            [f"malformed review payload ({'.'.join(map(str, first['loc']))}: {first['msg']})"],
        )
    state = ReviewState(e, payload)
    if e.kind != f"{REVIEW_PREFIX}{payload.decision}":
        state.problems.append(f"event kind {e.kind!r} disagrees with decision {payload.decision!r}")
    if not e.signature or not e.signer:
        state.problems.append("review entry is not signed")
        return state
    if keyring is None:
        state.problems.append("no keyring to check the signature against")
        return state
    key = keyring.by_keyid(e.signer)
    if key is None:
        state.problems.append(f"signed by an unknown key {e.signer[:12]}... (not in the keyring)")
        return state
    if key.name != e.actor or key.name != payload.reviewer or payload.keyid != e.signer:
        state.problems.append(
            f"the key belongs to {key.name!r}, the entry names {payload.reviewer!r}"
        )
    if payload.role not in key.roles:
        state.problems.append(f"the keyring does not grant {key.name!r} the role {payload.role!r}")
    try:
        raw = base64.b64decode(e.signature, validate=True)
    except binascii.Error:
        raw = b""
    if not verify_signature(key.public_key, raw, e.signing_bytes()):
        state.problems.append("the signature does not verify (forged or altered entry)")
    return state


def assess(
    entries: list[LedgerEntry], manifest: Manifest | None, keyring: Keyring | None
) -> Assessment:
    """Check every review entry and decide which approvals are current."""
    reviews = [e for e in entries if e.kind.startswith(REVIEW_PREFIX)]
    states = [_check_entry(e, keyring) for e in reviews]
    findings: list[Finding] = []
    first_seq = first_recorded(entries)
    cache: dict[int, str] = {}
    seen: dict[str, ReviewState] = {}
    for s in states:
        loc = f"{LEDGER_NAME}:{s.entry.seq + 1}"
        for p in s.problems:
            code = "forged" if "does not verify" in p else "review"
            findings.append(Finding("error", code, loc, f"review by {s.entry.actor!r}: {p}"))
        if s.payload is None or manifest is None:
            continue
        if s.entry.seq not in cache:
            cache[s.entry.seq] = digest_as_of(manifest, s.entry.seq, first_seq)
        s.current = s.payload.manifest_sha256 == cache[s.entry.seq]
        if not s.valid:
            continue
        who = s.payload.reviewer
        if s.payload.decision == "approve":
            if not s.current:
                findings.append(
                    Finding(
                        "warning",
                        "stale",
                        loc,
                        f"approval by {who!r} binds to files digest "
                        f"{s.payload.manifest_sha256[:12]}...; files changed since",
                    )
                )
            elif who in seen:
                findings.append(
                    Finding(
                        "error",
                        "duplicate",
                        loc,
                        f"second current approval by {who!r} "
                        f"(first at {LEDGER_NAME}:{seen[who].entry.seq + 1})",
                    )
                )
            else:
                seen[who] = s
        elif s.payload.decision == "reject" and s.current:
            seen.pop(who, None)  # approving again after one's own rejection is not a duplicate
    return Assessment(states, findings, keyring)


@dataclass(frozen=True)
class FourEyes:
    satisfied: bool
    counted: tuple[str, ...]  # "name (role)"
    problems: tuple[str, ...]


def four_eyes(assessment: Assessment, rule: Approvals | None, author_names: set[str]) -> FourEyes:
    """Apply a policy's approval requirement to the current, valid reviews."""
    blockers: list[str] = []
    notes: list[str] = []
    latest: dict[str, ReviewState] = {}
    for s in assessment.states:  # a person's latest current decision counts
        if s.valid and s.current and s.payload and s.payload.decision in ("approve", "reject"):
            latest[s.payload.reviewer] = s
    counted: list[ReviewState] = []
    for name, s in latest.items():
        assert s.payload is not None
        if s.payload.decision == "reject":
            blockers.append(f"rejected by {name} ({s.payload.role}): {s.payload.note or 'no note'}")
        elif name.casefold() in author_names and not (rule and rule.author_may_approve):
            notes.append(f"approval by {name} not counted: an author may not approve")
        else:
            counted.append(s)
    for s in assessment.states:
        if not (s.payload and s.payload.decision == "approve"):
            continue
        if not s.valid:
            notes.append(f"approval by {s.payload.reviewer} rejected: {'; '.join(s.problems)}")
        elif not s.current:
            notes.append(f"approval by {s.payload.reviewer} is stale (files changed since)")
    labels = tuple(f"{s.payload.reviewer} ({s.payload.role})" for s in counted if s.payload)
    if rule is not None:
        n = len({s.payload.reviewer.casefold() for s in counted if s.payload})
        if n < rule.count:
            blockers.append(f"{n} of {rule.count} required approvals by distinct people")
        covered = {s.payload.role for s in counted if s.payload}
        blockers += [
            f"no current approval in the role {r!r}" for r in rule.roles if r not in covered
        ]
    return FourEyes(not blockers, labels, tuple(blockers + notes))


def summary(
    assessment: Assessment,
    manifest: Manifest | None,
    author_names: set[str],
    rule: Approvals | None,
) -> ReviewSummary:
    fe = four_eyes(assessment, rule, author_names)
    approvals = assessment.current("approve")
    counted_people = sorted({label.split(" (")[0] for label in fe.counted})
    return ReviewSummary(
        manifest_sha256=manifest.files_digest() if manifest else None,
        approvals=len(counted_people),
        rejections=len({s.payload.reviewer for s in assessment.current("reject") if s.payload}),
        comments=len(assessment.current("comment")),
        stale=sum(
            1
            for s in assessment.states
            if s.valid and not s.current and s.payload and s.payload.decision == "approve"
        ),
        invalid=sum(1 for s in assessment.states if not s.valid),
        approvers=tuple(counted_people),
        roles=tuple(
            sorted(
                {
                    s.payload.role
                    for s in approvals
                    if s.payload and s.payload.reviewer in counted_people
                }
            )
        ),
    )


# -- signing a review ------------------------------------------------------------------------------
def record_review(
    root: str | os.PathLike[str],
    *,
    decision: Decision,
    reviewer: str,
    role: str,
    key_file: str | os.PathLike[str],
    note: str,
    keyring_file: str | os.PathLike[str] | None = None,
    rule: Approvals | None = None,
) -> LedgerEntry:
    """Sign and append a review; raises on every condition the module docstring lists."""
    from finetrail.governance.keys import keyid_of, load_private_key
    from finetrail.governance.ledger import scan_ledger
    from finetrail.governance.verify import verify_workspace
    from finetrail.governance.workspace import Workspace

    ws = Workspace.open(root)
    kr_path = keyring_path(ws.root, keyring_file)
    if kr_path is None:
        raise InputError(
            "no keyring of trusted reviewer keys",
            path=str(ws.root),
            fix="add keys with `finetrail keys add`, or pass --keyring FILE",
        )
    keyring = load_keyring(kr_path)
    key = load_private_key(key_file)
    keyid = keyid_of(key.public_key())
    trusted = keyring.by_keyid(keyid)
    if trusted is None:
        raise InputError(
            "unknown key: its public key is not in the keyring",
            path=str(key_file),
            fix=f"add it with `finetrail keys add` ({kr_path})",
        )
    if trusted.name != reviewer:
        raise InputError(
            f"the key belongs to {trusted.name!r}, not {reviewer!r}", path=str(key_file)
        )
    if role not in trusted.roles:
        raise InputError(
            f"the keyring does not grant {reviewer!r} the role {role!r}",
            field="role",
            fix=f"roles granted: {', '.join(trusted.roles) or 'none'}",
        )
    report = verify_workspace(ws.root, keyring=kr_path)
    if not report.ok:
        raise CheckFailed(
            "refusing to sign a workspace that verify rejects",
            path=str(ws.root),
            why="; ".join(f.render().strip() for f in report.errors[:5]),
            fix="run `finetrail verify` and restore the workspace first",
        )
    manifest = ws.read_manifest()
    entries = scan_ledger(ws.root / LEDGER_NAME).entries
    if decision == "approve":
        if reviewer.casefold() in authors(ws.metadata.owner, entries) and not (
            rule and rule.author_may_approve
        ):
            raise InputError(
                f"self-approval: {reviewer!r} is an author of this workspace",
                fix="ask a reviewer who did not produce the evidence (four-eyes)",
            )
        state = assess(entries, manifest, keyring)
        mine = [
            s
            for s in state.states
            if s.valid
            and s.current
            and s.payload
            and s.payload.reviewer == reviewer
            and s.payload.decision in ("approve", "reject")
        ]
        if mine and mine[-1].payload and mine[-1].payload.decision == "approve":
            raise InputError(f"duplicate approval: {reviewer!r} has already approved these files")
    payload = ReviewPayload(
        decision=decision,
        reviewer=reviewer,
        role=role,
        note=note,
        manifest_sha256=manifest.files_digest(),
        keyid=keyid,
        model=ws.metadata.model,
        version=ws.metadata.version,
    )
    sign: Callable[[bytes], bytes] = key.sign
    return ws.append_event(
        f"{REVIEW_PREFIX}{decision}",
        actor=reviewer,
        payload=payload.model_dump(mode="json"),
        signer=keyid,
        sign=sign,
    )


# -- the verify check ------------------------------------------------------------------------------
def check_reviews(root: Path, ctx: Any) -> list[Finding]:
    """Signatures, keys, roles, duplicates and currency of every review; the keyring's digest."""
    entries: list[LedgerEntry] = getattr(ctx, "entries", [])
    findings = check_keyring_file(root, entries)
    if not any(e.kind.startswith(REVIEW_PREFIX) for e in entries):
        return findings
    path = keyring_path(root, getattr(ctx, "keyring", None))
    keyring: Keyring | None = None
    if path is None:
        findings.append(
            Finding(
                "error",
                "unverifiable",
                LEDGER_NAME,
                "review signatures cannot be checked: no keyring "
                f"(pass --keyring, set {KEYRING_ENV}, or add {KEYRING_FILE} to the workspace)",
            )
        )
        return findings
    try:
        keyring = load_keyring(path)
    except InputError as err:
        findings.append(Finding("error", "modified", str(path), err.what))
    findings += assess(entries, getattr(ctx, "manifest", None), keyring).findings
    return findings
