"""The console's own state: accounts, sessions, login failures and pending signing requests.

Kept in a SQLAlchemy database (SQLite at ``<root>/.finetrail-console.db`` by default, or any URL
given with ``--db``); never in a workspace. Evidence, comments and reviews live in the workspaces'
ledgers, not here: losing this database loses logins, never a record.

Passwords are hashed with argon2id (argon2-cffi's defaults); session and CSRF tokens are random
(``secrets``) and only their SHA-256 is stored, so a copy of the database does not log anyone in.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from finetrail.errors import InputError

Role = Literal["reviewer", "admin", "auditor"]
ROLES: tuple[Role, ...] = ("reviewer", "admin", "auditor")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"  # the trust file's reviewer names
SESSION_LIFETIME = timedelta(hours=8)
THROTTLE_WINDOW = timedelta(minutes=5)
THROTTLE_FAILURES = 5  # per account and client address in the window
SIGN_REQUEST_LIFETIME = timedelta(minutes=2)

metadata = sa.MetaData()
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("public_key", sa.String(100), nullable=True),  # enrolled browser key (base64 raw)
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("user", sa.String(100), sa.ForeignKey("users.name"), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
)
failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(200), nullable=False, index=True),
    sa.Column("address", sa.String(100), nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
)
sign_requests = sa.Table(
    "sign_requests",
    metadata,
    sa.Column("nonce_sha256", sa.String(64), primary_key=True),
    sa.Column("user", sa.String(100), nullable=False),
    sa.Column("release", sa.String(64), nullable=False),
    sa.Column("request", sa.Text, nullable=False),  # JSON: kind, payload, keyid, signing bytes
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used", sa.Boolean, nullable=False, default=False),
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    public_key: str | None = None

    @property
    def can_write(self) -> bool:
        """Reviewers and admins comment and sign; auditors only read."""
        return self.role in ("reviewer", "admin")


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    expires: datetime


class Store:
    """Accounts, sessions, throttling and signing requests in one SQLAlchemy database."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, object] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if url in ("sqlite://", "sqlite:///:memory:"):  # one in-memory database, all threads
                from sqlalchemy.pool import StaticPool

                kwargs["poolclass"] = StaticPool
        self.engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):

            @sa.event.listens_for(self.engine, "connect")
            def _wal(conn: object, _record: object) -> None:
                cur = conn.cursor()  # type: ignore[attr-defined]
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

        metadata.create_all(self.engine)
        self.hasher = PasswordHasher()  # argon2id

    def close(self) -> None:
        """Close the pooled database connections (the store is unusable afterwards)."""
        self.engine.dispose()

    # -- accounts -------------------------------------------------------------------------------
    def add_user(self, name: str, role: str, password: str) -> User:
        import re

        if not re.fullmatch(NAME_PATTERN, name):
            raise InputError(
                f"invalid account name {name!r}",
                field="NAME",
                fix="letters, digits and . _ @ - (the trust file's reviewer names), at most 100",
            )
        if role not in ROLES:
            raise InputError(f"unknown role {role!r}", field="--role", fix=", ".join(ROLES))
        if len(password) < 8:
            raise InputError("the password is shorter than 8 characters", field="password")
        with self.engine.begin() as c:
            if c.execute(sa.select(users.c.name).where(users.c.name == name)).first():
                raise InputError(f"the account {name!r} exists already", field="NAME")
            c.execute(
                users.insert().values(
                    name=name, role=role, password_hash=self.hasher.hash(password), created=_now()
                )
            )
        return User(name, role)  # type: ignore[arg-type]

    def user(self, name: str) -> User | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(users).where(users.c.name == name)).first()
        return User(row.name, row.role, row.public_key) if row else None

    def enrolled(self) -> list[User]:
        """Every account with an enrolled browser key, by name."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(users).where(users.c.public_key.is_not(None)).order_by(users.c.name)
            ).all()
        return [User(r.name, r.role, r.public_key) for r in rows]

    def enrol_key(self, name: str, public_key_b64: str) -> None:
        with self.engine.begin() as c:
            c.execute(users.update().where(users.c.name == name).values(public_key=public_key_b64))

    # -- login ------------------------------------------------------------------------------------
    def throttled(self, account: str, address: str) -> bool:
        since = _now() - THROTTLE_WINDOW
        with self.engine.connect() as c:
            n = c.execute(
                sa.select(sa.func.count())
                .select_from(failures)
                .where(
                    failures.c.account == account,
                    failures.c.address == address,
                    failures.c.time >= since,
                )
            ).scalar_one()
        return n >= THROTTLE_FAILURES

    def authenticate(self, account: str, password: str, address: str) -> User | None:
        """The user when the password is right; records a failure otherwise (and for unknown
        accounts too, hashing anyway so that timing does not tell which accounts exist)."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(users).where(users.c.name == account)).first()
        ok = False
        try:
            ok = self.hasher.verify(row.password_hash if row else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            with self.engine.begin() as c:
                c.execute(failures.insert().values(account=account, address=address, time=_now()))
            return None
        with self.engine.begin() as c:
            c.execute(
                failures.delete().where(
                    failures.c.account == account, failures.c.address == address
                )
            )
        return User(row.name, row.role, row.public_key)

    # -- sessions ---------------------------------------------------------------------------------
    def new_session(self, user: User) -> str:
        token = secrets.token_urlsafe(32)
        with self.engine.begin() as c:
            c.execute(sessions.delete().where(sessions.c.expires < _now()))
            c.execute(
                sessions.insert().values(
                    token_sha256=_sha(token),
                    user=user.name,
                    csrf=secrets.token_urlsafe(32),
                    expires=_now() + SESSION_LIFETIME,
                )
            )
        return token

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(sessions, users.c.role, users.c.public_key)
                .join(users, users.c.name == sessions.c.user)
                .where(sessions.c.token_sha256 == _sha(token))
            ).first()
        if row is None or _aware(row.expires) < _now():
            return None
        return Session(User(row.user, row.role, row.public_key), row.csrf, _aware(row.expires))

    def end_session(self, token: str | None) -> None:
        if token:
            with self.engine.begin() as c:
                c.execute(sessions.delete().where(sessions.c.token_sha256 == _sha(token)))

    # -- signing requests -------------------------------------------------------------------------
    def put_sign_request(self, user: str, release: str, request: str) -> str:
        nonce = secrets.token_urlsafe(24)
        with self.engine.begin() as c:
            c.execute(
                sign_requests.insert().values(
                    nonce_sha256=_sha(nonce),
                    user=user,
                    release=release,
                    request=request,
                    expires=_now() + SIGN_REQUEST_LIFETIME,
                    used=False,
                )
            )
        return nonce

    def take_sign_request(self, nonce: str, *, user: str, release: str) -> str | None:
        """The request's JSON, once: used, expired, another user's or another release's -> None."""
        with self.engine.begin() as c:
            done = c.execute(
                sign_requests.update()
                .where(
                    sign_requests.c.nonce_sha256 == _sha(nonce),
                    sign_requests.c.user == user,
                    sign_requests.c.release == release,
                    sign_requests.c.used.is_(False),
                    sign_requests.c.expires >= _now(),
                )
                .values(used=True)
            )
            if done.rowcount != 1:
                return None
            row = c.execute(
                sa.select(sign_requests.c.request).where(
                    sign_requests.c.nonce_sha256 == _sha(nonce)
                )
            ).first()
        return str(row.request) if row else None


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(PasswordHasher().hash(secrets.token_urlsafe(16)))
    return _DUMMY[0]
