"""Attestations: in-toto Statement v1 in a DSSE envelope, signed with Ed25519 (``cryptography``).

- Statement (https://in-toto.io/Statement/v1): subjects are the adapter and the dossier manifest
  (the SHA-256 of the manifest's file map, the digest reviews sign); the predicate is the gate
  decision itself (policy digest, evidence digests, per-rule outcomes).
- Envelope (DSSE v1): ``{"payload", "payloadType", "signatures": [{"keyid", "sig"}]}``; the
  signature is over PAE(payloadType, payload) = ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP
  body`` with lengths in ASCII decimal.
- Keys: :mod:`finetrail.governance.keys` (Ed25519).

:func:`check_attestations` is one of ``verify``'s extra checks. With a trust root it checks every
signature of the envelope against the trust root's *gate* keys (the public key a decision carries
is never trusted on its own), in the key's validity window at the decision's time; it always
checks that the decision was taken for this release (model, version, workspace identity, and the
ledger history the gate judged: :class:`~finetrail.governance.evidence.gate.ReleaseBinding`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, ValidationError

from finetrail.errors import InputError
from finetrail.governance.evidence.base import Frozen
from finetrail.governance.evidence.registry import GATE_DIR
from finetrail.governance.findings import Finding
from finetrail.governance.io import canonical_json, read_json_strict
from finetrail.governance.keys import (
    keyid_of,
    verify_signature,
)

if TYPE_CHECKING:
    from finetrail.governance.evidence.gate import GateDecision
    from finetrail.governance.evidence.workspace import LedgerEntry
    from finetrail.governance.trust import ReleaseIdentity, TrustRoot

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://finetrail.dev/attestations/gate-decision/v1"
MANIFEST_SUBJECT = "manifest.json#files"
_DECISION = re.compile(rf"^{re.escape(GATE_DIR)}/(\d+)\.json$")
_ENVELOPE = re.compile(rf"^{re.escape(GATE_DIR)}/(\d+)\.dsse\.json$")


# -- DSSE ------------------------------------------------------------------------------------------
def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


class EnvelopeSignature(Frozen):
    keyid: str = ""
    sig: str


class Envelope(Frozen):
    payload: str
    payloadType: str
    signatures: tuple[EnvelopeSignature, ...] = ()

    def payload_bytes(self) -> bytes:
        return base64.b64decode(self.payload, validate=True)


def sign_envelope(
    payload: bytes, *, key: Ed25519PrivateKey | None, payload_type: str = PAYLOAD_TYPE
) -> Envelope:
    sigs: tuple[EnvelopeSignature, ...] = ()
    if key is not None:
        sig = key.sign(pae(payload_type, payload))
        sigs = (
            EnvelopeSignature(
                keyid=keyid_of(key.public_key()), sig=base64.b64encode(sig).decode("ascii")
            ),
        )
    return Envelope(
        payload=base64.b64encode(payload).decode("ascii"), payloadType=payload_type, signatures=sigs
    )


# -- in-toto Statement v1 ------------------------------------------------------------------------
class ResourceDescriptor(Frozen):
    name: str
    digest: dict[str, str]
    annotations: dict[str, Any] | None = None


class Statement(Frozen):
    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: tuple[ResourceDescriptor, ...] = Field(min_length=1)
    predicateType: str
    predicate: dict[str, Any]


def build_statement(decision: GateDecision) -> dict[str, Any]:
    subjects: list[dict[str, Any]] = []
    if decision.subject.adapter_sha256:
        subjects.append(
            {
                "name": decision.subject.adapter_path or "adapter",
                "digest": {"sha256": decision.subject.adapter_sha256},
            }
        )
    if decision.subject.manifest_files_sha256:
        subjects.append(
            {
                "name": MANIFEST_SUBJECT,
                "digest": {"sha256": decision.subject.manifest_files_sha256},
                "annotations": {
                    "finetrail.digest": "SHA-256 of the canonical JSON of manifest.json's "
                    "file map (the digest reviews sign)"
                },
            }
        )
    if not subjects:  # a workspace without a readable manifest still gets a bound statement
        subjects.append({"name": "gate-decision", "digest": {"sha256": decision.content_digest()}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": decision.to_json_dict(),
    }


def attest(decision: GateDecision, *, key: Ed25519PrivateKey | None) -> bytes:
    """The DSSE envelope (canonical JSON bytes) for a gate decision."""
    payload = canonical_json(build_statement(decision))
    return canonical_json(sign_envelope(payload, key=key).model_dump(mode="json"))


# -- the verify check -----------------------------------------------------------------------------
def check_attestations(root: Path, ctx: Any) -> list[Finding]:
    """Every gate decision has an envelope whose statement is that decision, correctly signed
    (against the trust root when there is one) and bound to this release."""
    from finetrail.governance.trust import release_identity

    manifest = getattr(ctx, "manifest", None)
    if manifest is None:
        return []
    decisions = {m.group(1): rel for rel in manifest.files if (m := _DECISION.match(rel))}
    envelopes = {m.group(1): rel for rel in manifest.files if (m := _ENVELOPE.match(rel))}
    out: list[Finding] = []
    for n in sorted(set(decisions) - set(envelopes)):
        out.append(
            Finding("error", "missing", decisions[n], "gate decision without its attestation")
        )
    for n in sorted(set(envelopes) - set(decisions)):
        out.append(
            Finding("error", "missing", envelopes[n], "attestation without its gate decision")
        )
    trust = getattr(ctx, "trust", None)
    identity = release_identity(getattr(ctx, "metadata", None))
    entries = getattr(ctx, "entries", None)
    for n in sorted(set(decisions) & set(envelopes)):
        if (root / decisions[n]).is_file() and (root / envelopes[n]).is_file():
            out.extend(  # absent: the core says so
                check_pair(
                    root,
                    decisions[n],
                    envelopes[n],
                    trust=trust,
                    identity=identity,
                    entries=entries,
                )
            )
    return out


def check_pair(
    root: Path,
    decision_rel: str,
    envelope_rel: str,
    *,
    trust: TrustRoot | None = None,
    identity: ReleaseIdentity | None = None,
    entries: list[LedgerEntry] | None = None,
) -> list[Finding]:
    from finetrail.governance.evidence.gate import GateDecision

    def bad(msg: str, code: str = "attestation") -> list[Finding]:
        return [Finding("error", code, envelope_rel, msg)]

    try:
        decision_data = read_json_strict(root / decision_rel)
        decision = GateDecision.model_validate(decision_data)
    except (InputError, ValidationError) as exc:
        return [Finding("error", "modified", decision_rel, f"unreadable gate decision: {exc}")]
    try:
        env = Envelope.model_validate(read_json_strict(root / envelope_rel))
        payload = env.payload_bytes()
        statement = Statement.model_validate(json.loads(payload))
    except (InputError, ValidationError, ValueError, RecursionError, binascii.Error) as exc:
        return bad(f"unreadable envelope or statement: {str(exc).splitlines()[0]}")
    if env.payloadType != PAYLOAD_TYPE:
        return bad(f"payloadType is {env.payloadType!r}, expected {PAYLOAD_TYPE!r}")
    if statement.predicateType != PREDICATE_TYPE:
        return bad(f"predicateType is {statement.predicateType!r}")
    if statement.predicate != decision.to_json_dict():
        return bad(f"the attested predicate differs from {decision_rel}")
    if canonical_json(build_statement(decision)) != payload:
        return bad("the statement's subjects differ from the decision's subject")
    out = check_binding(
        decision, decision_rel, identity=identity, entries=entries, strict=trust is not None
    )
    message = pae(env.payloadType, payload)
    if trust is not None:
        return out + _trusted_signatures(env, decision, trust, message, envelope_rel)
    if decision.signer is None:
        if env.signatures:
            return out + bad("signed, but the decision names no signer")
        unsigned = "attestation is not signed (no signing key was configured)"
        return [*out, Finding("warning", "unsigned", envelope_rel, unsigned)]
    # Without a trust root the signature can only be checked against the key the decision
    # carries: that proves the envelope was not altered, not who signed it (check_trust says so).
    for sig in env.signatures:
        if sig.keyid != decision.signer.keyid:
            continue
        try:
            raw = base64.b64decode(sig.sig, validate=True)
        except binascii.Error:
            return out + bad("signature is not base64", "forged")
        if verify_signature(decision.signer.public_key, raw, message):
            return out
        return out + bad("the Ed25519 signature does not verify", "forged")
    return out + bad(
        f"no signature by the decision's signer {decision.signer.keyid[:12]}...", "forged"
    )


def _trusted_signatures(
    env: Envelope, decision: GateDecision, trust: TrustRoot, message: bytes, rel: str
) -> list[Finding]:
    """Every signature of the envelope is by a gate key of the trust root, valid at the
    decision's time, and verifies with that key; at least one is by the decision's signer."""
    from finetrail.governance.clock import release_now

    if decision.signer is None or not env.signatures:
        return [
            Finding(
                "error",
                "unsigned",
                rel,
                "attestation is not signed: with a trust root every recorded gate decision must "
                "be signed by a gate key it names (gate --signing-key)",
            )
        ]
    out: list[Finding] = []
    if decision.signer.keyid not in {s.keyid for s in env.signatures}:
        out.append(
            Finding(
                "error",
                "forged",
                rel,
                f"no signature by the decision's signer sha256:{decision.signer.keyid}",
            )
        )
    now = release_now()
    for sig in env.signatures:
        problems = trust.check(keyid=sig.keyid, role="gate", at=decision.time, now=now)
        out += [Finding("error", p.code, rel, f"gate attestation: {p.message}") for p in problems]
        key = trust.lookup(sig.keyid)
        if key is None:
            continue
        try:
            raw = base64.b64decode(sig.sig, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if not trust.verify(keyid=sig.keyid, signature=raw, message=message):
            out.append(
                Finding(
                    "error",
                    "forged",
                    rel,
                    f"the Ed25519 signature does not verify with the trusted key "
                    f"sha256:{sig.keyid} ({key.entry.name})",
                )
            )
        if sig.keyid == decision.signer.keyid and decision.signer.public_key != key.public_key_b64:
            out.append(
                Finding(
                    "error",
                    "modified",
                    rel,
                    "the public key the decision carries is not the trusted key of "
                    f"sha256:{sig.keyid}",
                )
            )
    return out


def check_binding(
    decision: GateDecision,
    rel: str,
    *,
    identity: ReleaseIdentity | None,
    entries: list[LedgerEntry] | None,
    strict: bool,
) -> list[Finding]:
    """The decision was taken for this release and this ledger history (else it was copied in
    from another release, or the history was rewritten under it). ``strict``: a decision without
    a binding is an error (with a trust root), else it is accepted as from an older finetrail."""

    def err(code: str, msg: str) -> Finding:
        return Finding("error", code, rel, msg)

    out: list[Finding] = []
    if identity is not None and (
        decision.model != identity.model or decision.model_version != identity.version
    ):
        out.append(
            err(
                "replayed",
                f"the decision was taken for {decision.model} {decision.model_version}; this "
                f"workspace is {identity.model} {identity.version} (copied from another release?)",
            )
        )
    release = decision.release
    if release is None:
        if strict:
            out.append(
                err(
                    "unbound",
                    "the decision is not bound to a release (recorded before release binding): "
                    "run the gate again",
                )
            )
        return out
    if (release.model, release.version) != (decision.model, decision.model_version):
        out.append(err("modified", "the decision's release binding names another model/version"))
    if identity is not None and release.workspace_sha256 != identity.workspace_sha256:
        out.append(
            err(
                "replayed",
                f"the decision was signed for workspace sha256:{release.workspace_sha256[:16]}..., "
                f"this is {identity.describe()} (copied from another release?)",
            )
        )
    if (
        identity is not None
        and release.workspace_id is not None
        and release.workspace_id != identity.workspace_id
    ):
        out.append(
            err(
                "replayed",
                f"the decision was signed for workspace id {release.workspace_id}, this is "
                f"{identity.workspace_id or '(no workspace id)'} (copied from another workspace?)",
            )
        )
    if entries is not None:
        out += _ledger_binding(release.ledger_entries, release.ledger_head, rel, entries, err)
        if release.ledger_root is not None:
            out += _checkpoint_binding(
                release.ledger_entries, release.ledger_root, rel, entries, err
            )
    return out


def _checkpoint_binding(
    n: int, root: str, rel: str, entries: list[LedgerEntry], err: Any
) -> list[Finding]:
    """The log checkpoint the gate judged (size ``n``, RFC 9162 root) is a prefix of this
    ledger: erasing or rewriting any earlier entry invalidates the decision's signature."""
    from finetrail.governance.checkpoint import leaves_of
    from finetrail.governance.merkle_log import tree_hash

    digests = [e.digest for e in entries]
    if n > len(digests) or tree_hash(leaves_of(digests[:n])).hex() != root:
        return [
            err(
                "rewritten",
                f"the gate judged a log of {n} entries with root {root[:16]}...; this ledger's "
                "first entries differ (an earlier entry was erased or rewritten)",
            )
        ]
    return []


def _ledger_binding(
    n: int,
    head: str | None,
    rel: str,
    entries: list[LedgerEntry],
    err: Any,
) -> list[Finding]:
    by_seq = {e.seq: e for e in entries}
    decided = next(
        (e for e in entries if e.kind == "gate.decided" and e.payload.get("path") == rel), None
    )
    out: list[Finding] = []
    if n > 0:
        judged = by_seq.get(n - 1)
        if judged is None or judged.digest != head:
            out.append(
                err(
                    "replayed",
                    f"the gate judged a ledger of {n} entries ending in "
                    f"{(head or '?')[:16]}...; this workspace's history differs (copied from "
                    "another release, or the ledger was rewritten under the decision)",
                )
            )
    if decided is not None and decided.seq < n:
        out.append(
            err(
                "replayed",
                f"the decision claims to have judged {n} ledger entries, but it was recorded "
                f"at entry {decided.seq + 1}",
            )
        )
    return out
