"""Page-load time of the review console's release page against serving the static dossier file.

Builds one gated release (the test factory's evidence, `tests/support/workspaces.py`) whose
ledger holds ``--entries`` entries (comments added in one transaction), renders its static
dossier (`finetrail report --format html`), then times, in-process through Starlette's
TestClient (ASGI, no socket), ``--rounds`` warm requests of

- ``GET /r/<id>``: the console's release page (verify, review states, the dossier's model, the
  rule table, every comment), logged in;
- ``GET /index.html``: the rendered dossier file served by Starlette's StaticFiles.

Prints the median, p95 and minimum per page and the ratio of the medians. The console caches what
it read from a workspace while no file of it (or the trust file) changed (size, mtime, inode);
the first request after a write reads the workspace again and verifies it incrementally
(``governance/verify_incremental.py``: only the new ledger lines and checkpoints), timed as
"after a write" (3 rounds, each after a new ledger entry); "first request" is the very first
(the queue after logging in: nothing cached, a full verify). The last two rows time ``verify_workspace`` alone after a write,
in full and with the cache (same findings asserted). Target: the release page under 300 ms at
10,000 entries, also after a write.

    python benchmarks/console.py                   # 10,000 entries, 20 rounds
    python benchmarks/console.py --entries 1000 --rounds 10
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support
os.environ.setdefault("FINETRAIL_FIXED_TIME", "2026-01-15T12:00:00+00:00")
os.environ.setdefault("FINETRAIL_DEV_UNSIGNED", "1")

PASSWORD = "benchmark password"


def build(tmp: Path, entries: int) -> tuple[Path, Path]:
    from datetime import datetime

    from finetrail.cli import main
    from finetrail.governance import clock
    from finetrail.governance.policy.load import shipped_policies
    from tests.support.trust import trust_for
    from tests.support.workspaces import build_workspace

    clock.RELEASE_CLOCK = lambda: datetime.fromisoformat("2026-01-15T12:00:00+00:00")
    eu = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")
    root = tmp / "releases"
    with mock.patch("os.fsync"):  # setup speed only; the measured requests only read
        ws = build_workspace(root / "support-assistant" / "1.0.0").ws
        trust = trust_for(tmp / "keys", tmp / "trust.yaml", reviewers={})
        main(["gate", str(ws.root), "--policy", str(eu), "--trust", str(trust),
              "--signing-key", str(tmp / "keys" / "ci-gate.key")])  # fmt: skip
        n = len(ws.ledger.entries())
        with ws.transaction() as tx:
            for i in range(entries - n):
                tx.event(
                    "console.comment",
                    actor="bob",
                    payload={"thread": "release", "text": f"observation {i}", "state": "open"},
                )
    assert len(ws.ledger.entries()) == entries, len(ws.ledger.entries())
    return ws.root, trust


def timed(client, url: str, rounds: int) -> list[float]:  # type: ignore[no-untyped-def]
    client.get(url)  # warm: templates compiled, caches filled
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code)
    return out


def serve_startup(root: Path) -> float:
    """Seconds from starting ``finetrail serve`` to its first answer (the login page)."""
    import socket
    import subprocess

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetrail", "serve", "--root", str(root), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=0.5).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                time.sleep(0.01)
            assert proc.poll() is None and time.perf_counter() - t0 < 60, "serve did not answer"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()

    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles
    from starlette.testclient import TestClient

    from finetrail.console import Store, create_app
    from finetrail.console.releases import find_releases
    from finetrail.reports.api import render_report

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        ws, trust = build(tmp, args.entries)
        dossier = render_report(workspace=ws, formats=("html",), out=tmp / "dossier", actor="bench")
        built = time.perf_counter() - t0
        store = Store(f"sqlite:///{tmp / 'console.db'}")
        store.add_user("auditor", "auditor", PASSWORD)
        console = TestClient(create_app(root=tmp / "releases", store=store, trust=trust))
        console.get("/login")
        r = console.post(
            "/login",
            data={"name": "auditor", "password": PASSWORD, "csrf": console.cookies["ft_login"]},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.status_code
        rid = next(iter(find_releases(tmp / "releases")))
        static = TestClient(Starlette(routes=[Mount("/", StaticFiles(directory=dossier.out))]))
        t1 = time.perf_counter()
        assert console.get("/").status_code == 200  # the queue, nothing cached: a full verify
        first = [(time.perf_counter() - t1) * 1000]
        rows = [
            ("console, first request", first),
            ("console GET /r/<id>", timed(console, f"/r/{rid}", args.rounds)),
            ("static GET /index.html", timed(static, "/index.html", args.rounds)),
        ]
        from finetrail.governance.workspace import Workspace

        cold = []
        for i in range(3):  # a new ledger entry: the page reads and verifies the workspace again
            Workspace.open(ws).append_event(
                "console.comment", actor="bob", payload={"thread": "release", "text": f"new {i}",
                                                         "state": "open"},
            )  # fmt: skip
            t1 = time.perf_counter()
            assert console.get(f"/r/{rid}").status_code == 200
            cold.append((time.perf_counter() - t1) * 1000)
        rows.append(("console, after a write", cold))
        from finetrail.governance.trust import load_trust
        from finetrail.governance.verify import verify_workspace
        from finetrail.governance.verify_incremental import VerifyCache

        root = load_trust(trust, workspace=ws)
        cache, full, incremental = VerifyCache(), [], []
        verify_workspace(ws, trust=root, cache=cache)
        for i in range(3):  # verify alone after a write: in full, and resumed from the cache
            Workspace.open(ws).append_event(
                "console.comment", actor="bob", payload={"thread": "release", "text": f"v {i}",
                                                         "state": "open"},
            )  # fmt: skip
            t1 = time.perf_counter()
            a = verify_workspace(ws, trust=root)
            full.append((time.perf_counter() - t1) * 1000)
            t1 = time.perf_counter()
            b = verify_workspace(ws, trust=root, cache=cache)
            incremental.append((time.perf_counter() - t1) * 1000)
            assert a.findings == b.findings
        rows += [("verify after a write, full", full), ("verify, incremental", incremental)]
        size = len(console.get(f"/r/{rid}").content)
        startup = [serve_startup(tmp / "releases") * 1000 for _ in range(3)]
        rows.append(("serve start-up, first answer", startup))
    print(f"# console release page vs static dossier: {args.entries} ledger entries, "
          f"{args.rounds} warm rounds (setup {built:.1f} s)")  # fmt: skip
    print(
        f"# {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; page {size} bytes"
    )
    print(f"{'page':<30}{'median ms':>10}{'p95 ms':>10}{'min ms':>10}")
    for name, ms in rows:
        p95 = sorted(ms)[max(0, int(len(ms) * 0.95) - 1)]
        print(f"{name:<30}{statistics.median(ms):>10.1f}{p95:>10.1f}{min(ms):>10.1f}")
    ratio = statistics.median(rows[1][1]) / statistics.median(rows[2][1])  # warm over static
    print(f"ratio of medians (warm console / static): {ratio:.1f}x; target: console < 300 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
