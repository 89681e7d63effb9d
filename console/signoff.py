"""Sign-off in the browser: the server prepares the exact bytes, the browser signs, the server checks.

The reviewer's Ed25519 key never leaves the browser (WebCrypto, non-extractable, IndexedDB). A
sign-off is two requests:

1. :func:`prepare` runs the checks ``finetrail review approve`` runs before it signs, with the
   same functions (:func:`~finetrail.governance.review.assess.check_reviewer_key`,
   :func:`~finetrail.governance.review.assess.prepare_review`) (the trust
   root names this key for this person and review role and it is valid now; ``verify`` accepts the
   workspace; no self-approval by an author; no second current approval), builds the same
   :class:`~finetrail.governance.evidence.review.ReviewPayload` and the ledger entry it would append
   (sequence, previous digest, time), and returns that entry's
   :meth:`~finetrail.governance.evidence.workspace.LedgerEntry.signing_bytes`.
2. :func:`complete` verifies the browser's signature over those bytes with the key from the
   trust file (never a key the browser sends), runs the checks again under the workspace lock and
   appends the event with ``Workspace.append_event``: its ``sign`` hook returns the browser's
   signature only when the bytes the ledger builds are the bytes that were signed. When another
   event landed in between (or the clock's second moved on) the entry differs and nothing is
   written: :class:`SigningMoved`, and the browser asks again.

The appended entry is what the CLI writes (kind ``review.<decision>``, the reviewer as actor, the
key id as signer); ``verify``, the gate and ``review status`` check it with the same code
(:func:`finetrail.governance.review.assess.assess`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetrail.errors import FinetrailError, InputError

if TYPE_CHECKING:
    from finetrail.console.releases import ReleaseRef
    from finetrail.governance.trust import TrustRoot
    from finetrail.governance.workspace import Workspace

DECISIONS = ("approve", "reject")


class SigningMoved(FinetrailError):
    """The ledger moved on between prepare and complete: sign the new bytes."""


class NeedsSignature(FinetrailError):
    """The commit asks the reviewer's key to sign more than the entry (the log checkpoint the
    transaction writes after it): ``message`` is what to sign; nothing was written."""

    def __init__(self, message: bytes) -> None:
        super().__init__("the commit needs the reviewer's signature over the log checkpoint")
        self.message = message


@dataclass(frozen=True)
class Prepared:
    kind: str
    actor: str
    keyid: str
    payload: dict[str, Any]
    seq: int
    signing_bytes: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "actor": self.actor,
                "keyid": self.keyid,
                "payload": self.payload,
                "seq": self.seq,
                "signing_bytes": base64.b64encode(self.signing_bytes).decode("ascii"),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Prepared:
        d = json.loads(text)
        return cls(
            d["kind"], d["actor"], d["keyid"], d["payload"], d["seq"],
            base64.b64decode(d["signing_bytes"]),
        )  # fmt: skip


def _b64(text: str, what: str, size: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InputError(f"the {what} is not base64") from exc
    if size is not None and len(raw) != size:
        raise InputError(f"the {what} is {len(raw)} bytes, an Ed25519 one is {size}")
    return raw


def load_root(ref: ReleaseRef, trust_file: Any) -> TrustRoot:
    from finetrail.governance.trust import load_trust

    if trust_file is None:
        raise InputError(
            "this console was started without a trust file: no sign-off can be checked",
            fix="restart it with `finetrail serve --trust FILE`",
        )
    return load_trust(trust_file, workspace=ref.path)


def _payload(
    ref: ReleaseRef,
    ws: Workspace,
    trust: TrustRoot,
    *,
    reviewer: str,
    role: str,
    keyid: str,
    decision: str,
    note: str,
    digests: list[str],
) -> dict[str, Any]:
    """What ``record_review`` checks and builds before it signs, with the same functions
    (:func:`~finetrail.governance.review.assess.check_reviewer_key`,
    :func:`~finetrail.governance.review.assess.prepare_review`); verify uses the console's
    incremental cache of this workspace."""
    from finetrail.console.releases import policy_rule, verify_cache
    from finetrail.governance.review.assess import check_reviewer_key, prepare_review

    check_reviewer_key(
        trust,
        keyid=keyid,
        reviewer=reviewer,
        role=role,
        fix=f"ask an admin to add your enrolled key to {trust.path.name} for {reviewer!r} "
        f"and the role {role!r}",
    )
    gates = sorted(ws.root.glob("evidence/gate/*.json"))
    gate = json.loads(gates[-1].read_text()) if gates else None
    rule, _ = policy_rule(gate) if isinstance(gate, dict) else (None, "")
    payload = prepare_review(
        ws,
        decision=decision,  # type: ignore[arg-type]
        reviewer=reviewer,
        role=role,
        note=note,
        keyid=keyid,
        digests=digests,
        rule=rule,
        trust=trust,
        cache=verify_cache(ref),
    )
    return payload.model_dump(mode="json")


def prepare(
    ref: ReleaseRef,
    *,
    reviewer: str,
    decision: str,
    role: str,
    note: str,
    public_key_b64: str,
    trust_file: Any,
) -> Prepared:
    """The checks, the payload ``review approve`` signs, and the entry's signing bytes."""
    from finetrail.governance import clock
    from finetrail.governance.checkpoint import digests_in
    from finetrail.governance.evidence.workspace import GENESIS, LedgerEntry
    from finetrail.governance.io import sha256_bytes
    from finetrail.governance.ledger import LEDGER_NAME, payload_digest, read_tail
    from finetrail.governance.review.assess import REVIEW_PREFIX
    from finetrail.governance.workspace import Workspace, read_locked

    if decision not in DECISIONS:
        raise InputError(f"unknown decision {decision!r}", fix="approve or reject")
    keyid = sha256_bytes(_b64(public_key_b64, "public key", 32))
    trust = load_root(ref, trust_file)
    ws = Workspace.open(ref.path)
    with read_locked(ws.root):
        tail = read_tail(ws.root / LEDGER_NAME)
        with open(ws.root / LEDGER_NAME, "rb") as fh:
            digests = digests_in(fh.read(tail.complete_end))
        payload = _payload(
            ref, ws, trust, reviewer=reviewer, role=role, keyid=keyid, decision=decision, note=note,
            digests=digests,
        )  # fmt: skip
    kind = f"{REVIEW_PREFIX}{decision}"
    draft = LedgerEntry(
        seq=tail.seq,
        kind=kind,
        time=clock.now(),
        actor=reviewer,
        payload=payload,
        payload_digest=payload_digest(payload),
        prev=tail.prev,
        signer=keyid,
        signature=None,
        digest=GENESIS,
    )
    return Prepared(kind, reviewer, keyid, payload, tail.seq, draft.signing_bytes())


def complete(
    ref: ReleaseRef,
    prepared: Prepared,
    *,
    signature_b64: str,
    trust_file: Any,
    extra: list[dict[str, str]] | None = None,
) -> Any:
    """Verify the browser's signature and append the review; returns the ledger entry.

    ``extra`` holds the reviewer's further signatures (``message``, ``signature``, base64) over
    what the commit asked to be signed besides the entry (:class:`NeedsSignature`: the log
    checkpoint); each is verified with the trusted key and used only for exactly that message.
    """
    import hashlib

    from finetrail.governance.workspace import Workspace

    signature = _b64(signature_b64, "signature", 64)
    trust = load_root(ref, trust_file)
    if not trust.verify(keyid=prepared.keyid, signature=signature, message=prepared.signing_bytes):
        raise InputError(
            "the signature does not verify over the prepared review with the trusted key",
            why="signed with another key, or over other bytes (another release's or an older "
            "request's)",
        )
    more: dict[str, bytes] = {}
    for item in (extra or [])[:4]:
        msg = _b64(str(item.get("message", "")), "signed message")
        sig = _b64(str(item.get("signature", "")), "signature", 64)
        if not trust.verify(keyid=prepared.keyid, signature=sig, message=msg):
            raise InputError("a further signature does not verify with the trusted key")
        more[hashlib.sha256(msg).hexdigest()] = sig
    p = prepared.payload
    ws = Workspace.open(ref.path)
    entry_signed = False

    def sign(message: bytes) -> bytes:
        nonlocal entry_signed
        if entry_signed:  # after the entry: the transaction's checkpoint
            known = more.get(hashlib.sha256(message).hexdigest())
            if known is None:
                raise NeedsSignature(message)
            return known
        entry_signed = True
        if message != prepared.signing_bytes:
            raise SigningMoved(
                "the ledger moved on since the review was prepared",
                why=f"prepared {prepared.signing_bytes[:300]!r}, now {message[:300]!r}",
                fix="sign the review again (the console does it for you)",
            )
        return signature

    with ws.transaction() as tx:
        if (ws.metadata.model, ws.metadata.version) != (p["model"], p["version"]):
            raise InputError("the prepared review names another release")
        again = _payload(
            ref, ws, trust, reviewer=prepared.actor, role=str(p["role"]), keyid=prepared.keyid,
            decision=str(p["decision"]), note=str(p["note"]), digests=tx.log_digests(),
        )  # fmt: skip
        if again != p:  # the same checks pass and build the same payload under the lock
            raise SigningMoved("the release changed since the review was prepared")
        if ws.read_manifest().files_digest() != p["manifest_sha256"]:
            raise SigningMoved("the release's files changed since the review was prepared")
        return tx.event(
            prepared.kind, actor=prepared.actor, payload=p, signer=prepared.keyid, sign=sign
        )
