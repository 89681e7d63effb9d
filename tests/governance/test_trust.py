"""The trust file: its format, what a malformed one says (exit 2, the file and the field), how a
key's role, window and revocation decide whether a signature counts; a broken --keyring."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.errors import ConfigError, InputError
from finetrail.governance import keys as ed25519
from finetrail.governance.policy.load import shipped_policies
from finetrail.governance.review import record_review
from finetrail.governance.trust import TrustFile, event_role, load_trust, parse_trust
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace
from tests.support.trust import key_entry, trust_for, write_trust
from tests.support.workspaces import build_workspace, make_key

EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")
KEY = base64.b64encode(b"\x01" * 32).decode()  # any 32 bytes are an Ed25519 public key's encoding
T0, T1 = "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"


def gate_yaml(**entry: object) -> str:
    fields = {"name": "ci", "public_key": KEY, "not_before": T0, "not_after": T1} | entry
    body = "".join(f"    {k}: {v}\n" for k, v in fields.items() if v is not None)
    return f"finetrail_trust: 1\ngate:\n  - {body.lstrip()}"


# (id, how the file is made, fragment of the message, the field the error names or None)
Maker = Callable[[Path], Path]


def text(content: str, name: str = "trust.yaml") -> Maker:
    def make(folder: Path) -> Path:
        p = folder / name
        p.write_text(content, encoding="utf-8")
        return p

    return make


def raw(content: bytes) -> Maker:
    def make(folder: Path) -> Path:
        p = folder / "trust.yaml"
        p.write_bytes(content)
        return p

    return make


def directory(folder: Path) -> Path:
    (folder / "trust.yaml").mkdir()
    return folder / "trust.yaml"


def missing(folder: Path) -> Path:
    return folder / "absent.yaml"


def loop(folder: Path) -> Path:
    os.symlink(folder / "b.yaml", folder / "a.yaml")
    os.symlink(folder / "a.yaml", folder / "b.yaml")
    return folder / "a.yaml"


MALFORMED: list[tuple[str, Maker, str, str | None]] = [
    ("not YAML", text("finetrail_trust: [\n"), "malformed YAML at line 2, column 1", None),
    ("alias bomb", text('a: &a ["x","x"]\nb: &b [*a,*a]\nc: [*b,*b]\n'), "aliases", None),
    ("duplicate key", text("finetrail_trust: 1\nfinetrail_trust: 1\n"), "duplicate key", None),
    ("a list", text("- gate\n"), "a trust file is a mapping", None),
    ("empty", text(""), "a trust file is a mapping", None),
    ("version 2", text("finetrail_trust: 2\n"), "must be 1", "finetrail_trust"),
    ("no version", text("gate: []\n"), "required field is missing", "finetrail_trust"),
    ("no keys", text("finetrail_trust: 1\n"), "names no key", "(top level)"),
    ("unknown section", text("finetrail_trust: 1\nci: []\n"), "unknown field", "ci"),
    ("unknown key field", text(gate_yaml(roles="[x]")), "unknown field", "gate[0].roles"),
    ("bad base64", text(gate_yaml(public_key="not-base64!")), "not base64", "gate[0].public_key"),
    (
        "31-byte key",
        text(gate_yaml(public_key=base64.b64encode(b"\x01" * 31).decode())),
        "32 bytes, this one 31",
        "gate[0].public_key",
    ),
    ("keyid mismatch", text(gate_yaml(keyid=f"'{'0' * 64}'")), "is not the SHA-256", "gate[0]"),
    ("window reversed", text(gate_yaml(not_after=T0, not_before=T1)), "later than", "gate[0]"),
    (
        "naive time",
        text(gate_yaml(not_before="2026-01-01T00:00:00")),
        "timezone",
        "gate[0].not_before",
    ),
    ("a date", text(gate_yaml(not_after="2027-01-01")), "not a date", "gate[0].not_after"),
    ("no window", text(gate_yaml(not_after=None)), "missing", "gate[0].not_after"),
    ("bad name", text(gate_yaml(name='"bad name"')), "should match pattern", "gate[0].name"),
    (
        "reviewer without roles",
        text(
            f"finetrail_trust: 1\nreviewers:\n  - name: bob\n    public_key: {KEY}\n"
            f"    not_before: {T0}\n    not_after: {T1}\n"
        ),
        "required field is missing",
        "reviewers[0].roles",
    ),
    (
        "a key in two roles",
        text(
            gate_yaml()
            + f"reviewers:\n  - name: bob\n    roles: [privacy]\n    public_key: {KEY}\n"
            f"    not_before: {T0}\n    not_after: {T1}\n"
        ),
        "a key serves one role",
        "(top level)",
    ),
    ("huge integer", text("finetrail_trust: " + "9" * 5000 + "\n"), "digits", None),
    ("deep nesting", text("[" * 3000 + "]" * 3000), "nested too deeply", None),
    ("not UTF-8", raw(b"finetrail_trust: 1\ngate: \xff\xfe\n"), "not valid UTF-8", None),
    ("NUL byte", raw(b"finetrail_trust: 1\x00\n"), "NUL", None),
    ("malformed JSON", text('{"finetrail_trust": 1,', name="trust.json"), "malformed JSON", None),
    ("oversize", text("# " + "x" * (1 << 20) + "\nfinetrail_trust: 1\n"), "at most", None),
    ("a directory", directory, "directory", None),
    ("missing", missing, "not found", None),
    ("symlink loop", loop, "symlink loop", None),
]


@pytest.fixture
def ws(tmp_path: Path, use_contract_kinds: object) -> Path:
    # development mode (unsigned entries): these tests write trust files naming only their keys
    return build_workspace(tmp_path / "ws", signed=False).root


@pytest.mark.parametrize(
    ("maker", "fragment", "field"),
    [pytest.param(m, f, fl, id=i) for i, m, f, fl in MALFORMED],
)
def test_malformed_trust_file_is_exit_2_naming_file_and_field(
    ws: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    maker: Maker,
    fragment: str,
    field: str | None,
) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    path = maker(folder)
    before = (ws / "ledger.jsonl").read_bytes()
    for argv in (
        ["verify", str(ws), "--trust", str(path)],
        ["gate", str(ws), "--policy", str(EU), "--trust", str(path)],
        ["review", "status", str(ws), "--trust", str(path)],
    ):
        code = main(argv)
        out = capsys.readouterr()
        assert code == 2, (argv, out.out, out.err)
        assert "Traceback" not in out.err
        assert f"error: {path}: " in out.err, out.err
        assert fragment in out.err, out.err
        if field is not None:
            assert f"field '{field}'" in out.err, out.err
    assert (ws / "ledger.jsonl").read_bytes() == before  # nothing recorded


def test_trust_file_format_round_trips_and_accepts_pem(tmp_path: Path) -> None:
    _, public = make_key(tmp_path, "ci")
    pem = public.read_text()
    entry = key_entry(public, "ci")
    trust = load_trust(write_trust(tmp_path / "t.yaml", gate=[entry]))
    assert trust.file.gate[0].not_after == datetime(2027, 1, 1, tzinfo=UTC)
    (keyid,) = trust.keys
    assert keyid == ed25519.keyid_of(ed25519.load_public_key(public))
    # the same key as a PEM block, with its keyid stated
    again = parse_trust(
        {"finetrail_trust": 1, "gate": [entry | {"public_key": pem, "keyid": keyid}]}, source="x"
    )
    assert again.gate[0].raw_keyid() == keyid
    # written back by the library, read again
    (tmp_path / "back.yaml").write_text(trust.file.to_yaml())
    assert load_trust(tmp_path / "back.yaml").file == trust.file
    # JSON is accepted when the file says so
    (tmp_path / "t.json").write_text(json.dumps(trust.file.model_dump(mode="json")))
    assert load_trust(tmp_path / "t.json").keys.keys() == trust.keys.keys()
    assert isinstance(trust.file, TrustFile)


def _trust(tmp_path: Path, **entry: object) -> tuple[Path, Path]:
    private, public = make_key(tmp_path / "keys", "bob")
    base = key_entry(public, "bob", roles=["privacy"])
    return private, write_trust(tmp_path / "t.yaml", reviewers=[base | entry])


@pytest.mark.parametrize(
    ("entry", "at", "codes"),
    [
        ({}, "2026-06-01T00:00:00+00:00", []),
        ({}, "2025-01-01T00:00:00+00:00", []),  # the first second counts
        ({}, "2024-12-31T23:59:59+00:00", ["not-yet-valid"]),
        ({}, "2027-01-01T00:00:01+00:00", ["expired"]),
        ({"revoked_at": "2026-03-01T00:00:00+00:00"}, "2026-02-28T23:59:59+00:00", []),
        ({"revoked_at": "2026-03-01T00:00:00+00:00"}, "2026-03-01T00:00:00+00:00", ["revoked"]),
    ],
)
def test_window_and_revocation(
    tmp_path: Path, entry: dict[str, object], at: str, codes: list[str]
) -> None:
    private, path = _trust(tmp_path, **entry)
    trust = load_trust(path)
    keyid = ed25519.keyid_of(ed25519.load_private_key(private).public_key())
    when = datetime.fromisoformat(at)
    problems = trust.check(keyid=keyid, role="reviewer", at=when, name="bob", review_role="privacy")
    assert [p.code for p in problems] == codes


def test_role_name_and_review_role_are_checked(tmp_path: Path) -> None:
    private, path = _trust(tmp_path)
    trust = load_trust(path)
    keyid = ed25519.keyid_of(ed25519.load_private_key(private).public_key())
    at = datetime(2026, 1, 15, tzinfo=UTC)
    check = trust.check
    assert [p.code for p in check(keyid=keyid, role="gate", at=at)] == ["wrong-role"]
    assert [p.code for p in check(keyid=keyid, role="reviewer", at=at, name="eve")] == [
        "wrong-signer"
    ]
    problems = check(keyid=keyid, role="reviewer", at=at, review_role="model-risk")
    assert [p.message for p in problems] == [
        "the trust root does not grant 'bob' the review role 'model-risk' (granted: privacy)"
    ]
    assert [p.code for p in check(keyid="f" * 64, role="reviewer", at=at)] == ["untrusted"]
    assert (
        check(keyid="f" * 64, role="reviewer", at=at)[0].message
        == f"signed by key sha256:{'f' * 64}, which the trust root t.yaml does not name"
    )
    future = datetime(2026, 2, 1, tzinfo=UTC)
    assert [p.code for p in check(keyid=keyid, role="reviewer", at=future, now=at)] == ["future"]


def test_rotation_old_and_new_keys_each_within_their_window(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob rotates his key: the approval signed with the old key stays valid under a trust file
    that retired it afterwards; a new approval with the retired key is refused."""
    old_private, old_public = make_key(tmp_path / "old", "bob")
    new_private, new_public = make_key(tmp_path / "new", "bob")
    trust = write_trust(
        tmp_path / "repo" / "trust.yaml",
        reviewers=[
            key_entry(
                old_public, "bob", roles=["privacy"], not_after=datetime(2026, 1, 20, tzinfo=UTC)
            ),
            key_entry(
                new_public, "bob", roles=["privacy"], not_before=datetime(2026, 1, 20, tzinfo=UTC)
            ),
        ],
    )
    record_review(
        ws,
        decision="approve",
        reviewer="bob",
        role="privacy",
        key_file=old_private,
        note="",
        trust=trust,
    )
    assert verify_workspace(ws, trust=trust).ok
    from tests.support.clock import set_release_clock

    monkeypatch.setenv("FINETRAIL_FIXED_TIME", "2026-02-01T00:00:00+00:00")
    set_release_clock(monkeypatch, "2026-02-01T00:00:00+00:00")
    assert verify_workspace(ws, trust=trust).ok  # the old signature predates the rotation
    with pytest.raises(InputError, match="the trust root does not accept this key"):
        record_review(
            ws,
            decision="comment",
            reviewer="bob",
            role="privacy",
            key_file=old_private,
            note="late",
            trust=trust,
        )
    record_review(
        ws,
        decision="comment",
        reviewer="bob",
        role="privacy",
        key_file=new_private,
        note="with the new key",
        trust=trust,
    )
    assert verify_workspace(ws, trust=trust).ok


def test_review_and_gate_refuse_keys_the_trust_root_does_not_accept(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    make_key(keys, "bob")
    trust = trust_for(keys, tmp_path / "repo" / "trust.yaml", reviewers={"bob": ("privacy",)})
    mallory, _ = make_key(tmp_path / "other", "mallory")
    before = (ws / "ledger.jsonl").read_bytes()
    cases = [
        (
            [
                "review",
                "approve",
                str(ws),
                "--reviewer",
                "bob",
                "--role",
                "privacy",
                "--key",
                str(mallory),
            ],
            "does not name",
        ),
        (
            [
                "review",
                "approve",
                str(ws),
                "--reviewer",
                "bob",
                "--role",
                "model-risk",
                "--key",
                str(keys / "bob.key"),
            ],
            "does not grant 'bob' the review role 'model-risk'",
        ),
        (
            [
                "review",
                "approve",
                str(ws),
                "--reviewer",
                "carol",
                "--role",
                "privacy",
                "--key",
                str(keys / "bob.key"),
            ],
            "belongs to 'bob', not 'carol'",
        ),
        (
            [
                "review",
                "approve",
                str(ws),
                "--reviewer",
                "bob",
                "--role",
                "privacy",
                "--key",
                str(keys / "ci-gate.key"),
            ],
            "is trusted as gate, not as reviewer",
        ),
        (["gate", str(ws), "--policy", str(EU), "--signing-key", str(mallory)], "does not name"),
        (
            ["gate", str(ws), "--policy", str(EU), "--signing-key", str(keys / "bob.key")],
            "is trusted as reviewer, not as gate",
        ),
    ]
    for argv, fragment in cases:
        code = main([*argv, "--trust", str(trust)])
        err = capsys.readouterr().err
        assert code == 2 and fragment in err and "Traceback" not in err, (argv, err)
    assert (ws / "ledger.jsonl").read_bytes() == before
    # and the honest ones are accepted
    assert (
        main(
            [
                "review",
                "approve",
                str(ws),
                "--reviewer",
                "bob",
                "--role",
                "privacy",
                "--key",
                str(keys / "bob.key"),
                "--trust",
                str(trust),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "gate",
                str(ws),
                "--policy",
                "development",
                "--no-registry",
                "--signing-key",
                str(keys / "ci-gate.key"),
                "--trust",
                str(trust),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["review", "status", str(ws), "--trust", str(trust)]) == 0
    assert "approve  bob (privacy) [current]" in capsys.readouterr().out
    assert main(["verify", str(ws), "--trust", str(trust)]) == 0


def test_unsigned_or_unbound_decisions_fail_verify_with_a_trust_root(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust = trust_for(tmp_path / "keys", tmp_path / "repo" / "trust.yaml", reviewers={})
    assert main(["gate", str(ws), "--policy", "development", "--no-registry"]) == 0
    capsys.readouterr()
    report = verify_workspace(ws, trust=trust)
    assert [(f.code, f.location) for f in report.errors] == [
        ("unsigned", "evidence/gate/0001.dsse.json")
    ]
    assert verify_workspace(ws).ok  # without one it is a warning, as before


@pytest.mark.parametrize(
    "content", ["{not json", '{"record_type": "keyring", "keys": [{"name": 1}]}', None]
)
def test_a_broken_keyring_is_exit_2_even_without_approvals(
    ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    keyring = tmp_path / "keyring.json"
    if content is None:
        keyring.mkdir()
    else:
        keyring.write_text(content)
    for argv in (
        ["gate", str(ws), "--policy", "development", "--keyring", str(keyring), "--dry-run"],
        ["verify", str(ws), "--keyring", str(keyring)],
        ["review", "status", str(ws), "--keyring", str(keyring)],
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert str(keyring) in err and "Traceback" not in err


def test_signed_ledger_entries_of_other_roles(ws: Path, tmp_path: Path) -> None:
    """An event signed by a training key counts only under a training key of the trust root."""
    train_private, train_public = make_key(tmp_path / "keys", "trainer")
    trust = write_trust(
        tmp_path / "repo" / "trust.yaml", training=[key_entry(train_public, "trainer")]
    )
    key = ed25519.load_private_key(train_private)
    keyid = ed25519.keyid_of(key.public_key())
    Workspace.open(ws).append_event(
        "training.note", actor="trainer", payload={"x": 1}, signer=keyid, sign=key.sign
    )
    assert verify_workspace(ws, trust=trust).ok
    Workspace.open(ws).append_event(
        "probes.note", actor="trainer", payload={"x": 2}, signer=keyid, sign=key.sign
    )
    report = verify_workspace(ws, trust=trust)
    assert [f.code for f in report.errors] == ["wrong-role"]
    assert "is trusted as training, not as probes" in report.errors[0].message
    assert event_role("gate.decided") == "gate" and event_role("data.registered") == "training"


def test_load_trust_refuses_the_workspace_itself(ws: Path) -> None:
    with pytest.raises(ConfigError, match="inside the workspace"):
        load_trust(ws / "anything.yaml", workspace=ws)


def test_the_documented_example_is_a_valid_trust_file(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "trust.yaml").write_text(example)
    trust = load_trust(tmp_path / "trust.yaml")
    assert [k.role for k in trust.keys.values()] == ["gate", "reviewer", "reviewer", "reviewer"]
    assert trust.file.reviewers[2].revoked_at == datetime(2026, 3, 10, 9, tzinfo=UTC)
