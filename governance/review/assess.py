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

With a trust root (``trust=``, ``--trust FILE``; :mod:`finetrail.governance.trust`) the trust
root's *reviewer* keys replace the keyring: a key counts for the person and the review roles it
names, in its validity window at the entry's time. Every review binds the release it was made
for (model, version and the workspace's identity, :attr:`ReviewPayload.workspace_sha256`), and
its signature covers the previous ledger entry's digest, so it holds only in this workspace's
history.

Rejected at signing time: keys outside the keyring (or the trust root), a key used under another name, a role the
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
    from finetrail.governance.trust import ReleaseIdentity, TrustRoot
    from finetrail.governance.verify_incremental import VerifyCache
    from finetrail.governance.workspace import Workspace

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
    codes: list[str] = field(default_factory=list)  # the finding code of each problem

    def flag(self, code: str, problem: str) -> None:
        self.codes.append(code)
        self.problems.append(problem)

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


def _binding_problems(
    payload: ReviewPayload, identity: ReleaseIdentity | None, *, strict: bool
) -> list[tuple[str, str]]:
    """The review was signed for this release (else it was copied from another)."""
    if identity is None:
        return []
    out = []
    if (payload.model, payload.version) != (identity.model, identity.version):
        out.append(
            (
                "replayed",
                f"signed for {payload.model} {payload.version}, this workspace is "
                f"{identity.model} {identity.version} (replayed from another release?)",
            )
        )
    if payload.workspace_sha256 is None:
        if strict:
            out.append(("unbound", "not bound to a workspace (signed before release binding)"))
    elif payload.workspace_sha256 != identity.workspace_sha256:
        out.append(
            (
                "replayed",
                f"signed for workspace sha256:{payload.workspace_sha256[:16]}..., this is "
                f"{identity.describe()} (replayed from another release?)",
            )
        )
    if payload.workspace_id is not None and payload.workspace_id != identity.workspace_id:
        out.append(
            (
                "replayed",
                f"signed for workspace id {payload.workspace_id}, this is "
                f"{identity.workspace_id or '(no workspace id)'} (replayed from another "
                "workspace?)",
            )
        )
    return out


def _checkpoint_problem(
    e: LedgerEntry, payload: ReviewPayload, entries: list[LedgerEntry]
) -> str | None:
    """The review binds the log checkpoint it was signed after: the first ``ledger_size``
    entries must still hash to ``ledger_root`` (erasing or rewriting any of them shows)."""
    from finetrail.governance.checkpoint import leaves_of
    from finetrail.governance.merkle_log import tree_hash

    if payload.ledger_size is None or payload.ledger_root is None:
        return None
    size = payload.ledger_size
    before = [x.digest for x in entries if x.seq < e.seq]
    if size > len(before) or tree_hash(leaves_of(before[:size])).hex() != payload.ledger_root:
        return (
            f"signed after a log of {size} entries with root {payload.ledger_root[:16]}...; "
            "the ledger before it differs (an earlier entry was erased or rewritten)"
        )
    return None


def _signature_verifies(e: LedgerEntry, public_key_b64: str) -> bool:
    from finetrail.governance.keys import verify_signature

    try:
        raw = base64.b64decode(e.signature or "", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    return verify_signature(public_key_b64, raw, e.signing_bytes())


def _check_entry(
    e: LedgerEntry,
    keyring: Keyring | None,
    *,
    trust: TrustRoot | None = None,
    identity: ReleaseIdentity | None = None,
) -> ReviewState:
    try:
        payload = ReviewPayload.model_validate(e.payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        bad = ReviewState(e, None)
        loc = ".".join(map(str, first["loc"]))
        bad.flag("review", f"malformed review payload ({loc}: {first['msg']})")
        return bad
    state = ReviewState(e, payload)
    if e.kind != f"{REVIEW_PREFIX}{payload.decision}":
        state.flag("review", f"event kind {e.kind!r} disagrees with decision {payload.decision!r}")
    for code, problem in _binding_problems(payload, identity, strict=trust is not None):
        state.flag(code, problem)
    if not e.signature or not e.signer:
        state.flag("unsigned", "review entry is not signed")
        return state
    if trust is not None:
        from finetrail.governance.clock import release_now

        problems = trust.check(
            keyid=e.signer,
            role="reviewer",
            at=e.time,
            name=payload.reviewer,
            review_role=payload.role,
            now=release_now(),
        )
        for p in problems:
            state.flag(p.code, p.message)
        key = trust.lookup(e.signer)
        if key is None:
            return state
        if e.actor != payload.reviewer or payload.keyid != e.signer:
            state.flag(
                "review",
                f"the entry's actor {e.actor!r} and key {payload.keyid[:12]}... do not match "
                f"its signer {key.entry.name!r}",
            )
        if not _signature_verifies(e, key.public_key_b64):
            state.flag(
                "forged",
                "the signature does not verify with the trusted key (forged or altered entry, or "
                "copied from another ledger: it covers the previous entry's digest)",
            )
        return state
    if keyring is None:
        state.flag("review", "no keyring to check the signature against")
        return state
    kr_key = keyring.by_keyid(e.signer)
    if kr_key is None:
        state.flag("review", f"signed by an unknown key {e.signer[:12]}... (not in the keyring)")
        return state
    if kr_key.name != e.actor or kr_key.name != payload.reviewer or payload.keyid != e.signer:
        state.flag(
            "review", f"the key belongs to {kr_key.name!r}, the entry names {payload.reviewer!r}"
        )
    if payload.role not in kr_key.roles:
        state.flag(
            "review", f"the keyring does not grant {kr_key.name!r} the role {payload.role!r}"
        )
    if not _signature_verifies(e, kr_key.public_key):
        state.flag("forged", "the signature does not verify (forged or altered entry)")
    return state


def assess(
    entries: list[LedgerEntry],
    manifest: Manifest | None,
    keyring: Keyring | None,
    *,
    trust: TrustRoot | None = None,
    identity: ReleaseIdentity | None = None,
) -> Assessment:
    """Check every review entry and decide which approvals are current.

    With ``trust`` the trust root's reviewer keys decide (``keyring`` is not consulted);
    ``identity`` is the release the reviews must have been signed for.
    """
    reviews = [e for e in entries if e.kind.startswith(REVIEW_PREFIX)]
    states = [_check_entry(e, keyring, trust=trust, identity=identity) for e in reviews]
    for s in states:
        if s.payload is not None:
            problem = _checkpoint_problem(s.entry, s.payload, entries)
            if problem:
                s.flag("rewritten", problem)
    findings: list[Finding] = []
    first_seq = first_recorded(entries)
    cache: dict[int, str] = {}
    seen: dict[str, ReviewState] = {}
    for s in states:
        loc = f"{LEDGER_NAME}:{s.entry.seq + 1}"
        for i, p in enumerate(s.problems):
            code = s.codes[i] if i < len(s.codes) else "review"
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
def _signer_problems_keyring(
    keyring: Keyring, kr_path: Path, keyid: str, reviewer: str, role: str, key_file: str
) -> None:
    trusted = keyring.by_keyid(keyid)
    if trusted is None:
        raise InputError(
            "unknown key: its public key is not in the keyring",
            path=key_file,
            fix=f"add it with `finetrail keys add` ({kr_path})",
        )
    if trusted.name != reviewer:
        raise InputError(f"the key belongs to {trusted.name!r}, not {reviewer!r}", path=key_file)
    if role not in trusted.roles:
        raise InputError(
            f"the keyring does not grant {reviewer!r} the role {role!r}",
            field="role",
            fix=f"roles granted: {', '.join(trusted.roles) or 'none'}",
        )


def check_reviewer_key(
    trust: TrustRoot,
    *,
    keyid: str,
    reviewer: str,
    role: str,
    path: str | None = None,
    fix: str | None = None,
) -> None:
    """Refuse (:class:`InputError`) unless ``trust`` names ``keyid`` as ``reviewer``'s key for
    the review role ``role``, valid now: what ``review approve`` and the console's sign-off check
    before anything is signed."""
    from finetrail.governance import clock

    problems = trust.check(
        keyid=keyid,
        role="reviewer",
        at=clock.now(),
        name=reviewer,
        review_role=role,
        now=clock.release_now(),
    )
    if problems:
        raise InputError(
            "the trust root does not accept this key for this review",
            path=path,
            why="; ".join(p.message for p in problems),
            fix=fix or f"add the key to {trust.path.name} for {reviewer!r} and the role {role!r}",
        )


def prepare_review(
    ws: Workspace,
    *,
    decision: Decision,
    reviewer: str,
    role: str,
    note: str,
    keyid: str,
    digests: list[str],
    rule: Approvals | None,
    trust: TrustRoot | None,
    keyring: Keyring | None = None,
    verify_keyring: str | os.PathLike[str] | None = None,
    cache: VerifyCache | None = None,
) -> ReviewPayload:
    """The review payload ``keyid`` is to sign, after the checks every sign-off runs (the caller
    holds the workspace lock; ``digests``: the ledger's entry digests before the review).

    Refuses a workspace ``verify`` rejects (:class:`CheckFailed`), an approval by an author of
    the workspace unless ``rule`` allows it, and a second current approval by the same person
    (:class:`InputError`). The key itself is checked by :func:`check_reviewer_key` (with a trust
    root) or against the keyring. ``finetrail review approve`` and the console's browser
    sign-off both build their payload here, so the two write the same record."""
    from finetrail.governance.checkpoint import leaves_of
    from finetrail.governance.merkle_log import tree_hash
    from finetrail.governance.trust import release_identity
    from finetrail.governance.verify import verify_workspace

    report = verify_workspace(ws.root, keyring=verify_keyring, trust=trust, cache=cache)
    if not report.ok:
        raise CheckFailed(
            "refusing to sign a workspace that verify rejects",
            path=str(ws.root),
            why="; ".join(f.render().strip() for f in report.errors[:5]),
            fix="run `finetrail verify` and restore the workspace first",
        )
    manifest = ws.read_manifest()
    entries = report.ledger
    identity = release_identity(ws.metadata)
    if decision == "approve":
        if reviewer.casefold() in authors(ws.metadata.owner, entries) and not (
            rule and rule.author_may_approve
        ):
            raise InputError(
                f"self-approval: {reviewer!r} is an author of this workspace",
                fix="ask a reviewer who did not produce the evidence (four-eyes)",
            )
        state = assess(entries, manifest, keyring, trust=trust, identity=identity)
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
    return ReviewPayload(
        decision=decision,
        reviewer=reviewer,
        role=role,
        note=note,
        manifest_sha256=manifest.files_digest(),
        keyid=keyid,
        model=ws.metadata.model,
        version=ws.metadata.version,
        workspace_sha256=identity.workspace_sha256 if identity else None,
        workspace_id=ws.metadata.workspace_id,
        ledger_size=len(digests),
        ledger_root=tree_hash(leaves_of(digests)).hex(),
    )


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
    trust: TrustRoot | str | os.PathLike[str] | None = None,
) -> LedgerEntry:
    """Sign and append a review; raises on every condition the module docstring lists.

    With ``trust`` (a trust file outside the workspace, or a loaded root) the key must be one of
    its reviewer keys, for ``reviewer`` and ``role``, valid now; the keyring is not needed.
    """
    from finetrail.governance.keys import keyid_of, load_private_key
    from finetrail.governance.trust import as_trust_root
    from finetrail.governance.workspace import Workspace

    ws = Workspace.open(root)
    trust_root = as_trust_root(trust, ws.root)
    keyring: Keyring | None = None
    kr_path = keyring_path(ws.root, keyring_file)
    if trust_root is None:
        if kr_path is None:
            raise InputError(
                "no keyring of trusted reviewer keys",
                path=str(ws.root),
                fix="pass --trust FILE, add keys with `finetrail keys add`, or pass --keyring FILE",
            )
        keyring = load_keyring(kr_path)
    elif keyring_file:
        load_keyring(keyring_file)  # named, so it must be readable
    key = load_private_key(key_file)
    keyid = keyid_of(key.public_key())
    if trust_root is None:
        assert keyring is not None and kr_path is not None
        _signer_problems_keyring(keyring, kr_path, keyid, reviewer, role, str(key_file))
    else:
        check_reviewer_key(
            trust_root,
            keyid=keyid,
            reviewer=reviewer,
            role=role,
            path=str(key_file),
            fix=f"use a reviewer key that {trust_root.path} names for {reviewer!r} "
            f"and the role {role!r}, valid now",
        )
    # verify, then sign, then append, all under the workspace lock: no write lands between
    # the check and the signature, and concurrent reviews serialise
    with ws.transaction() as tx:
        payload = prepare_review(
            ws,
            decision=decision,
            reviewer=reviewer,
            role=role,
            note=note,
            keyid=keyid,
            digests=tx.log_digests(),
            rule=rule,
            trust=trust_root,
            keyring=keyring,
            verify_keyring=kr_path if trust_root is None else keyring_file,
        )
        sign: Callable[[bytes], bytes] = key.sign
        return tx.event(
            f"{REVIEW_PREFIX}{decision}",
            actor=reviewer,
            payload=payload.model_dump(mode="json"),
            signer=keyid,
            sign=sign,
        )


# -- the verify check ------------------------------------------------------------------------------
def check_reviews(root: Path, ctx: Any) -> list[Finding]:
    """Signatures, keys, roles, release binding, duplicates and currency of every review (against
    the trust root when there is one, else the keyring); the keyring's digest."""
    from finetrail.governance.trust import release_identity

    entries: list[LedgerEntry] = getattr(ctx, "entries", [])
    findings = check_keyring_file(root, entries)
    if not any(e.kind.startswith(REVIEW_PREFIX) for e in entries):
        return findings
    manifest = getattr(ctx, "manifest", None)
    identity = release_identity(getattr(ctx, "metadata", None))
    trust = getattr(ctx, "trust", None)
    if trust is not None:
        return findings + assess(entries, manifest, None, trust=trust, identity=identity).findings
    path = keyring_path(root, getattr(ctx, "keyring", None))
    keyring: Keyring | None = None
    if path is None:
        findings.append(
            Finding(
                "error",
                "unverifiable",
                LEDGER_NAME,
                "review signatures cannot be checked: no trust root or keyring (pass --trust "
                f"FILE or --keyring FILE, set {KEYRING_ENV}, or add {KEYRING_FILE} to the "
                "workspace)",
            )
        )
        return findings
    try:
        keyring = load_keyring(path)
    except InputError as err:
        findings.append(Finding("error", "modified", str(path), err.what))
    findings += assess(entries, manifest, keyring, identity=identity).findings
    return findings
