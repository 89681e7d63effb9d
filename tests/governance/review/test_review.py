"""Signed sign-off: keyring, approvals bound to files, four-eyes rules, what is rejected."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.errors import CheckFailed, InputError
from finetrail.governance.evidence.workspace import LedgerEntry
from finetrail.governance.gate.evaluate import evaluate
from finetrail.governance.io import canonical_json
from finetrail.governance.policy.load import load_policy, shipped_policies
from finetrail.governance.review import record_review
from finetrail.governance.verify import verify_workspace
from tests.support.trust import fixture_signing, trust_for
from tests.support.workspaces import (
    add_reviewers,
    approve,
    build_workspace,
    make_key,
)

EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")


@pytest.fixture
def ws(tmp_path: Path, use_contract_kinds: object) -> tuple[Path, dict[str, Path]]:
    root = build_workspace(tmp_path / "ws").root
    keys = add_reviewers(root, tmp_path / "keys")
    return root, keys


def approvals_outcome(root: Path, **kw: object) -> tuple[bool, str]:
    """Whether the policy's approval rule is met (keyring mode: the gate itself also needs a
    trust root, tested in test_trust.py), and its message."""
    d = evaluate(workspace=root, policy=load_policy(EU), **kw)  # type: ignore[arg-type]
    o = next(o for o in d.outcomes if o.rule == "approvals")
    return o.outcome == "pass", o.message


def test_cli_flow_generate_trust_approve(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_workspace(tmp_path / "ws").root
    keys = tmp_path / "keys"
    for name, role in (("bob", "model-risk"), ("carol", "privacy")):
        assert main(["keys", "generate", "--reviewer", name, "--out", str(keys)]) == 0
        with fixture_signing():  # the training job's key signs the keyring event
            code = main(
                [
                    "keys",
                    "add",
                    "--reviewer",
                    name,
                    "--public-key",
                    str(keys / f"{name}.pub"),
                    "--role",
                    role,
                    "--workspace",
                    str(root),
                ]
            )
        assert code == 0
    capsys.readouterr()
    for name, role in (("bob", "model-risk"), ("carol", "privacy")):
        code = main(
            [
                "review",
                "approve",
                str(root),
                "--reviewer",
                name,
                "--role",
                role,
                "--key",
                str(keys / f"{name}.key"),
                "--note",
                "checked the dossier",
            ]
        )
        assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "approve: carol (privacy) signed files digest" in out
    assert verify_workspace(root).ok
    # the release gate checks the same signatures against a trust root kept outside
    trust = trust_for(
        keys, tmp_path / "trust.yaml", reviewers={"bob": ("model-risk",), "carol": ("privacy",)}
    )
    code = main(
        [
            "gate",
            str(root),
            "--policy",
            str(EU),
            "--require-approvals",
            "--trust",
            str(trust),
            "--signing-key",
            str(keys / "ci-gate.key"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "approvals: in place (bob (model-risk), carol (privacy))" in out
    assert verify_workspace(root, trust=trust).ok
    assert main(["review", "status", str(root), "--policy", str(EU)]) == 0
    out = capsys.readouterr().out
    assert "approve  bob (model-risk) [current]: checked the dossier" in out


def test_approval_binds_to_manifest_digest_and_is_signed(ws: tuple[Path, dict[str, Path]]) -> None:
    root, keys = ws
    from finetrail.governance.workspace import Workspace

    entry = record_review(
        root, decision="approve", reviewer="bob", role="model-risk", key_file=keys["bob"], note="ok"
    )
    assert entry.payload["manifest_sha256"] == Workspace.open(root).manifest_digest()
    assert entry.signer == entry.payload["keyid"] and entry.signature


def test_four_eyes_count_and_roles(ws: tuple[Path, dict[str, Path]]) -> None:
    root, keys = ws
    assert approvals_outcome(root) == (
        False,
        "0 of 2 required approvals by distinct people; "
        "no current approval in the role 'model-risk'; "
        "no current approval in the role 'privacy'",
    )
    approve(root, keys, (("bob", "model-risk"),))
    assert approvals_outcome(root) == (
        False,
        "1 of 2 required approvals by distinct people; no current approval in the role 'privacy'",
    )
    approve(root, keys, (("dave", "risk-owner"),))  # two people, but the privacy role is missing
    assert approvals_outcome(root) == (False, "no current approval in the role 'privacy'")
    approve(root, keys, (("carol", "privacy"),))
    approved, message = approvals_outcome(root)
    assert approved and message.startswith("approved by bob (model-risk), dave (risk-owner), carol")


def test_later_change_makes_approvals_stale(ws: tuple[Path, dict[str, Path]]) -> None:
    root, keys = ws
    from finetrail.governance.workspace import Workspace

    approve(root, keys, (("bob", "model-risk"), ("carol", "privacy")))
    assert approvals_outcome(root)[0]
    Workspace.open(root).write_bytes(
        "artifacts/notes.txt", b"a later file\n", event="artifact.added", actor="alice"
    )
    approved, message = approvals_outcome(root)
    assert not approved
    assert "approval by bob is stale (files changed since)" in message
    report = verify_workspace(root)
    assert report.ok  # stale approvals are reported, not an integrity failure
    stale = [f for f in report.findings if f.code == "stale"]
    assert len(stale) == 2 and "files changed since" in stale[0].message
    # re-approval of the new files is allowed
    approve(root, keys, (("bob", "model-risk"), ("carol", "privacy")))
    assert approvals_outcome(root)[0]


def test_gate_decisions_do_not_make_approvals_stale(
    ws: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, keys = ws
    approve(root, keys, (("bob", "model-risk"), ("carol", "privacy")))
    keydir = keys["bob"].parent
    trust = trust_for(keydir, keydir.parent / "trust.yaml")
    signed = ["--trust", str(trust), "--signing-key", str(keydir / "ci-gate.key")]
    for _ in range(2):
        # the gate signs its own ledger entries too, so the second run judges signed ones
        args = ["--ledger-key", str(keydir / "ci-gate.key"), "gate", str(root), "--policy"]
        assert main([*args, str(EU), "--require-approvals", *signed]) == 0
    assert "approvals: in place" in capsys.readouterr().out
    assert not [f for f in verify_workspace(root).findings if f.code == "stale"]
    assert verify_workspace(root, trust=trust).ok


@pytest.mark.parametrize(
    ("reviewer", "role", "key", "error"),
    [
        ("bob", "model-risk", "mallory", "unknown key: its public key is not in the keyring"),
        ("carol", "privacy", "bob", "the key belongs to 'bob', not 'carol'"),
        ("bob", "privacy", "bob", "the keyring does not grant 'bob' the role 'privacy'"),
    ],
)
def test_rejected_at_signing(
    ws: tuple[Path, dict[str, Path]], tmp_path: Path, reviewer: str, role: str, key: str, error: str
) -> None:
    root, keys = ws
    keys = {**keys, "mallory": make_key(tmp_path / "other", "mallory")[0]}
    with pytest.raises(InputError, match=error):
        record_review(
            root, decision="approve", reviewer=reviewer, role=role, key_file=keys[key], note=""
        )


def test_self_approval_rejected(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_workspace(tmp_path / "ws").root
    keys = add_reviewers(root, tmp_path / "keys", {"alice": ("model-risk",), "bob": ("privacy",)})
    code = main(
        [
            "review",
            "approve",
            str(root),
            "--reviewer",
            "alice",
            "--role",
            "model-risk",
            "--key",
            str(keys["alice"]),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "self-approval: 'alice' is an author of this workspace" in err
    # a comment by the author is fine
    assert (
        main(
            [
                "review",
                "comment",
                str(root),
                "--reviewer",
                "alice",
                "--role",
                "model-risk",
                "--key",
                str(keys["alice"]),
                "--note",
                "ready for review",
            ]
        )
        == 0
    )


def test_duplicate_approval_rejected(ws: tuple[Path, dict[str, Path]]) -> None:
    root, keys = ws
    approve(root, keys, (("bob", "model-risk"),))
    with pytest.raises(
        InputError, match="duplicate approval: 'bob' has already approved these files"
    ):
        approve(root, keys, (("bob", "risk-owner"),))


def test_refuses_to_sign_a_tampered_workspace(ws: tuple[Path, dict[str, Path]]) -> None:
    root, keys = ws
    (root / "evidence/bias.json").write_bytes(b"{}\n")
    with pytest.raises(CheckFailed, match="refusing to sign a workspace that verify rejects"):
        approve(root, keys, (("bob", "model-risk"),))


def test_rejection_blocks_until_reapproved(
    ws: tuple[Path, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, keys = ws
    approve(root, keys, (("bob", "model-risk"), ("carol", "privacy")))
    assert (
        main(
            [
                "review",
                "reject",
                str(root),
                "--reviewer",
                "carol",
                "--role",
                "privacy",
                "--key",
                str(keys["carol"]),
                "--note",
                "exposure plot missing",
            ]
        )
        == 0
    )
    approved, message = approvals_outcome(root)
    assert not approved and "rejected by carol (privacy): exposure plot missing" in message
    assert (
        main(
            [
                "review",
                "reject",
                str(root),
                "--reviewer",
                "carol",
                "--role",
                "privacy",
                "--key",
                str(keys["carol"]),
            ]
        )
        == 2
    )  # a rejection needs a note
    approve(root, keys, (("carol", "privacy"),))
    assert approvals_outcome(root)[0]
    assert verify_workspace(root).ok  # approve, reject, approve again is no duplicate


def _rewrite_entry(
    root: Path, seq: int, change: dict[str, object], *, resign: bool = False
) -> None:
    """Edit one ledger entry and re-chain everything after it, as an attacker with write access could."""
    from finetrail.governance.evidence.workspace import Manifest
    from finetrail.governance.ledger import payload_digest

    lines = (root / "ledger.jsonl").read_bytes().splitlines()
    entries = [LedgerEntry.model_validate_json(x) for x in lines]
    prev = entries[seq - 1].digest if seq else "0" * 64
    out = []
    for e in entries:
        if e.seq == seq:
            e = e.model_copy(update=change)
            e = e.model_copy(update={"payload_digest": payload_digest(e.payload)})
        if e.seq >= seq:
            e = e.model_copy(update={"prev": prev})
            e = e.model_copy(update={"digest": e.compute_digest()})
            prev = e.digest
        out.append(e.line())
    (root / "ledger.jsonl").write_bytes(b"".join(out))
    m = Manifest.read(root / "manifest.json")
    m = m.model_copy(update={"ledger": m.ledger.model_copy(update={"head": prev})})
    (root / "manifest.json").write_bytes(m.canonical_bytes())


def test_verify_detects_altered_review_even_when_rechained(
    ws: tuple[Path, dict[str, Path]],
) -> None:
    root, keys = ws
    approve(root, keys, (("bob", "model-risk"),))
    entries = [
        LedgerEntry.model_validate_json(x)
        for x in (root / "ledger.jsonl").read_bytes().splitlines()
    ]
    review = entries[-1]
    payload = {**review.payload, "role": "privacy"}  # escalate the role, keep bob's signature
    _rewrite_entry(root, review.seq, {"payload": payload})
    report = verify_workspace(root)
    # the checkpoints written after it are broken too (the rewrite changed a covered entry)
    assert sorted(f.code for f in report.errors) == ["forged", "review", "rewritten"], (
        report.render()
    )
    assert any(
        "the signature does not verify (forged or altered entry)" in f.message
        for f in report.errors
    )
    assert not approvals_outcome(root)[0]


def test_verify_rejects_review_signed_by_unknown_key(
    ws: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    root, keys = ws
    approve(root, keys, (("bob", "model-risk"),))
    entries = [
        LedgerEntry.model_validate_json(x)
        for x in (root / "ledger.jsonl").read_bytes().splitlines()
    ]
    review = entries[-1]
    from finetrail.governance import keys as ed25519

    mallory = ed25519.generate_key()
    keyid = ed25519.keyid_of(mallory.public_key())
    forged = review.model_copy(
        update={"signer": keyid, "payload": {**review.payload, "keyid": keyid}}
    )
    forged = forged.model_copy(
        update={"signature": base64.b64encode(mallory.sign(forged.signing_bytes())).decode()}
    )
    _rewrite_entry(
        root,
        review.seq,
        {"signer": forged.signer, "payload": forged.payload, "signature": forged.signature},
    )
    report = verify_workspace(root)
    assert any("signed by an unknown key" in f.message for f in report.errors), report.render()


def test_verify_detects_duplicate_approvals(ws: tuple[Path, dict[str, Path]]) -> None:
    root, keys = ws
    from finetrail.governance import keys as ed25519
    from finetrail.governance.workspace import Workspace

    approve(root, keys, (("bob", "model-risk"),))
    ws_ = Workspace.open(root)
    key = ed25519.load_private_key(keys["bob"])
    entries = ws_.ledger.entries()
    payload = dict(entries[-1].payload)
    ws_.append_event(
        "review.approve", actor="bob", payload=payload, signer=payload["keyid"], sign=key.sign
    )
    report = verify_workspace(root)
    assert [f.code for f in report.errors] == ["duplicate"]
    assert "second current approval by 'bob'" in report.errors[0].message


def test_keyring_edited_outside_finetrail(ws: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    root, keys = ws
    approve(root, keys, (("bob", "model-risk"),))
    kr = json.loads((root / "keyring.json").read_text())
    kr["keys"][0]["roles"] = ["model-risk", "privacy", "risk-owner"]
    (root / "keyring.json").write_bytes(canonical_json(kr))
    report = verify_workspace(root)
    assert ("modified", "keyring.json") in [(f.code, f.location) for f in report.errors]


def test_reviews_without_keyring_are_unverifiable(
    ws: tuple[Path, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, keys = ws
    approve(root, keys, (("bob", "model-risk"),))
    external = tmp_path / "repo-keyring.json"
    (root / "keyring.json").rename(external)
    report = verify_workspace(root)
    codes = {f.code for f in report.errors}
    assert {"missing", "unverifiable"} <= codes
    report = verify_workspace(root, keyring=external)  # a keyring kept in the repository
    assert {f.code for f in report.errors} == {"missing"}  # only the workspace copy is gone
    # the environment variable reaches verify through the CLI option only
    monkeypatch.setenv("FINETRAIL_KEYRING", str(external))
    assert {f.code for f in verify_workspace(root).errors} == codes


def test_repository_keyring_given_on_the_command_line(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_workspace(tmp_path / "ws").root
    keyring = tmp_path / "repo" / "keyring.json"
    keys = {}
    for name, role in (("bob", "model-risk"), ("carol", "privacy")):
        keys[name], public = make_key(tmp_path / "keys", name)
        assert (
            main(
                [
                    "keys",
                    "add",
                    "--reviewer",
                    name,
                    "--public-key",
                    str(public),
                    "--role",
                    role,
                    "--keyring",
                    str(keyring),
                ]
            )
            == 0
        )
    for name, role in (("bob", "model-risk"), ("carol", "privacy")):
        assert (
            main(
                [
                    "review",
                    "approve",
                    str(root),
                    "--reviewer",
                    name,
                    "--role",
                    role,
                    "--key",
                    str(keys[name]),
                    "--keyring",
                    str(keyring),
                ]
            )
            == 0
        )
    capsys.readouterr()
    code = main(
        [
            "gate",
            str(root),
            "--policy",
            str(EU),
            "--require-approvals",
            "--keyring",
            str(keyring),
            "--json",
            "--dry-run",
        ]
    )
    decision = json.loads(capsys.readouterr().out)
    # the approvals count; only the missing trust root fails the release gate
    assert code == 1 and decision["approvals"]["satisfied"]
    assert [o["rule"] for o in decision["outcomes"] if o["outcome"] != "pass"] == [
        "trust-root",
        "ledger-entries-signed",  # the test's entries are unsigned (development mode)
    ]
    assert not (root / "keyring.json").exists()
    report = verify_workspace(root)  # without the keyring the signatures cannot be checked
    assert [f.code for f in report.errors] == ["unverifiable"]
