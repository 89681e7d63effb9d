"""Comments as ledger events, hostile strings, and browser-style sign-off (the key held by the
test, as the browser holds it: only the raw public key and signatures reach the server)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from markupsafe import escape

from finetrail.console.releases import COMMENT_KIND
from finetrail.errors import InputError
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace
from tests.console.conftest import Env, gate
from tests.support.sample_release import HOSTILE


def ledger(ws: Path) -> list:
    return Workspace.open(ws).ledger.entries()


def last_decision(ws: Path) -> dict:
    return json.loads(sorted((ws / "evidence" / "gate").glob("0*.json"))[-1].read_text())


def approvals_outcome(ws: Path) -> dict:
    return next(o for o in last_decision(ws)["outcomes"] if o["rule"] == "approvals")


def test_comment_is_a_ledger_event_and_threads_change_state_by_new_events(console_env: Env) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    before = len(ledger(console_env.a))
    assert c.comment(rid, "Where is the canary plan?").status_code == 303
    first = ledger(console_env.a)[-1]
    assert first.kind == COMMENT_KIND and first.actor == "bob"
    assert first.payload == {
        "thread": "release",
        "text": "Where is the canary plan?",
        "state": "open",
    }
    carol = console_env.client("carol")
    assert (
        carol.comment(
            rid, "In evidence/probes.", state="answered", reply_to=str(first.seq)
        ).status_code
        == 303
    )
    assert c.comment(rid, "Thanks.", state="resolved", reply_to=str(first.seq)).status_code == 303
    entries = ledger(console_env.a)
    assert len(entries) == before + 3
    assert [e.payload["state"] for e in entries[-3:]] == ["open", "answered", "resolved"]
    page = c.http.get(f"/r/{rid}").text
    assert "Where is the canary plan?" in page and "resolved" in page
    assert verify_workspace(console_env.a, trust=console_env.trust).ok


def test_rule_threads_and_refused_comments(console_env: Env) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    assert c.comment(rid, "why this value?", thread="rule:dp-epsilon-max").status_code == 303
    assert ledger(console_env.a)[-1].payload["thread"] == "rule:dp-epsilon-max"
    n = len(ledger(console_env.a))
    for form, error in (
        ({"thread": "rule:no-such-rule"}, "unknown thread 'rule:no-such-rule'"),
        ({"thread": "../../etc"}, "unknown thread '../../etc'"),
        ({"state": "closed"}, "unknown state 'closed'"),
        ({"reply_to": "1"}, "entry 1 is not a comment of this release"),
        ({"text": "   "}, "a comment has 1 to 10000 characters"),
    ):
        text = form.pop("text", "a comment")
        r = c.comment(rid, text, **form)
        assert r.status_code == 400, form
        assert error.replace("'", "&#39;") in r.text
    assert len(ledger(console_env.a)) == n


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_comment_text_is_escaped(console_env: Env, hostile: str) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    assert c.comment(rid, hostile).status_code == 303
    page = c.http.get(f"/r/{rid}").text
    comments = page.split('id="comments"')[1].split("</section>")[0]
    assert str(escape(hostile)) in comments  # shown as text, escaped
    assert "<script" not in comments and "<img" not in comments
    assert ">EVALUATED<" not in comments and ">49" not in comments  # not rendered as a template
    assert ledger(console_env.a)[-1].payload["text"] == hostile  # stored as written


def test_sign_off_appends_the_record_the_gate_counts(console_env: Env) -> None:
    bob, carol = console_env.client("bob"), console_env.client("carol")
    rid = console_env.rid(console_env.a)
    r = bob.sign_off(rid, console_env.keys["bob"], note="risk reviewed")
    assert r.status_code == 200, r.text
    entry = ledger(console_env.a)[-1]
    assert entry.kind == "review.approve" and entry.actor == "bob"
    assert entry.payload["reviewer"] == "bob" and entry.payload["role"] == "model-risk"
    assert entry.signer == entry.payload["keyid"] and r.json()["seq"] == entry.seq
    r = carol.sign_off(rid, console_env.keys["carol"], role="privacy")
    assert r.status_code == 200, r.text
    assert verify_workspace(console_env.a, trust=console_env.trust).ok
    code = gate(console_env.a, console_env.trust, console_env.tmp / "keys", "--require-approvals")
    assert approvals_outcome(console_env.a)["outcome"] == "pass"
    blocking = {
        o["rule"]
        for o in last_decision(console_env.a)["outcomes"]
        if o["outcome"] == "fail" and o["severity"] == "error"
    }
    assert code == (1 if blocking else 0)
    page = bob.http.get("/").text
    assert "2 / 2" in page


def test_two_reviewers_in_one_role_do_not_satisfy_a_two_role_rule(console_env: Env) -> None:
    rid = console_env.rid(console_env.a)
    for name in ("bob", "dave"):
        assert console_env.client(name).sign_off(rid, console_env.keys[name]).status_code == 200
    gate(console_env.a, console_env.trust, console_env.tmp / "keys", "--require-approvals")
    o = approvals_outcome(console_env.a)
    assert o["outcome"] == "fail"
    assert "no current approval in the role 'privacy'" in o["message"]


def test_approval_goes_stale_when_the_evidence_changes(console_env: Env) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    assert c.sign_off(rid, console_env.keys["bob"]).status_code == 200
    Workspace.open(console_env.a).write_bytes(
        "artifacts/notes.txt", b"a later file\n", event="artifact.added", actor="alice"
    )
    page = c.http.get(f"/r/{rid}").text
    assert 'class="review-stale"' in page
    assert "approval by bob is stale (files changed since)" in page
    gate(console_env.a, console_env.trust, console_env.tmp / "keys", "--require-approvals")
    o = approvals_outcome(console_env.a)
    assert o["outcome"] == "fail"
    assert "approval by bob is stale (files changed since)" in o["message"]


@pytest.mark.parametrize(
    ("who", "key", "kw", "error"),
    [
        ("alice", "alice", {}, "self-approval: &#39;alice&#39; is an author of this workspace"),
        (
            "bob",
            "bob",
            {"role": "privacy"},
            "the trust root does not accept this key for this review",
        ),
        ("bob", "carol", {}, "the trust root does not accept this key for this review"),
        ("mallory", "mallory", {}, "the trust root does not accept this key for this review"),
        ("bob", "bob", {"decision": "comment"}, "unknown decision &#39;comment&#39;"),
        ("bob", "bob", {"public_key": "AAAA"}, "the public key is 3 bytes, an Ed25519 one is 32"),
    ],
)
def test_prepare_refuses(console_env: Env, who: str, key: str, kw: dict, error: str) -> None:
    c = console_env.client(who)
    r = c.prepare(console_env.rid(console_env.a), console_env.keys[key], **kw)
    assert r.status_code == 400
    assert r.json()["error"] == error.replace("&#39;", "'")


def test_duplicate_approval_refused(console_env: Env) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    assert c.sign_off(rid, console_env.keys["bob"]).status_code == 200
    r = c.prepare(rid, console_env.keys["bob"])
    assert r.status_code == 400
    assert r.json()["error"] == "duplicate approval: 'bob' has already approved these files"


def test_signature_over_another_releases_bytes_is_rejected(console_env: Env) -> None:
    c = console_env.client("bob")
    key = console_env.keys["bob"]
    a, b = console_env.rid(console_env.a), console_env.rid(console_env.b)
    pa, pb = c.prepare(a, key).json(), c.prepare(b, key).json()
    assert pa["signing_bytes"] != pb["signing_bytes"]
    n = len(ledger(console_env.a))
    r = c.complete(a, pa["nonce"], key.sign(base64.b64decode(pb["signing_bytes"])))
    assert r.status_code == 400
    assert r.json()["error"].startswith("the signature does not verify")
    # nor is a request of release B completed on release A
    r = c.complete(a, pb["nonce"], key.sign(base64.b64decode(pb["signing_bytes"])))
    assert r.status_code == 409
    assert len(ledger(console_env.a)) == n


def test_replayed_signature_is_rejected(console_env: Env) -> None:
    c = console_env.client("bob")
    key = console_env.keys["bob"]
    rid = console_env.rid(console_env.a)
    first = c.prepare(rid, key, decision="reject", note="needs the canary plan").json()
    sig = key.sign(base64.b64decode(first["signing_bytes"]))
    assert c.finish(rid, key, first).status_code == 200
    n = len(ledger(console_env.a))
    # the same request again
    r = c.complete(rid, first["nonce"], sig)
    assert r.status_code == 409 and "replayed" in r.json()["error"]
    # the old signature under a fresh request: it covers the old entry (sequence, previous digest)
    fresh = c.prepare(rid, key, decision="reject", note="needs the canary plan").json()
    r = c.complete(rid, fresh["nonce"], sig)
    assert r.status_code == 400 and r.json()["error"].startswith("the signature does not verify")
    # another user cannot complete bob's request
    other = console_env.client("carol")
    r = other.complete(rid, fresh["nonce"], key.sign(base64.b64decode(fresh["signing_bytes"])))
    assert r.status_code == 409
    assert len(ledger(console_env.a)) == n


def test_ledger_moving_on_between_prepare_and_complete_asks_to_sign_again(console_env: Env) -> None:
    c = console_env.client("bob")
    key = console_env.keys["bob"]
    rid = console_env.rid(console_env.a)
    p = c.prepare(rid, key).json()
    assert console_env.client("carol").comment(rid, "a comment in between").status_code == 303
    n = len(ledger(console_env.a))
    r = c.complete(rid, p["nonce"], key.sign(base64.b64decode(p["signing_bytes"])))
    assert r.status_code == 409 and r.json()["retry"] is True
    assert len(ledger(console_env.a)) == n
    assert c.sign_off(rid, key).status_code == 200


def test_a_key_the_browser_claims_is_not_trusted_on_its_word(console_env: Env) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    stranger = Ed25519PrivateKey.generate()
    r = c.prepare(rid, stranger)
    assert r.status_code == 400
    assert "does not name" in r.json()["why"]


def test_enrolment_records_the_public_key(console_env: Env) -> None:
    c = console_env.client("bob")
    from tests.console.conftest import raw_b64

    pub = raw_b64(console_env.keys["bob"])
    r = c.post_json("/enrol", {"public_key": pub})
    assert r.status_code == 200
    assert console_env.store.user("bob").public_key == pub
    assert (
        c.post_json("/enrol", {"public_key": "not base64!"}).json()["error"]
        == "the public key is not base64"
    )


def test_verify_status_is_live_after_tampering(console_env: Env) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    assert '<span class="pill ok">OK</span>' in c.http.get(f"/r/{rid}").text  # read and cached
    target = console_env.a / "evidence" / "training.json"
    data = bytearray(target.read_bytes())
    i = data.index(b'"epsilon":') + len(b'"epsilon":')
    while not chr(data[i]).isdigit():
        i += 1
    data[i] = ord("4") if data[i] != ord("4") else ord("5")  # same size, valid, another epsilon
    target.write_bytes(bytes(data))
    page = c.http.get(f"/r/{rid}").text
    assert '<span class="pill bad">FAILED</span>' in page
    assert "integrity failed" in c.http.get("/").text
    target.write_bytes(b"{not json")  # unreadable evidence: said, not a server error
    r = c.http.get(f"/r/{rid}")
    assert r.status_code == 500 and "This release cannot be read" in r.text


def test_hostile_release_names_are_escaped_in_the_queue(console_env: Env) -> None:
    hostile = "<script>document.title='PWNED'</script>"
    Workspace.init(
        console_env.root / "hostile", model=hostile, version="<b>1</b>", owner="<i>eve</i>"
    )
    page = console_env.client("bob").http.get("/").text
    assert hostile not in page and "<b>1</b>" not in page and "<i>eve</i>" not in page
    assert str(escape(hostile)) in page


def test_the_page_after_a_sign_off_confirms_it_from_the_ledger(console_env: Env) -> None:
    bob = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    seq = bob.sign_off(rid, console_env.keys["bob"]).json()["seq"]
    page = bob.http.get(f"/r/{rid}?signed={seq}").text
    assert f"Signed and recorded as ledger entry #{seq} (approve, current)." in page
    carol = console_env.client("carol")  # not hers: nothing confirmed
    assert "Signed and recorded" not in carol.http.get(f"/r/{rid}?signed={seq}").text
    assert "Signed and recorded" not in bob.http.get(f"/r/{rid}?signed=0").text


def test_the_console_and_the_cli_write_the_same_record(console_env: Env) -> None:
    from finetrail.governance import keys as ed25519
    from finetrail.governance.review import record_review
    from finetrail.governance.review.api import workspace_review_status

    rid = console_env.rid(console_env.a)
    assert console_env.client("bob").sign_off(rid, console_env.keys["bob"]).status_code == 200
    browser = ledger(console_env.a)[-1]
    pem = console_env.tmp / "carol.key"
    pem.write_bytes(ed25519.private_pem(console_env.keys["carol"]))
    cli = record_review(
        console_env.a, decision="approve", reviewer="carol", role="privacy", key_file=pem,
        note="", trust=console_env.trust,
    )  # fmt: skip
    assert browser.kind == cli.kind == "review.approve"
    assert set(browser.payload) == set(cli.payload)
    assert {k for k, v in browser.to_json_dict().items() if v is not None} == {
        k for k, v in cli.to_json_dict().items() if v is not None
    }
    # one builder (review.assess.prepare_review): the same release binding, and the checkpoint
    # each binds is the log as it stood before that review
    for k in (
        "decision",
        "manifest_sha256",
        "model",
        "version",
        "workspace_sha256",
        "workspace_id",
    ):
        assert browser.payload[k] == cli.payload[k], k
    assert (browser.payload["ledger_size"], cli.payload["ledger_size"]) == (
        browser.seq,
        cli.seq,
    )
    # and the same refusals: bob's console approval makes his CLI approval a duplicate
    pem_bob = console_env.tmp / "bob.key"
    pem_bob.write_bytes(ed25519.private_pem(console_env.keys["bob"]))
    with pytest.raises(InputError, match="duplicate approval: 'bob'"):
        record_review(
            console_env.a, decision="approve", reviewer="bob", role="model-risk",
            key_file=pem_bob, note="", trust=console_env.trust,
        )  # fmt: skip
    status = workspace_review_status(console_env.a, trust=console_env.trust)
    assert [(r.reviewer, r.state) for r in status.rows] == [
        ("bob", "current"),
        ("carol", "current"),
    ]
