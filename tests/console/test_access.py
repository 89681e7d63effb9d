"""Accounts, sessions, CSRF, throttling, roles and path traversal over HTTP (Starlette's TestClient)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from finetrail.cli import main
from finetrail.console import store as store_mod
from finetrail.console.store import Store
from tests.console.conftest import PASSWORD, Env


def test_every_page_needs_a_session(console_env: Env) -> None:
    c = console_env.client()
    rid = console_env.rid(console_env.a)
    for url in ("/", f"/r/{rid}", "/enrol"):
        r = c.http.get(url)
        assert r.status_code == 401, url
        assert 'action="/login"' in r.text
    assert c.http.get(f"/r/{rid}/chart/epsilon.svg").status_code == 401
    assert c.http.post(f"/r/{rid}/comment", data={"text": "x"}).status_code == 401
    for url in (f"/r/{rid}/sign/prepare", f"/r/{rid}/sign/complete", "/enrol"):
        assert c.post_json(url, {}).status_code == 401, url


def test_login_sets_a_strict_http_only_cookie_and_logout_ends_it(console_env: Env) -> None:
    c = console_env.client()
    c.http.get("/login")
    r = c.http.post(
        "/login",
        data={"name": "bob", "password": PASSWORD, "csrf": c.http.cookies.get("ft_login")},
        follow_redirects=False,
    )
    assert r.status_code == 303
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "ft_session" in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
    assert c.http.get("/").status_code == 200
    page = c.http.get("/").text
    csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
    assert c.http.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert c.http.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert c.http.get("/").status_code == 401


def test_expired_session_is_refused(console_env: Env) -> None:
    c = console_env.client("bob")
    with console_env.store.engine.begin() as conn:
        conn.execute(
            store_mod.sessions.update().values(expires=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert c.http.get("/").status_code == 401


def test_only_token_digests_are_stored(console_env: Env) -> None:
    c = console_env.client("bob")
    token = c.http.cookies.get("ft_session")
    with console_env.store.engine.connect() as conn:
        rows = conn.execute(sa.select(store_mod.sessions)).all()
        pw = conn.execute(sa.select(store_mod.users.c.password_hash)).scalars().all()
    assert rows and all(token not in tuple(map(str, row)) for row in rows)
    assert all(h.startswith("$argon2id$") for h in pw)


def test_login_without_or_with_a_wrong_form_token_is_refused(console_env: Env) -> None:
    c = console_env.client()
    c.http.get("/login")
    for token in (None, "forged"):
        data = {"name": "bob", "password": PASSWORD} | ({"csrf": token} if token else {})
        assert c.http.post("/login", data=data).status_code == 403


def test_wrong_password_and_unknown_account_say_the_same(console_env: Env) -> None:
    c = console_env.client()
    for name in ("bob", "nobody"):
        r = c.login(name, "wrong password!")
        assert r.status_code == 401
        assert "Wrong name or password." in r.text


def test_login_throttled_after_five_failures_per_account_and_address(console_env: Env) -> None:
    c = console_env.client()
    for _ in range(store_mod.THROTTLE_FAILURES):
        assert c.login("bob", "wrong password!").status_code == 401
    r = c.login("bob")  # the right password, but throttled
    assert r.status_code == 429
    assert "Too many failed logins" in r.text
    assert c.login("carol").status_code == 303  # another account is not affected
    # the window passes: failures older than five minutes no longer count
    with console_env.store.engine.begin() as conn:
        conn.execute(
            store_mod.failures.update().values(time=datetime.now(UTC) - timedelta(minutes=6))
        )
    assert c.login("bob").status_code == 303


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_comment_without_the_right_csrf_token_is_refused(
    console_env: Env, csrf: str | None
) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    data = {"thread": "release", "state": "open", "text": "hello"}
    if csrf is not None:
        data["csrf"] = csrf
    assert c.http.post(f"/r/{rid}/comment", data=data).status_code == 403
    r = c.post_json(f"/r/{rid}/sign/prepare", {"decision": "approve"}, csrf=csrf or "")
    assert r.status_code == 403


def test_another_sessions_csrf_token_is_refused(console_env: Env) -> None:
    bob, carol = console_env.client("bob"), console_env.client("carol")
    rid = console_env.rid(console_env.a)
    data = {"csrf": carol.csrf, "thread": "release", "state": "open", "text": "x"}
    assert bob.http.post(f"/r/{rid}/comment", data=data).status_code == 403


def test_auditor_reads_but_may_not_comment_or_sign(console_env: Env) -> None:
    c = console_env.client("audrey")
    rid = console_env.rid(console_env.a)
    assert c.http.get(f"/r/{rid}").status_code == 200
    assert 'id="comment-form"' not in c.http.get(f"/r/{rid}").text
    assert c.comment(rid, "an auditor's note").status_code == 403
    assert c.prepare(rid, console_env.keys["bob"]).status_code == 403
    assert c.post_json("/enrol", {"public_key": "AAAA"}).status_code == 403


TRAVERSAL = [
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e",
    "..%2F",
    "support-assistant%2F1.0.0",
    "support-assistant",
    "0000000000000000",
    "%00",
]


@pytest.mark.parametrize("bad", TRAVERSAL)
def test_release_ids_are_only_looked_up_never_joined(console_env: Env, bad: str) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    for url in (f"/r/{bad}", f"/r/{bad}/chart/epsilon.svg", f"/r/{rid}/chart/{bad}.svg"):
        r = c.http.get(url, follow_redirects=False)
        # 307: Starlette's trailing-slash redirect (to a path the client then normalises)
        assert r.status_code in (404, 307), url
        assert "release-title" not in r.text and "<svg" not in r.text
    assert c.comment(bad, "x").status_code == 404
    assert c.prepare(bad, console_env.keys["bob"]).status_code == 404
    assert c.post_json(f"/r/{bad}/sign/complete", {"nonce": "x"}).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2Fapp.py",
        "/static/../../pyproject.toml",
    ],
)
def test_static_files_stay_in_their_folder(console_env: Env, url: str) -> None:
    c = console_env.client("bob")
    r = c.http.get(url)
    assert r.status_code == 404
    assert "create_app" not in r.text


def test_every_response_carries_the_strict_csp(console_env: Env) -> None:
    c = console_env.client("bob")
    rid = console_env.rid(console_env.a)
    for url in ("/", f"/r/{rid}", "/enrol", "/static/console.js", "/login", "/nope"):
        r = c.http.get(url)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp, url
        assert "unsafe-inline" not in csp and "http" not in csp, url
        assert r.headers["x-frame-options"] == "DENY"
    page = c.http.get(f"/r/{rid}").text
    assert "<script>" not in page and "onclick" not in page and "http://" not in page
    assert "https://" not in c.http.get("/static/console.js").text


def test_user_add_from_the_command_line(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    code = main(
        [
            "serve",
            "user",
            "add",
            "erin",
            "--role",
            "reviewer",
            "--password-stdin",
            "--root",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert "account erin (reviewer) created" in capsys.readouterr().out
    store = Store(f"sqlite:///{tmp_path / '.finetrail-console.db'}")
    assert store.authenticate("erin", "s3cret-password", "127.0.0.1") is not None
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    code = main(
        [
            "serve",
            "user",
            "add",
            "erin",
            "--role",
            "admin",
            "--password-stdin",
            "--root",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "the account 'erin' exists already" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "role", "password", "error"),
    [
        ("<script>", "reviewer", "long enough", "invalid account name '<script>'"),
        ("erin", "root", "long enough", "unknown role 'root'"),
        ("erin", "reviewer", "short", "the password is shorter than 8 characters"),
    ],
)
def test_add_user_refuses(tmp_path, name: str, role: str, password: str, error: str) -> None:
    from finetrail.errors import InputError

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    with pytest.raises(InputError) as exc:
        store.add_user(name, role, password)
    assert exc.value.what == error
