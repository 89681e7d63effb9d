"""The gate facade: evaluate, record the decision and its attestation, plan the registry step.

``run_gate(*, workspace, policy, ...)`` is what ``finetrail gate`` calls. The decision is written
to ``evidence/gate/<n>.json`` (ledger event ``gate.decided``) and its DSSE envelope to
``evidence/gate/<n>.dsse.json`` (``gate.attested``), signed with Ed25519 when a signing key is
given (``--signing-key`` or ``$FINETRAIL_SIGNING_KEY``).

With a trust root (``trust_file``, ``--trust`` or ``$FINETRAIL_TRUST``; never inside the
workspace) every signature the gate relies on is checked against it, and a decision it records
must be signed by one of its gate keys valid now: an unsigned recording, or a key the trust root
does not name as a gate key, is refused before anything is written (exit 2). Without one, the
``trust-root`` outcome fails (blocking for policies that ask for approvals). A ``keyring_file``
that cannot be read is bad input even when the policy asks for no approvals.

The gate does not talk to the MLflow registry (it imports no mlflow and writes nothing outside
the workspace): when the training evidence names a registered model, ``GateResult.registry`` is
the :class:`~.mlflow_aliases.RegistryPlan` the decision implies, which
``finetrail registry promote`` (:mod:`.promote`) applies from the recorded, signed decision.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from finetrail.errors import FinetrailError, InputError
from finetrail.governance import clock, keys
from finetrail.governance.evidence import registry
from finetrail.governance.evidence.gate import GateDecision, Signer
from finetrail.governance.evidence.store import EvidenceSet
from finetrail.governance.gate import attest
from finetrail.governance.gate.evaluate import evaluate
from finetrail.governance.gate.mlflow_aliases import (
    RegistryPlan,
    RegistryRefused,
    plan_for,
    registry_target,
)
from finetrail.governance.policy.load import LoadedPolicy, load_policy, resolve_policy
from finetrail.governance.trust import TrustRoot

_NUMBERED = re.compile(r"^(\d+)\.json$")


@dataclass(frozen=True)
class GateResult:
    decision: GateDecision
    policy: LoadedPolicy
    decision_path: str | None = None
    attestation_path: str | None = None
    not_recorded: str | None = None
    registry: RegistryPlan | None = None  # what `registry promote` would tag (nothing is tagged)
    registry_skipped: str | None = None  # why `registry promote` would refuse

    @property
    def ok(self) -> bool:
        return self.decision.passed


def next_sequence(root: Path) -> int:
    folder = root / registry.GATE_DIR
    numbers = (
        [int(m.group(1)) for p in folder.glob("*.json") if (m := _NUMBERED.match(p.name))]
        if folder.is_dir()
        else []
    )
    return max(numbers, default=0) + 1


def _check_gate_key(trust: TrustRoot, signer: Signer | None, signing_key: str | None) -> None:
    """A decision recorded under a trust root is signed by one of its gate keys, valid now."""
    if signer is None:
        raise InputError(
            "with a trust root, the gate records only signed decisions",
            why=f"verify --trust refuses unsigned gate decisions ({trust.path})",
            fix="pass --signing-key (a gate key the trust root names), or --dry-run",
        )
    problems = trust.check(keyid=signer.keyid, role="gate", at=clock.now(), now=clock.release_now())
    if problems:
        raise InputError(
            "the trust root does not accept this signing key for gate decisions",
            path=signing_key,
            why="; ".join(p.message for p in problems),
            fix=f"sign with a gate key that {trust.path} names and that is valid now",
        )


def run_gate(
    *,
    workspace: str | os.PathLike[str],
    policy: str | os.PathLike[str] | LoadedPolicy,
    signing_key: str | None = None,
    keyring_file: str | None = None,
    require_approvals: bool = False,
    record: bool = True,
    registry_update: bool | None = None,
    tracking_uri: str | None = None,
    actor: str | None = None,
    trust_file: str | os.PathLike[str] | TrustRoot | None = None,
) -> GateResult:
    """Evaluate ``policy`` on ``workspace``; record the decision and its attestation unless
    ``record`` is false. ``tracking_uri`` only shapes the registry plan; ``registry_update`` is
    accepted for older callers and ignored (the gate tags nothing: ``finetrail registry
    promote``)."""
    from finetrail.governance.review.keyring import load_keyring
    from finetrail.governance.trust import as_trust_root

    del registry_update  # deprecated: the gate never writes to the registry
    root = Path(workspace)
    loaded = (
        policy if isinstance(policy, LoadedPolicy) else load_policy(resolve_policy(str(policy)))
    )
    trust = as_trust_root(trust_file, root)
    if keyring_file:
        load_keyring(keyring_file)  # named, so it must be readable (approvals or not)
    key = keys.load_private_key(signing_key) if signing_key else None
    signer = (
        Signer(keyid=keys.keyid_of(key.public_key()), public_key=keys.public_b64(key.public_key()))
        if key
        else None
    )
    if trust is not None and record:
        _check_gate_key(trust, signer, signing_key)
    target = None  # resolved first, so that a bad registry reference writes nothing
    skipped: str | None = None
    if registry.kind_by_name("training") is not None:
        recs = EvidenceSet(root).records("training")
        try:
            target = registry_target(root, recs[0].data if recs else None, tracking_uri)
        except RegistryRefused as why:
            skipped = f"registry: `finetrail registry promote` would refuse: {why.what}: {why.why}"
    from finetrail.governance.workspace import Workspace, default_actor

    def judge(seq: int) -> GateDecision:
        return evaluate(
            workspace=root,
            policy=loaded,
            keyring_file=keyring_file,
            require_approvals=require_approvals,
            sequence=seq,
            signer=signer,
            trust=trust,
        )

    ws: Workspace | None = None
    not_recorded: str | None = None
    if record:
        try:
            ws = Workspace.open(root)
        except FinetrailError as err:
            not_recorded = f"the workspace cannot be opened: {err.what}"
    if ws is None:
        decision = judge(next_sequence(root))
        plan = plan_for(target, decision, None) if target is not None else None
        return GateResult(
            decision, loaded, not_recorded=not_recorded, registry=plan, registry_skipped=skipped
        )
    actor = default_actor(actor, owner=ws.metadata.owner)
    # one transaction: the number, the evaluation and both writes (no other command interleaves,
    # and a kill leaves both files or neither)
    with ws.transaction():
        seq = next_sequence(root)
        decision = judge(seq)
        rel = registry.gate_location(seq)
        env_rel = registry.gate_envelope_location(seq)
        ws.write_record(
            rel,
            decision,
            event="gate.decided",
            actor=actor,
            extra={
                "passed": decision.passed,
                "approved": decision.approved,
                "policy_id": decision.policy_id,
                "policy_sha256": decision.policy_sha256,
            },
        )
        ws.write_bytes(
            env_rel,
            attest.attest(decision, key=key),
            event="gate.attested",
            actor=actor,
            extra={"signed": key is not None, "keyid": signer.keyid if signer else None},
        )
    plan = plan_for(target, decision, rel) if target is not None else None
    return GateResult(decision, loaded, rel, env_rel, None, plan, skipped)
