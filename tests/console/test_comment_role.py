"""Who may sign a console comment: a key the trust file names under ``reviewers``.

``console.comment`` events are judged in the ``reviewer`` role (``trust.EVENT_ROLES``): a comment
signed by a reviewer key verifies; one signed by a key the trust file does not name, or names for
another role (the CI gate key), is an error of ``finetrail verify --trust``.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from finetrail.console.comments import add_comment
from finetrail.console.releases import COMMENT_KIND, ReleaseRef
from finetrail.governance import keys
from finetrail.governance.trust import event_role
from finetrail.governance.verify import verify_workspace
from tests.console.conftest import Env


def test_comments_are_judged_in_the_reviewer_role() -> None:
    assert event_role(COMMENT_KIND) == "reviewer"


def _comment_signed_by(env: Env, key: Ed25519PrivateKey) -> tuple[int, list[tuple[str, str]]]:
    ref = ReleaseRef("x", "a", env.a)
    with keys.signing_with(key):
        entry = add_comment(
            ref, author="bob", thread="release", text="checked the canaries", state="open",
            reply_to=None, rule_ids=set(),
        )  # fmt: skip
    report = verify_workspace(env.a, trust=env.trust)
    at = f"ledger.jsonl:{entry.seq + 1}"
    return entry.seq, [(f.code, f.message) for f in report.errors if str(f.location) == at]


def test_a_trusted_reviewers_comment_verifies(console_env: Env) -> None:
    _, problems = _comment_signed_by(console_env, console_env.keys["bob"])
    assert problems == []
    assert verify_workspace(console_env.a, trust=console_env.trust).ok


@pytest.mark.parametrize(
    ("signer", "code"),
    [("stranger", "untrusted"), ("mallory", "untrusted"), ("ci-gate", "wrong-role")],
)
def test_a_comment_signed_by_a_key_not_trusted_for_reviews_fails_verify(
    console_env: Env, signer: str, code: str
) -> None:
    if signer == "ci-gate":
        key = keys.load_private_key(console_env.tmp / "keys" / "ci-gate.key")
    elif signer == "mallory":  # a console account whose key the trust file does not name
        key = console_env.keys["mallory"]
    else:
        key = Ed25519PrivateKey.generate()
    _, problems = _comment_signed_by(console_env, key)
    assert [c for c, _ in problems] == [code], problems
    assert COMMENT_KIND in problems[0][1]
    assert not verify_workspace(console_env.a, trust=console_env.trust).ok
