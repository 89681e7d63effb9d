"""Fixtures for the console: two releases under one root, a trust file outside it naming a gate
key and reviewer keys made the way the browser makes them (raw Ed25519 public keys), accounts for
every role, and a logged-in client helper."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

pytest.importorskip("starlette")
pytest.importorskip("argon2")

from starlette.testclient import TestClient

from finetrail.cli import main
from finetrail.console import Store, create_app
from finetrail.console.releases import find_releases
from finetrail.governance.policy.load import shipped_policies
from tests.support.trust import WINDOW, key_entry, write_trust
from tests.support.workspaces import build_workspace, make_key

EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")
PASSWORD = "correct horse battery"
ACCOUNTS = {
    "bob": "reviewer",
    "carol": "reviewer",
    "dave": "reviewer",
    "alice": "reviewer",  # the workspaces' owner: an author
    "mallory": "reviewer",  # no key in the trust file
    "ann": "admin",
    "audrey": "auditor",
}
REVIEW_ROLES = {
    "bob": ["model-risk"],
    "carol": ["privacy"],
    "dave": ["model-risk"],
    "alice": ["model-risk"],
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def raw_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


@dataclass
class Env:
    tmp: Path
    root: Path
    a: Path  # the release most tests act on
    b: Path  # another release (same model, another workspace)
    trust: Path
    keys: dict[str, Ed25519PrivateKey]
    store: Store
    app: Any

    def rid(self, ws: Path) -> str:
        return next(r.id for r in find_releases(self.root).values() if r.path == ws.resolve())

    def client(self, name: str | None = None) -> Client:
        c = Client(TestClient(self.app, base_url="http://127.0.0.1"))
        if name:
            c.login(name)
        return c


class Client:
    def __init__(self, http: TestClient) -> None:
        self.http = http
        self.csrf = ""

    def login(self, name: str, password: str = PASSWORD) -> Any:
        self.http.get("/login")
        token = self.http.cookies.get("ft_login")
        r = self.http.post(
            "/login",
            data={"name": name, "password": password, "csrf": token},
            follow_redirects=False,
        )
        if r.status_code == 303:
            page = self.http.get("/").text
            self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        return r

    def post_json(self, url: str, body: dict[str, Any], csrf: str | None = None) -> Any:
        return self.http.post(
            url, json=body, headers={"X-CSRF-Token": self.csrf if csrf is None else csrf}
        )

    def comment(self, rid: str, text: str, **form: str) -> Any:
        data = {"csrf": self.csrf, "thread": "release", "state": "open", "text": text, **form}
        return self.http.post(f"/r/{rid}/comment", data=data, follow_redirects=False)

    def prepare(self, rid: str, key: Ed25519PrivateKey, **kw: str) -> Any:
        body = {"decision": "approve", "role": "model-risk", "note": "", "public_key": raw_b64(key)}
        return self.post_json(f"/r/{rid}/sign/prepare", body | kw)

    def complete(
        self, rid: str, nonce: str, signature: bytes, extra: list[dict[str, str]] | None = None
    ) -> Any:
        sig = base64.b64encode(signature).decode("ascii")
        body = {"nonce": nonce, "signature": sig, "extra": extra or []}
        return self.post_json(f"/r/{rid}/sign/complete", body)

    def sign_off(self, rid: str, key: Ed25519PrivateKey, **kw: str) -> Any:
        """What console.js does: sign the entry, then whatever else the commit asks to be signed
        (the log checkpoint written after the review)."""
        r = self.prepare(rid, key, **kw)
        assert r.status_code == 200, r.text
        return self.finish(rid, key, r.json())

    def finish(self, rid: str, key: Ed25519PrivateKey, data: dict[str, Any]) -> Any:
        sig = key.sign(base64.b64decode(data["signing_bytes"]))
        nonce, extra = data["nonce"], []
        for _ in range(3):
            r = self.complete(rid, nonce, sig, extra)
            if not (r.status_code == 409 and "sign_more" in r.json()):
                return r
            more = key.sign(base64.b64decode(r.json()["sign_more"]))
            extra.append({"message": r.json()["sign_more"], "signature": b64(more)})
            nonce = r.json()["nonce"]
        return r


def gate(ws: Path, env_trust: Path, keydir: Path, *extra: str) -> int:
    return main(
        ["gate", str(ws), "--policy", str(EU), "--trust", str(env_trust),
         "--signing-key", str(keydir / "ci-gate.key"), *extra]
    )  # fmt: skip


def write_console_trust(tmp: Path, keys: dict[str, Ed25519PrivateKey]) -> Path:
    keydir = tmp / "keys"
    if not (keydir / "ci-gate.pub").is_file():
        make_key(keydir, "ci-gate")
    reviewers = [
        {
            "name": name,
            "roles": REVIEW_ROLES[name],
            "public_key": raw_b64(key),
            "not_before": WINDOW[0].isoformat(),
            "not_after": WINDOW[1].isoformat(),
        }
        for name, key in keys.items()
        if name in REVIEW_ROLES
    ]
    return write_trust(
        tmp / "trust.yaml", gate=[key_entry(keydir / "ci-gate.pub", "ci-gate")], reviewers=reviewers
    )


@dataclass(frozen=True)
class Template:
    tmp: Path
    keys: dict[str, Ed25519PrivateKey]


@pytest.fixture(scope="session")
def console_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Two gated releases and the trust file, built once (under the pinned clock) and copied."""
    from datetime import datetime

    from finetrail.governance import clock
    from tests.support.workspaces import contract_kinds

    contract_kinds()
    tmp = tmp_path_factory.mktemp("console-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FINETRAIL_FIXED_TIME", "2026-01-15T12:00:00+00:00")
        mp.setattr(
            clock, "RELEASE_CLOCK", lambda: datetime.fromisoformat("2026-01-15T12:00:00+00:00")
        )
        root = tmp / "releases"
        # development mode (unsigned entries): the console's trust file names gate and reviewers
        a = build_workspace(root / "support-assistant" / "1.0.0", signed=False).root
        b = build_workspace(
            root / "support-assistant" / "0.9.0", purpose="an earlier release", signed=False
        ).root
        keys = {
            n: Ed25519PrivateKey.generate() for n in ("bob", "carol", "dave", "alice", "mallory")
        }
        trust = write_console_trust(tmp, keys)
        for ws in (a, b):
            assert gate(ws, trust, tmp / "keys") in (0, 1)  # a decision is recorded either way
    return Template(tmp, keys)


@pytest.fixture
def console_env(tmp_path: Path, console_template: Template) -> Env:
    import shutil

    for name in ("releases", "keys", "trust.yaml"):
        src = console_template.tmp / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    root = tmp_path / "releases"
    store = Store(f"sqlite:///{tmp_path / 'console.db'}")
    for name, role in ACCOUNTS.items():
        store.add_user(name, role, PASSWORD)
    trust = tmp_path / "trust.yaml"
    app = create_app(root=root, store=store, trust=trust)
    return Env(
        tmp_path, root, root / "support-assistant" / "1.0.0", root / "support-assistant" / "0.9.0",
        trust, console_template.keys, store, app,
    )  # fmt: skip


@pytest.fixture
def client_for(console_env: Env) -> Callable[[str], Client]:
    return console_env.client


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app on a real uvicorn server on 127.0.0.1 (a free port), in a thread; yields its URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        t0 = time.perf_counter()
        while not server.started:
            assert time.perf_counter() - t0 < 30, "the server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
