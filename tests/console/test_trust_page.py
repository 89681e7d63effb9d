"""The admins' trust-file page: the signers the trust file names, the enrolled browser keys, and
the command that adds one (``finetrail serve trust add``); 403 for every other role."""

from __future__ import annotations

import html
import re
import shlex

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from finetrail.cli import main
from finetrail.governance.io import sha256_bytes
from finetrail.governance.trust import load_trust
from tests.console.conftest import Env, raw_b64


@pytest.mark.parametrize("who", ["bob", "audrey", "alice"])
def test_only_admins_see_the_trust_page(console_env: Env, who: str) -> None:
    r = console_env.client(who).http.get("/admin/trust")
    assert r.status_code == 403
    assert "may not see the trust file page" in r.text
    assert "public_key" not in r.text and 'id="signers-table"' not in r.text


def test_the_trust_page_needs_a_session(console_env: Env) -> None:
    r = console_env.client().http.get("/admin/trust")
    assert r.status_code == 401 and 'id="signers-table"' not in r.text


def test_admin_sees_signers_and_enrolments_with_the_command_to_add_them(
    console_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64

    admin = console_env.client("ann")
    page = admin.http.get("/admin/trust").text
    table = page.split('id="signers-table"')[1].split("</table>")[0]
    root = load_trust(console_env.trust)
    assert len(re.findall(r"<tr><td class=\"mono\">", table)) == len(root.keys)
    for k in root.keys.values():
        assert k.keyid[:16] in table and html.escape(k.entry.name) in table
    assert "model-risk" in table and "reviewers[0]" in table and "gate[0]" in table

    # bob enrols the key the trust file names for him; mallory one it does not name
    stranger = Ed25519PrivateKey.generate()
    for who, key in (("bob", console_env.keys["bob"]), ("mallory", stranger)):
        c = console_env.client(who)
        assert c.post_json("/enrol", {"public_key": raw_b64(key)}).status_code == 200
    page = admin.http.get("/admin/trust").text
    bob = page.split('id="enrolment-bob"')[1].split("</tr>")[0]
    assert "yes</span>" in bob and "reviewers[" in bob
    mallory = page.split('id="enrolment-mallory"')[1].split("</tr>")[0]
    assert "not yet" in mallory
    keyid = sha256_bytes(base64.b64decode(raw_b64(stranger)))
    assert keyid[:16] in mallory
    command = html.unescape(re.search(r'<pre class="trust-command">(.*?)</pre>', mallory).group(1))
    argv = shlex.split(command)
    assert argv[:4] == ["finetrail", "serve", "trust", "add"]
    assert argv[argv.index("--trust") + 1] == str(console_env.trust.resolve())
    assert argv[argv.index("--public-key") + 1] == raw_b64(stranger)

    # the command as shown, with a review role for ROLE, adds the key; the page then says so
    argv[argv.index("ROLE")] = "privacy"
    assert main(argv[1:]) == 0
    assert f"key sha256:{keyid}" in capsys.readouterr().out
    named = load_trust(console_env.trust).lookup(keyid)
    assert named is not None and named.entry.name == "mallory"
    assert named.review_roles == ("privacy",)
    mallory = admin.http.get("/admin/trust").text.split('id="enrolment-mallory"')[1]
    assert "yes</span>" in mallory.split("</tr>")[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--public-key", "AAAA"], "the public key is 3 bytes, an Ed25519 one is 32"),
        (["--public-key", "not base64!"], "the public key is not base64"),
    ],
)
def test_trust_add_refuses_bad_keys(
    console_env: Env, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    before = console_env.trust.read_bytes()
    argv = ["serve", "trust", "add", "--trust", str(console_env.trust), "--name", "zed",
            "--role", "privacy", *extra]  # fmt: skip
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert console_env.trust.read_bytes() == before


def test_trust_add_refuses_a_key_already_named(
    console_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    before = console_env.trust.read_bytes()
    argv = ["serve", "trust", "add", "--trust", str(console_env.trust), "--name", "zed",
            "--role", "privacy", "--public-key", raw_b64(console_env.keys["bob"])]  # fmt: skip
    assert main(argv) == 2
    assert "also" in capsys.readouterr().err  # a key serves one role and one holder
    assert console_env.trust.read_bytes() == before
