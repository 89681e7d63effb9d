"""Forgery scenarios against a real workspace: each is caught by ``verify --trust`` and by
``gate --trust``, naming what is wrong, and the honest release passes both (the checks can fail
both ways).

The attacker can write the workspace (a CI job, a training box, a colleague) and uses finetrail's
own API to do it; the trust file lives in the "repository" (``tmp/repo/trust.yaml``), outside
every workspace, and the honest signers' private keys in ``tmp/keys``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.governance import keys as ed25519
from finetrail.governance.anchor import anchor_workspace
from finetrail.governance.checkpoint import CHECKPOINTS_FILE
from finetrail.governance.evidence.workspace import (
    GENESIS,
    LedgerAnchor,
    LedgerEntry,
    Manifest,
    ManifestFile,
)
from finetrail.governance.gate.api import run_gate
from finetrail.governance.io import canonical_json, sha256_bytes
from finetrail.governance.ledger import scan_ledger
from finetrail.governance.policy.load import shipped_policies
from finetrail.governance.review import record_review, trust_in_workspace
from finetrail.governance.workspace import Workspace
from tests.support.evidence import add_adapter, standard_records, write_records
from tests.support.trust import key_entry, write_trust
from tests.support.workspaces import make_key

EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")
REVIEWS = (("alice", "model-risk"), ("bob", "privacy"))


@dataclass
class Org:
    """The honest organisation: its signers' keys and its trust file (both outside workspaces)."""

    base: Path
    keys: Path
    trust: Path

    def key(self, name: str) -> Path:
        return self.keys / f"{name}.key"

    def pub(self, name: str) -> Path:
        return self.keys / f"{name}.pub"

    def role_keys(self) -> dict[str, ed25519.Ed25519PrivateKey]:
        """The keys the organisation's jobs sign their ledger entries with, by role."""
        return {
            role: ed25519.load_private_key(self.key(name))
            for role, name in (("training", "trainer"), ("probes", "prober"), ("gate", "ci-gate"))
        }

    def trust_variant(self, name: str, **changes: dict[str, object]) -> Path:
        """The trust file with some entries changed (by holder name), written beside it."""
        sections: dict[str, list[dict[str, object]]] = {
            "training": [key_entry(self.pub("trainer"), "trainer")],
            "probes": [key_entry(self.pub("prober"), "prober")],
            "gate": [key_entry(self.pub("ci-gate"), "ci-gate")],
            "reviewers": [key_entry(self.pub(n), n, roles=[r]) for n, r in REVIEWS],
        }
        for entries in sections.values():
            for entry in entries:
                entry.update(changes.get(str(entry["name"]), {}))
        return write_trust(self.trust.parent / f"{name}.yaml", **sections)


@pytest.fixture
def org(tmp_path: Path, use_contract_kinds: object) -> Org:
    keys = tmp_path / "keys"
    for name in ("ci-gate", "alice", "bob", "trainer", "prober"):
        make_key(keys, name)
    org = Org(tmp_path, keys, tmp_path / "repo" / "trust.yaml")
    org.trust_variant("trust")
    return org


def make_release(
    org: Org,
    name: str,
    *,
    version: str = "1.0.0",
    reviewed: bool = True,
    gated: bool = True,
    workspace_id: str | None = None,
) -> Path:
    """A release workspace built honestly: every ledger entry signed by its role's key, approvals
    and gate signed under the trust root."""
    with ed25519.signing_by_role(org.role_keys()), ed25519.development_mode(False):
        return _make_release(org, name, version, reviewed, gated, workspace_id)


def _make_release(
    org: Org,
    name: str,
    version: str,
    reviewed: bool,
    gated: bool,
    workspace_id: str | None,
) -> Path:
    root = org.base / "releases" / name
    ws = Workspace.init(
        root,
        model="support-assistant",
        version=version,
        owner="ops",
        intended_purpose="answer customer-support questions",
        provider="Example Org",
        workspace_id=workspace_id,
    )
    write_records(ws, standard_records(add_adapter(ws, actor="ops")), actor="ops")
    if reviewed:
        for reviewer, role in REVIEWS:
            record_review(
                root,
                decision="approve",
                reviewer=reviewer,
                role=role,
                key_file=org.key(reviewer),
                note=f"reviewed as {role}",
                trust=org.trust,
            )
    if gated:
        result = run_gate(
            workspace=root,
            policy=EU,
            signing_key=str(org.key("ci-gate")),
            trust_file=org.trust,
            require_approvals=True,
            registry_update=False,
        )
        assert result.decision.passed and result.decision.approved, result.decision.outcomes
    return root


def verify_cli(capsys: pytest.CaptureFixture[str], root: Path, trust: Path) -> tuple[int, str]:
    code = main(["verify", str(root), "--trust", str(trust)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out + out.err


def gate_cli(
    capsys: pytest.CaptureFixture[str], root: Path, trust: Path
) -> tuple[int, dict[str, object]]:
    code = main(
        [
            "gate",
            str(root),
            "--policy",
            str(EU),
            "--trust",
            str(trust),
            "--require-approvals",
            "--json",
            "--dry-run",
        ]
    )
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, json.loads(out.out)


def fingerprint(public: Path) -> str:
    return "sha256:" + ed25519.keyid_of(ed25519.load_public_key(public))


def _attacker_key(org: Org, name: str) -> tuple[Path, Path]:
    return make_key(org.base / "attacker", name)


def _copy_reviews(source: Path, target: Path) -> None:
    """Append the source release's signed review entries, signatures and all, to the target."""
    ws = Workspace.open(target)
    for e in scan_ledger(source / "ledger.jsonl").entries:
        if e.kind.startswith("review."):
            sig = base64.b64decode(e.signature or "")
            ws.append_event(
                e.kind, actor=e.actor, payload=e.payload, signer=e.signer, sign=lambda _b, s=sig: s
            )


def _copy_gate(source: Path, target: Path) -> None:
    """Record the source release's signed gate decision and attestation in the target."""
    ws = Workspace.open(target)
    for rel, event in (
        ("evidence/gate/0001.json", "gate.decided"),
        ("evidence/gate/0001.dsse.json", "gate.attested"),
    ):
        ws.write_bytes(rel, (source / rel).read_bytes(), event=event, actor="ops")


# -- the scenarios: each attacks (or re-trusts) and says what the checks must name ----------------
@dataclass(frozen=True)
class Attack:
    root: Path  # the workspace to check
    trust: Path  # the trust file to check it with
    code: str  # the finding code verify must report
    names: tuple[str, ...]  # fragments the finding must contain


def untrusted_gate_signer(org: Org) -> Attack:
    """A gate decision signed by a key the trust root does not name (verify used to trust the
    key the decision carries)."""
    root = make_release(org, "dp")
    mallory, pub = _attacker_key(org, "mallory")
    run_gate(workspace=root, policy=EU, signing_key=str(mallory), registry_update=False)
    return Attack(
        root,
        org.trust,
        "untrusted",
        (f"signed by key {fingerprint(pub)}, which the trust root trust.yaml does not name",),
    )


def key_swap_forged_approvals(org: Org) -> Attack:
    """Keys named alice and bob swapped into the workspace keyring, approvals forged with them,
    and the gate signed with a key of the attacker's."""
    root = make_release(org, "dp", reviewed=False, gated=False)
    fakes = {}
    for name, role in REVIEWS:
        private, public = _attacker_key(org, name)
        trust_in_workspace(root, name=name, public_key_file=str(public), roles=(role,), actor="ops")
        record_review(
            root, decision="approve", reviewer=name, role=role, key_file=private, note="lgtm"
        )
        fakes[name] = public
    ci, _ = _attacker_key(org, "ci-gate")
    result = run_gate(
        workspace=root,
        policy=EU,
        signing_key=str(ci),
        require_approvals=True,
        registry_update=False,
    )
    assert result.decision.approvals.satisfied  # keyring mode is fooled: the keyring is in reach
    return Attack(
        root,
        org.trust,
        "untrusted",
        (
            f"review by 'alice': signed by key {fingerprint(fakes['alice'])}",
            f"review by 'bob': signed by key {fingerprint(fakes['bob'])}",
            "gate attestation: signed by key sha256:",
        ),
    )


def revoked_reviewer_key(org: Org) -> Attack:
    """bob's key was revoked (compromised) before the approval it signed."""
    root = make_release(org, "dp")
    trust = org.trust_variant("revoked", bob={"revoked_at": "2026-01-10T00:00:00+00:00"})
    return Attack(
        root,
        trust,
        "revoked",
        (
            f"review by 'bob': key {fingerprint(org.pub('bob'))} (bob, reviewers[1]) signed at "
            "2026-01-15T12:00:00+00:00, after it was revoked (revoked_at 2026-01-10T00:00:00+00:00)",
        ),
    )


def expired_gate_key(org: Org) -> Attack:
    """The gate key's window ended before the decision it signed."""
    root = make_release(org, "dp")
    trust = org.trust_variant("expired", **{"ci-gate": {"not_after": "2026-01-14T00:00:00+00:00"}})
    return Attack(
        root,
        trust,
        "expired",
        ("after it expired (not_after 2026-01-14T00:00:00+00:00)", fingerprint(org.pub("ci-gate"))),
    )


def not_yet_valid_reviewer_key(org: Org) -> Attack:
    """alice's key was only to be used from February (a rotation key used early)."""
    root = make_release(org, "dp")
    trust = org.trust_variant("early", alice={"not_before": "2026-02-01T00:00:00+00:00"})
    return Attack(root, trust, "not-yet-valid", ("review by 'alice'", "before it became valid"))


def reviewer_key_signs_the_gate(org: Org) -> Attack:
    """A reviewer's key signs a gate attestation."""
    root = make_release(org, "dp")
    run_gate(workspace=root, policy=EU, signing_key=str(org.key("alice")), registry_update=False)
    return Attack(
        root,
        org.trust,
        "wrong-role",
        (
            f"{fingerprint(org.pub('alice'))} (alice, reviewers[0]) is trusted as reviewer, not as gate",
        ),
    )


def gate_key_signs_an_approval(org: Org) -> Attack:
    """The CI box's gate key approves, as a reviewer the workspace keyring was made to name."""
    root = make_release(org, "dp")
    for name, role in REVIEWS:  # public keys: anyone can list them in a keyring
        trust_in_workspace(
            root, name=name, public_key_file=str(org.pub(name)), roles=(role,), actor="ops"
        )
    trust_in_workspace(
        root,
        name="ci-gate",
        public_key_file=str(org.pub("ci-gate")),
        roles=("privacy",),
        actor="ops",
    )
    record_review(
        root,
        decision="approve",
        reviewer="ci-gate",
        role="privacy",
        key_file=org.key("ci-gate"),
        note="auto-approved",
    )
    return Attack(
        root,
        org.trust,
        "wrong-role",
        (
            f"{fingerprint(org.pub('ci-gate'))} (ci-gate, gate[0]) is trusted as gate, not as reviewer",
        ),
    )


def approvals_replayed_across_releases(org: Org) -> Attack:
    """The DP release's signed approvals appended to the control release's ledger."""
    dp = make_release(org, "dp")
    control = make_release(org, "control", version="1.0.0-control", reviewed=False, gated=False)
    _copy_reviews(dp, control)
    return Attack(
        control,
        org.trust,
        "replayed",
        ("signed for support-assistant 1.0.0, this workspace is support-assistant 1.0.0-control",),
    )


def decision_replayed_across_releases(org: Org) -> Attack:
    """The DP release's signed gate decision and attestation recorded in the control release."""
    dp = make_release(org, "dp")
    control = make_release(org, "control", version="1.0.0-control", reviewed=False, gated=False)
    _copy_gate(dp, control)
    return Attack(
        control,
        org.trust,
        "replayed",
        (
            "the decision was taken for support-assistant 1.0.0; this workspace is "
            "support-assistant 1.0.0-control",
        ),
    )


def replay_into_a_look_alike_release(org: Org) -> Attack:
    """Decision and approvals copied into another release with the very same model, version,
    owner and creation time (its evidence differs): the ledger each signature binds gives it
    away."""
    dp = make_release(org, "dp")
    dp_id = Workspace.open(dp).metadata.workspace_id
    twin = make_release(org, "twin", reviewed=False, gated=False, workspace_id=dp_id)
    assert (twin / "workspace.json").read_bytes() == (dp / "workspace.json").read_bytes()
    _copy_reviews(dp, twin)
    _copy_gate(dp, twin)
    return Attack(
        twin,
        org.trust,
        "replayed",
        ("the gate judged a ledger of", "this workspace's history differs"),
    )


SCENARIOS: dict[str, Callable[[Org], Attack]] = {
    f.__name__: f
    for f in (
        untrusted_gate_signer,
        key_swap_forged_approvals,
        revoked_reviewer_key,
        expired_gate_key,
        not_yet_valid_reviewer_key,
        reviewer_key_signs_the_gate,
        gate_key_signs_an_approval,
        approvals_replayed_across_releases,
        decision_replayed_across_releases,
        replay_into_a_look_alike_release,
    )
}


def test_the_honest_release_passes_verify_and_gate(
    org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_release(org, "dp")
    code, out = verify_cli(capsys, root, org.trust)
    assert code == 0 and "verify: OK" in out, out
    assert "untrusted" not in out
    code, decision = gate_cli(capsys, root, org.trust)
    assert code == 0 and decision["passed"] and decision["approved"], decision
    # the control release, honest too, passes on its own
    control = make_release(org, "control", version="1.0.0-control")
    assert verify_cli(capsys, control, org.trust)[0] == 0
    assert gate_cli(capsys, control, org.trust)[0] == 0


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_forgery_is_caught_by_verify_and_gate(
    org: Org, capsys: pytest.CaptureFixture[str], scenario: str
) -> None:
    attack = SCENARIOS[scenario](org)
    code, out = verify_cli(capsys, attack.root, attack.trust)
    assert code == 1, out
    lines = [x for x in out.splitlines() if x.startswith("ERROR") and f" {attack.code} " in x]
    assert lines, out
    for name in attack.names:
        assert any(name in x for x in lines), (name, out)
    code, decision = gate_cli(capsys, attack.root, attack.trust)
    assert code == 1 and not decision["passed"]
    integrity = next(o for o in decision["outcomes"] if o["rule"] == "workspace-integrity")  # type: ignore[attr-defined]
    assert integrity["outcome"] == "fail"
    findings = decision["integrity"]["findings"]  # type: ignore[index]
    assert any(attack.code in f and attack.names[0] in f for f in findings), findings


def test_without_a_trust_root_the_key_swap_goes_unnoticed_by_verify_but_fails_the_gate(
    org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    """Why the trust root exists: keyring mode checks signatures against keys the attacker
    controls. verify says so (a warning), and the release gate refuses to pass without one."""
    attack = key_swap_forged_approvals(org)
    code = main(["verify", str(attack.root)])
    out = capsys.readouterr().out
    assert code == 0 and "WARNING untrusted" in out
    signed = sum(1 for e in scan_ledger(attack.root / "ledger.jsonl").entries if e.signature)
    assert signed > 2  # every entry of the honest build, and the two forged approvals
    assert (
        f"signatures not checked against a trust root (1 gate attestation(s), {signed} signed"
        in out
    )
    code = main(["gate", str(attack.root), "--policy", str(EU), "--require-approvals", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 1 and "trust-root [fail, error]" in out


def test_revocation_after_signing_keeps_earlier_signatures(
    org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    """The other way round: a key revoked after it signed, or one whose window covers the
    signature, still counts (rotation does not invalidate past releases)."""
    root = make_release(org, "dp")
    trust = org.trust_variant(
        "later",
        bob={"revoked_at": "2026-02-01T00:00:00+00:00"},
        **{"ci-gate": {"not_after": "2026-01-15T12:00:00+00:00"}},  # the last second still counts
    )
    assert verify_cli(capsys, root, trust)[0] == 0
    assert gate_cli(capsys, root, trust)[0] == 0


@pytest.mark.parametrize("how", ["copy", "symlink", "parent-symlink", "hard-link"])
def test_a_trust_file_inside_the_workspace_is_refused(
    org: Org, capsys: pytest.CaptureFixture[str], tmp_path: Path, how: str
) -> None:
    root = make_release(org, "dp")
    inside = root / "trust.yaml"
    inside.write_bytes(org.trust.read_bytes())
    path = inside
    if how == "symlink":
        path = tmp_path / "looks-outside.yaml"
        os.symlink(inside, path)
    elif how == "parent-symlink":
        os.symlink(root, tmp_path / "alias")
        path = tmp_path / "alias" / "trust.yaml"
    elif how == "hard-link":
        path = tmp_path / "linked.yaml"
        os.link(inside, path)
    for argv in (
        ["verify", str(root), "--trust", str(path)],
        ["gate", str(root), "--policy", str(EU), "--trust", str(path), "--dry-run"],
        ["review", "status", str(root), "--trust", str(path)],
        [
            "review",
            "comment",
            str(root),
            "--reviewer",
            "alice",
            "--role",
            "model-risk",
            "--key",
            str(org.key("alice")),
            "--note",
            "x",
            "--trust",
            str(path),
        ],
    ):
        before = (root / "ledger.jsonl").read_bytes()
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert f"error: {path}: the trust file lies inside the workspace it would judge" in err
        assert "Traceback" not in err
        assert (root / "ledger.jsonl").read_bytes() == before


def test_the_trust_file_can_come_from_the_environment(
    org: Org, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    attack = untrusted_gate_signer(org)
    monkeypatch.setenv("FINETRAIL_TRUST", str(attack.trust))
    assert main(["verify", str(attack.root)]) == 1
    assert "ERROR   untrusted" in capsys.readouterr().out


def test_release_binding_is_signed(org: Org) -> None:
    """Editing the binding of a decision breaks its signature (the binding is in the payload)."""
    root = make_release(org, "dp")
    decision = json.loads((root / "evidence/gate/0001.json").read_text())
    assert decision["release"]["model"] == "support-assistant"
    assert decision["release"]["ledger_entries"] > 0
    env = json.loads((root / "evidence/gate/0001.dsse.json").read_text())
    statement = json.loads(base64.b64decode(env["payload"]))
    assert statement["predicate"]["release"] == decision["release"]
    review = next(
        e for e in scan_ledger(root / "ledger.jsonl").entries if e.kind == "review.approve"
    )
    assert review.payload["workspace_sha256"] == decision["release"]["workspace_sha256"]
    assert datetime.fromisoformat(decision["time"]) == datetime(2026, 1, 15, 12, tzinfo=UTC)


# -- the log: rewrite, rollback, truncation, erasure, replay, unsigned and untrusted entries -------
# Each is checked with `verify --trust --anchor` (the organisation anchored the release's latest
# checkpoint in its repository after building it); the honest release passes the same check.
@dataclass(frozen=True)
class LogAttack:
    root: Path
    code: str  # the finding code verify must report
    names: tuple[str, ...]  # fragments the finding must contain
    severity: str = "ERROR"


def anchored_release(org: Org, name: str = "dp", **kw: object) -> tuple[Path, Path]:
    root = make_release(org, name, **kw)  # type: ignore[arg-type]
    anchor = org.trust.parent / "anchors.jsonl"
    anchor_workspace(root, to=anchor)
    return root, anchor


def _rechain(root: Path, entries: list[LedgerEntry]) -> None:
    """Write ``entries`` back as a ledger with recomputed payload digests, digests and chain,
    and re-anchor the manifest (finetrail's own functions; signatures are kept as they were)."""
    prev, lines = GENESIS, []
    for i, e in enumerate(entries):
        draft = e.model_copy(
            update={
                "seq": i,
                "prev": prev,
                "payload_digest": sha256_bytes(canonical_json(e.payload)),
            }
        )
        draft = draft.model_copy(update={"digest": draft.compute_digest()})
        lines.append(draft.line())
        prev = draft.digest
    (root / "ledger.jsonl").write_bytes(b"".join(lines))
    manifest = Manifest.read(root / "manifest.json")
    anchor = LedgerAnchor(entries=len(entries), head=prev)
    (root / "manifest.json").write_bytes(
        manifest.model_copy(update={"ledger": anchor}).canonical_bytes()
    )


def full_rewrite_of_epsilon(org: Org) -> LogAttack:
    """training.dp.epsilon 3.0 -> 0.1 with the file digest, the manifest, the ledger event and
    the chain recomputed: the log's checkpoints (signed) no longer match."""
    root, _ = anchored_release(org)
    rel = "evidence/training.json"
    data = json.loads((root / rel).read_bytes())
    data["dp"]["epsilon"] = 0.1
    raw = canonical_json(data)
    (root / rel).write_bytes(raw)
    digest = sha256_bytes(raw)
    manifest = Manifest.read(root / "manifest.json")
    files = dict(manifest.files) | {rel: ManifestFile(sha256=digest, size=len(raw))}
    (root / "manifest.json").write_bytes(
        manifest.model_copy(update={"files": files}).canonical_bytes()
    )
    entries = scan_ledger(root / "ledger.jsonl").entries
    entries = [
        e.model_copy(update={"payload": {**e.payload, "sha256": digest}})
        if e.payload.get("path") == rel
        else e
        for e in entries
    ]
    _rechain(root, entries)
    return LogAttack(root, "rewritten", ("is not consistent with the ledger",))


def rollback_to_an_earlier_copy(org: Org) -> LogAttack:
    """A reviewer's signed rejection, anchored; then the workspace restored from the copy taken
    before it."""
    root, _ = anchored_release(org)
    backup = org.base / "backup"
    shutil.copytree(root, backup)
    record_review(
        root,
        decision="reject",
        reviewer="alice",
        role="model-risk",
        key_file=org.key("alice"),
        note="memorises identifiers",
        trust=org.trust,
    )
    anchor_workspace(root, to=org.trust.parent / "anchors.jsonl")
    shutil.rmtree(root)
    shutil.copytree(backup, root)
    return LogAttack(root, "rollback", ("the ledger holds", "rolled back or truncated"))


def truncation_with_reanchored_manifest(org: Org) -> LogAttack:
    """The gate's entries cut from the ledger, their checkpoints dropped, the manifest
    re-anchored and the decision files removed: consistent inside, not with the anchor."""
    root, _ = anchored_release(org)
    entries = scan_ledger(root / "ledger.jsonl").entries
    keep = [e for e in entries if not e.kind.startswith("gate.")]
    cut = len(keep)
    assert entries[:cut] == keep  # the gate's entries are the last ones
    lines = (root / CHECKPOINTS_FILE).read_bytes().splitlines(keepends=True)
    (root / CHECKPOINTS_FILE).write_bytes(b"".join(lines[:cut]))
    manifest = Manifest.read(root / "manifest.json")
    files = {k: v for k, v in manifest.files.items() if not k.startswith("evidence/gate/")}
    for rel in set(manifest.files) - set(files):
        (root / rel).unlink()
    (root / "manifest.json").write_bytes(
        manifest.model_copy(
            update={"files": files, "ledger": LedgerAnchor(entries=cut, head=keep[-1].digest)}
        ).canonical_bytes()
    )
    (root / "ledger.jsonl").write_bytes(b"".join(e.line() for e in keep))
    return LogAttack(root, "rollback", ("the ledger holds",))


def erased_rejection(org: Org) -> LogAttack:
    """A signed rejection erased from the middle of the history, the rest rechained."""
    root = make_release(org, "dp", reviewed=False, gated=False)
    record_review(
        root,
        decision="reject",
        reviewer="alice",
        role="model-risk",
        key_file=org.key("alice"),
        note="no",
        trust=org.trust,
    )
    anchor_workspace(root, to=org.trust.parent / "anchors.jsonl")
    entries = [e for e in scan_ledger(root / "ledger.jsonl").entries if e.kind != "review.reject"]
    _rechain(root, entries)
    return LogAttack(root, "rollback", ("the ledger holds",))


def approvals_replayed_into_another_workspace(org: Org) -> LogAttack:
    """The DP release's signed approvals appended to the control release's ledger."""
    dp = make_release(org, "dp", gated=False)
    control, _ = anchored_release(org, "control", version="1.0.0", reviewed=False, gated=False)
    _copy_reviews(dp, control)
    dp_id = Workspace.open(dp).metadata.workspace_id
    return LogAttack(control, "replayed", (f"signed for workspace id {dp_id}",))


def unsigned_entry(org: Org) -> LogAttack:
    """An entry appended without a signature (development mode)."""
    root, _ = anchored_release(org)
    with ed25519.development_mode(True):
        Workspace.open(root).append_event("probe.note", actor="mallory", payload={"n": 1})
    return LogAttack(root, "unsigned", ("ledger entries are unsigned",), severity="WARNING")


def entry_signed_by_an_untrusted_key(org: Org) -> LogAttack:
    """An entry (and its checkpoint) signed by a key the trust file does not name."""
    root, _ = anchored_release(org)
    mallory, pub = _attacker_key(org, "mallory")
    with ed25519.signing_with(ed25519.load_private_key(mallory)):
        Workspace.open(root).append_event("probe.note", actor="mallory", payload={"n": 1})
    return LogAttack(root, "untrusted", (f"signed by key {fingerprint(pub)}",))


LOG_SCENARIOS: dict[str, Callable[[Org], LogAttack]] = {
    f.__name__: f
    for f in (
        full_rewrite_of_epsilon,
        rollback_to_an_earlier_copy,
        truncation_with_reanchored_manifest,
        erased_rejection,
        approvals_replayed_into_another_workspace,
        unsigned_entry,
        entry_signed_by_an_untrusted_key,
    )
}


def verify_anchored(capsys: pytest.CaptureFixture[str], org: Org, root: Path) -> tuple[int, str]:
    anchor = org.trust.parent / "anchors.jsonl"
    code = main(["verify", str(root), "--trust", str(org.trust), "--anchor", str(anchor)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out + out.err


def test_the_honest_signed_and_anchored_release_passes(
    org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = anchored_release(org)
    code, out = verify_anchored(capsys, org, root)
    assert code == 0 and "verify: OK" in out, out
    # every entry and checkpoint signed by a trusted key, all covered by the latest checkpoint
    warned = {x.split()[1] for x in out.splitlines() if x.startswith("WARNING")}
    assert not warned & {"unsigned", "untrusted", "unchecked", "no-checkpoint"}, out
    code, decision = gate_cli(capsys, root, org.trust)
    assert code == 0, decision
    rule = next(o for o in decision["outcomes"] if o["rule"] == "ledger-entries-signed")  # type: ignore[attr-defined]
    assert rule["outcome"] == "pass", rule


@pytest.mark.parametrize("scenario", list(LOG_SCENARIOS))
def test_log_forgery_is_caught_by_verify_with_trust_and_anchor(
    org: Org, capsys: pytest.CaptureFixture[str], scenario: str
) -> None:
    attack = LOG_SCENARIOS[scenario](org)
    code, out = verify_anchored(capsys, org, attack.root)
    lines = [
        x for x in out.splitlines() if x.startswith(attack.severity) and f" {attack.code} " in x
    ]
    assert lines, out
    for name in attack.names:
        assert any(name in x for x in lines), (name, out)
    if attack.severity == "ERROR":
        assert code == 1, out
    else:  # development mode is allowed, and named; the policy rule fails it
        code, decision = gate_cli(capsys, attack.root, org.trust)
        rule = next(o for o in decision["outcomes"] if o["rule"] == "ledger-entries-signed")  # type: ignore[attr-defined]
        assert rule["outcome"] == "fail", rule
