"""Attestations: in-toto Statement v1 in a DSSE envelope, checked by independent implementations."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import nacl.signing
import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from finetrail.cli import main
from finetrail.governance import keys as ed25519
from finetrail.governance.gate import attest
from finetrail.governance.io import canonical_json, sha256_bytes
from finetrail.governance.verify import verify_workspace
from tests.support.trust import trust_for
from tests.support.workspaces import build_workspace, make_key


def spec_pae(payload_type: str, payload: bytes) -> bytes:
    """PAE written from the DSSE v1 spec text, independently of finetrail's."""
    t = payload_type.encode()
    return b" ".join([b"DSSEv1", str(len(t)).encode(), t, str(len(payload)).encode(), payload])


@pytest.fixture
def signed(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path]:
    root = build_workspace(tmp_path / "ws").root
    private, public = make_key(tmp_path / "keys", "ci-gate")
    trust = trust_for(tmp_path / "keys", tmp_path / "trust.yaml", reviewers={})
    code = main(
        [
            "gate",
            str(root),
            "--policy",
            "eu-ai-act-high-risk",
            "--signing-key",
            str(private),
            "--trust",
            str(trust),
        ]
    )
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    return root, public


def test_envelope_verifies_with_pynacl(signed: tuple[Path, Path]) -> None:
    root, public = signed
    env = json.loads((root / "evidence/gate/0001.dsse.json").read_text())
    assert env["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(env["payload"])
    (sig,) = env["signatures"]
    raw = ed25519.public_raw(ed25519.load_public_key(public))
    nacl.signing.VerifyKey(raw).verify(
        spec_pae(env["payloadType"], payload), base64.b64decode(sig["sig"])
    )
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(raw).verify(
            spec_pae(env["payloadType"], payload + b" "), base64.b64decode(sig["sig"])
        )


def test_envelope_verifies_with_securesystemslib(signed: tuple[Path, Path]) -> None:
    root, public = signed
    env = json.loads((root / "evidence/gate/0001.dsse.json").read_text())
    raw = ed25519.public_raw(ed25519.load_public_key(public))
    key = SSlibKey(env["signatures"][0]["keyid"], "ed25519", "ed25519", {"public": raw.hex()})
    keyid = env["signatures"][0]["keyid"]
    accepted = SslibEnvelope.from_dict(json.loads(json.dumps(env))).verify([key], 1)
    assert list(accepted) == [keyid]
    forged = json.loads(json.dumps(env))
    forged["payload"] = base64.b64encode(base64.b64decode(env["payload"]) + b" ").decode()
    with pytest.raises(VerificationError, match="Found: 0, Expected 1"):
        SslibEnvelope.from_dict(forged).verify([key], 1)


def test_statement_subjects_and_predicate(signed: tuple[Path, Path]) -> None:
    root, _ = signed
    env = json.loads((root / "evidence/gate/0001.dsse.json").read_text())
    statement = json.loads(base64.b64decode(env["payload"]))
    decision = json.loads((root / "evidence/gate/0001.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    training = json.loads((root / "evidence/training.json").read_text())
    assert subjects[training["adapter"]["path"]] == training["adapter"]["sha256"]
    # the manifest subject is the files digest as it was when the gate judged the workspace
    assert subjects["manifest.json#files"] == decision["subject"]["manifest_files_sha256"]
    assert statement["predicate"] == decision
    assert statement["predicate"]["policy_sha256"] == decision["policy_sha256"]
    assert {o["rule"] for o in statement["predicate"]["outcomes"]} >= {
        "dp-epsilon-max",
        "approvals",
        "trust-root",
    }
    # the statement binds the release: model, version, workspace identity, the judged ledger
    release = statement["predicate"]["release"]
    assert (release["model"], release["version"]) == ("support-assistant", "1.0.0")
    assert release["workspace_sha256"] == sha256_bytes((root / "workspace.json").read_bytes())
    assert statement["predicate"]["trust_sha256"] is not None
    assert verify_workspace(root, trust=root.parent / "trust.yaml").ok
    # without the trust root the signature was checked only against the key the decision
    # carries, and verify says so
    untrusted = [f for f in verify_workspace(root).findings if f.code == "untrusted"]
    assert [f.severity for f in untrusted] == ["warning"]
    assert "signatures not checked against a trust root" in untrusted[0].message


def _rewrite(path: Path, mutate: object) -> None:
    data = json.loads(path.read_text())
    mutate(data)  # type: ignore[operator]
    path.write_bytes(canonical_json(data))


@pytest.mark.parametrize(
    ("what", "mutate", "fragment"),
    [
        (
            "forged signature",
            lambda env: env["signatures"][0].update(sig=base64.b64encode(b"\0" * 64).decode()),
            "the Ed25519 signature does not verify",
        ),
        (
            "signature removed",
            lambda env: env.update(signatures=[]),
            "no signature by the decision's signer",
        ),
        (
            "payload type",
            lambda env: env.update(payloadType="text/plain"),
            "payloadType is 'text/plain'",
        ),
        (
            "payload swapped",
            lambda env: env.update(
                payload=base64.b64encode(
                    json.dumps(
                        {
                            "_type": "https://in-toto.io/Statement/v1",
                            "subject": [{"name": "x", "digest": {"sha256": "0"}}],
                            "predicateType": attest.PREDICATE_TYPE,
                            "predicate": {},
                        }
                    ).encode()
                ).decode()
            ),
            "the attested predicate differs",
        ),
    ],
)
def test_check_detects_altered_envelopes(
    signed: tuple[Path, Path], what: str, mutate: object, fragment: str
) -> None:
    root, _ = signed
    _rewrite(root / "evidence/gate/0001.dsse.json", mutate)
    findings = attest.check_pair(root, "evidence/gate/0001.json", "evidence/gate/0001.dsse.json")
    assert findings and findings[0].severity == "error" and fragment in findings[0].message, (
        findings
    )
    assert not verify_workspace(root).ok


def test_decision_without_attestation_is_reported(signed: tuple[Path, Path]) -> None:
    root, _ = signed
    from finetrail.governance.evidence.gate import GateDecision
    from finetrail.governance.workspace import Workspace

    decision = GateDecision.read(root / "evidence/gate/0001.json")
    Workspace.open(root).write_record(
        "evidence/gate/0002.json",
        decision.model_copy(update={"sequence": 2}),
        event="gate.decided",
        actor="someone",
    )
    report = verify_workspace(root)
    assert [(f.code, f.location, f.message) for f in report.errors] == [
        ("missing", "evidence/gate/0002.json", "gate decision without its attestation")
    ]
    (root / "evidence/gate/0001.dsse.json").unlink()
    report = verify_workspace(root)
    assert ("missing", "evidence/gate/0001.dsse.json") in [
        (f.code, f.location) for f in report.errors
    ]


def test_unsigned_attestation_is_a_warning(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_workspace(tmp_path / "ws", signed=False).root
    assert main(["gate", str(root), "--policy", "development", "--no-registry"]) == 0
    report = verify_workspace(root)
    assert report.ok
    # the test's ledger entries and checkpoints are unsigned too (development mode), one
    # warning each besides the attestation's
    assert [f.location for f in report.findings] == [
        "evidence/gate/0001.dsse.json",
        "ledger.jsonl",
        "checkpoints.jsonl",
    ], report.render()
    assert {f.code for f in report.findings} == {"unsigned"}


def test_keys_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["keys", "generate", "--reviewer", "bob", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    private, public = tmp_path / "bob.key", tmp_path / "bob.pub"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    key = ed25519.load_private_key(private)
    assert ed25519.keyid_of(key.public_key()) in out
    assert ed25519.public_raw(ed25519.load_public_key(public)) == ed25519.public_raw(
        key.public_key()
    )
    assert main(["keys", "generate", "--reviewer", "bob", "--out", str(tmp_path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["keys", "generate", "--reviewer", "bad name", "--out", str(tmp_path)]) == 2


def test_bad_signing_key(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_workspace(tmp_path / "ws").root
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    assert main(["gate", str(root), "--policy", "development", "--signing-key", str(junk)]) == 2
    assert "not an unencrypted PEM private key" in capsys.readouterr().err
