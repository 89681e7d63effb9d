"""The console as a real server on 127.0.0.1: start-up time, light imports, concurrent writers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from finetrail.console.releases import COMMENT_KIND
from finetrail.governance.workspace import Workspace
from tests.console.conftest import PASSWORD, Env

HEAVY = (
    "torch",
    "transformers",
    "mlflow",
    "presidio_analyzer",
    "presidio_anonymizer",
    "peft",
    "opacus",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serving_imports_nothing_heavy(console_env: Env) -> None:
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from starlette.testclient import TestClient\n"
        "from finetrail.console import Store, create_app\n"
        f"app = create_app(root=Path({str(console_env.root)!r}), store=Store('sqlite://'), "
        f"trust=Path({str(console_env.trust)!r}))\n"
        "c = TestClient(app)\n"
        "assert c.get('/').status_code == 401\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    import json

    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


@pytest.mark.slow
def test_serve_starts_and_answers_its_login_page(tmp_path: Path) -> None:
    """``finetrail serve`` comes up and answers (how fast is measured by
    ``benchmarks/console.py``, not asserted here)."""
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetrail", "serve", "--root", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        r = None
        while time.perf_counter() - t0 < 60 and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/login", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.02)
        assert r is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert r.status_code == 200 and 'id="login"' in r.text
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_200_concurrent_comments_from_20_sessions_lose_nothing(console_env: Env) -> None:
    import uvicorn

    for i in range(20):
        console_env.store.add_user(f"analyst{i}", "reviewer", PASSWORD)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(console_env.app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        while not server.started:
            time.sleep(0.01)
        rid = console_env.rid(console_env.a)
        sessions = []
        for i in range(20):
            http = httpx.Client(base_url=base, timeout=120)
            http.get("/login")
            r = http.post(
                "/login",
                data={
                    "name": f"analyst{i}",
                    "password": PASSWORD,
                    "csrf": http.cookies["ft_login"],
                },
            )
            assert r.status_code == 303
            page = http.get("/").text
            csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
            sessions.append((http, csrf))
        before = len(Workspace.open(console_env.a).ledger.entries())

        def post(n: int) -> int:
            http, csrf = sessions[n % 20]
            r = http.post(
                f"/r/{rid}/comment",
                data={"csrf": csrf, "thread": "release", "state": "open", "text": f"comment {n}"},
                follow_redirects=False,
            )
            return r.status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(pool.map(post, range(200)))
        assert codes == [303] * 200
        entries = Workspace.open(console_env.a).ledger.entries()
        texts = [e.payload["text"] for e in entries[before:] if e.kind == COMMENT_KIND]
        assert sorted(texts) == sorted(f"comment {n}" for n in range(200))
        assert [e.seq for e in entries] == list(range(len(entries)))
        from finetrail.governance.verify import verify_workspace

        assert verify_workspace(console_env.a, trust=console_env.trust).ok
        for http, _ in sessions:
            http.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
