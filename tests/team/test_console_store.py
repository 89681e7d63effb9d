"""The console's account and session store (``finetrail serve --db postgresql+psycopg://...``)
against a real PostgreSQL cluster (Debian's packages, started by tests/support/team.py): accounts
with argon2id hashes, login throttling, sessions, enrolment, single-use signing requests (also
under concurrent takers), and a login through the console app."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("argon2")
pytest.importorskip("psycopg")

from finetrail.console.store import THROTTLE_FAILURES, Store
from finetrail.errors import InputError
from tests.support.team import postgres_bindir, postgres_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        postgres_bindir() is None, reason="PostgreSQL not installed (.ci/run installs it)"
    ),
]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as (url, _seconds):
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    s = Store(pg_url)
    with s.engine.begin() as c:  # each test starts from empty tables
        for table in ("sign_requests", "sessions", "login_failures", "users"):
            c.exec_driver_sql(f"DELETE FROM {table}")
    yield s
    s.close()  # no connection left for the garbage collector (a ResourceWarning)


def test_accounts_and_sessions_live_in_postgresql(store: Store) -> None:
    assert store.engine.dialect.name == "postgresql"
    store.add_user("rita", "reviewer", PASSWORD)
    with pytest.raises(InputError, match="the account 'rita' exists already"):
        store.add_user("rita", "admin", PASSWORD)
    with store.engine.connect() as c:
        stored = c.exec_driver_sql("SELECT password_hash FROM users").scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert store.authenticate("rita", "wrong password", "10.0.0.1") is None
    user = store.authenticate("rita", PASSWORD, "10.0.0.1")
    assert user is not None and (user.name, user.role) == ("rita", "reviewer")
    token = store.new_session(user)
    s = store.session(token)
    assert s is not None and s.user.name == "rita" and s.expires.tzinfo is not None
    with store.engine.connect() as c:
        kept = c.exec_driver_sql("SELECT token_sha256 FROM sessions").scalar_one()
    assert kept != token and len(kept) == 64  # only the token's SHA-256
    store.enrol_key("rita", "A" * 43 + "=")
    assert store.session(token).user.public_key == "A" * 43 + "="
    store.end_session(token)
    assert store.session(token) is None


def test_throttling_counts_failures_per_account_and_address(store: Store) -> None:
    store.add_user("paul", "reviewer", PASSWORD)
    for _ in range(THROTTLE_FAILURES):
        assert not store.throttled("paul", "10.0.0.2")
        store.authenticate("paul", "nope", "10.0.0.2")
    assert store.throttled("paul", "10.0.0.2")
    assert not store.throttled("paul", "10.0.0.3")
    store.authenticate("ghost", "nope", "10.0.0.2")  # unknown accounts are recorded too
    assert not store.throttled("ghost", "10.0.0.4")


def test_a_signing_request_is_taken_once_even_by_concurrent_takers(store: Store) -> None:
    store.add_user("rita", "reviewer", PASSWORD)
    nonce = store.put_sign_request("rita", "rel1", '{"seq": 7}')
    assert store.take_sign_request(nonce, user="rita", release="other") is None
    assert store.take_sign_request(nonce, user="paul", release="rel1") is None
    with ThreadPoolExecutor(8) as pool:
        got = list(
            pool.map(
                lambda _: store.take_sign_request(nonce, user="rita", release="rel1"), range(8)
            )
        )
    assert got.count('{"seq": 7}') == 1 and got.count(None) == 7


def test_the_console_logs_in_against_the_postgresql_store(store: Store, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from finetrail.console import create_app

    store.add_user("ann", "admin", PASSWORD)
    (tmp_path / "releases").mkdir()
    client = TestClient(create_app(root=tmp_path / "releases", store=store))
    client.get("/login")
    r = client.post(
        "/login",
        data={"name": "ann", "password": PASSWORD, "csrf": client.cookies["ft_login"]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert client.get("/").status_code == 200
    r = client.post(
        "/login",
        data={"name": "ann", "password": "wrong", "csrf": client.cookies.get("ft_login", "")},
        follow_redirects=False,
    )
    assert r.status_code in (401, 403)
