"""Safety: no raw PII in any rendered file; hostile strings stay inert text, also in a browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.sample_release import HOSTILE, build_fixed, report

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # the browser's own traffic (network time, sync, safe browsing) is not the page's
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-default-browser-check",
)


@pytest.fixture(scope="module")
def tainted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A workspace whose evidence wrongly holds raw PII and hostile strings; its rendered dossier."""
    root = tmp_path_factory.mktemp("tainted") / "ws"
    sample = build_fixed(root, hostile=True, pii=True)
    code, _, err = report(["report", str(root), "--format", "html,md,cyclonedx,spdx"])
    assert code == 0, err
    # the PII really is in the evidence, so a report that copied it through would be caught
    evidence = "".join(p.read_text() for p in (root / "evidence").rglob("*.json"))
    assert all(
        v in evidence or v in (root / "ledger.jsonl").read_text() for v in sample.pii_values[:10]
    )
    return root, sample.pii_values


def _rendered(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted((root / "dossier").rglob("*"))
        if p.is_file()
    }


def test_no_raw_pii_value_in_any_rendered_file(tainted: tuple[Path, list[str]]) -> None:
    root, pii = tainted
    files = _rendered(root)
    assert len(files) >= 9
    leaks = [(name, v) for name, text in files.items() for v in pii if v in text]
    assert leaks == []
    # the masked forms are what the analyst sees instead
    html = files["dossier/index.html"]
    for placeholder in (
        "&lt;EMAIL_ADDRESS&gt;",
        "&lt;PHONE_NUMBER&gt;",
        "&lt;US_SSN&gt;",
        "&lt;CREDIT_CARD&gt;",
        "&lt;IP_ADDRESS&gt;",
    ):
        assert placeholder in html


def test_pii_scanner_finds_none_of_the_training_pii(tainted: tuple[Path, list[str]]) -> None:
    """Presidio's pattern recognisers (no NLP model needed) over every rendered file."""
    presidio = pytest.importorskip(
        "presidio_analyzer.predefined_recognizers", reason="presidio-analyzer is not installed"
    )
    recognizers = [
        presidio.EmailRecognizer(),
        presidio.PhoneRecognizer(),
        presidio.UsSsnRecognizer(),
        presidio.CreditCardRecognizer(),
        presidio.IpRecognizer(),
    ]
    root, pii = tainted
    raw = {re.sub(r"\D", "", v) if "@" not in v else v for v in pii}
    found: list[str] = []
    for name, text in _rendered(root).items():
        for rec in recognizers:
            for res in rec.analyze(text, rec.supported_entities, None):
                value = text[res.start : res.end]
                key = value if "@" in value else re.sub(r"\D", "", value)
                if key in raw:
                    found.append(f"{name}: {res.entity_type} {value}")
    assert found == []


def test_hostile_strings_are_escaped_and_never_evaluated(tainted: tuple[Path, list[str]]) -> None:
    root, _ = tainted
    files = _rendered(root)
    html = files["dossier/index.html"]
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "onerror=" not in html.replace("onerror=&#34;", "")  # only as escaped text
    assert "&lt;script&gt;document.title=&#39;PWNED-SCRIPT&#39;&lt;/script&gt;" in html
    assert "{{ 7*7 }}{% if 1 %}EVALUATED{% endif %}" in html  # shown, not run
    assert "49" not in re.sub(r"[0-9a-f]{12,}", "", html.split("PWNED-SCRIPT")[0][-200:])
    assert "https://example.invalid" in html  # as text only
    for name, text in files.items():
        if name.endswith(".md"):
            assert "<script" not in text and "<img" not in text, name
            assert not re.search(r"(?<!\\)\]\(javascript:", text), name  # only as \[x\](...)
            assert "{{ 7*7 }}" not in text or "EVALUATED{% endif %}" in text, name
    bom = json.loads(files["dossier/bom.cdx.json"])
    names = [c["name"] for c in bom["components"]]
    assert any(HOSTILE[0] in n for n in names)  # JSON carries the string as data, intact


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _open_in_chromium(page: Path, work: Path) -> tuple[str, list[tuple[str, int]]]:
    """Load ``page`` headless; return (the DOM after load, (url, traffic annotation) of every
    network request the browser started)."""
    exe = _chromium()
    assert exe is not None
    netlog = work / "net.json"
    proc = subprocess.run(
        [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={work / 'profile'}",
            f"--log-net-log={netlog}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    if not netlog.exists():
        pytest.fail("chromium wrote no net log")
    requests = set()
    # URL_REQUEST start events carry {"priority", "traffic_annotation", "url"}; read them from
    # the raw log so a log Chromium left unterminated still parses
    for m in re.finditer(r"\{[^{}]*\}", netlog.read_text(errors="replace")):
        try:
            params = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(params.get("url"), str) and isinstance(params.get("traffic_annotation"), int):
            requests.add((params["url"], params["traffic_annotation"]))
    return proc.stdout, sorted(requests)


def _external(requests: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return [
        (u, a) for u, a in requests if not u.startswith(("file://", "data:", "about:", "chrome:"))
    ]


@pytest.mark.slow
def test_dossier_in_headless_chromium_runs_no_script_and_requests_nothing(
    tainted: tuple[Path, list[str]], tmp_path: Path
) -> None:
    if _chromium() is None:
        pytest.skip("chromium is not installed (Debian package `chromium`); browser check not run")
    root, _ = tainted
    # The detector works: a control page that runs a script and loads remote resources is
    # caught. Its requests also name the traffic annotations Chromium gives page-initiated loads,
    # which tells them apart from the browser's own background traffic (updater, network time).
    control = tmp_path / "control.html"
    control.write_text(
        "<html><head><title>control</title></head><body>"
        "<script>document.title='PWNED-CONTROL';fetch('https://example.invalid/f')</script>"
        "<img src='https://example.invalid/beacon.png'>"
        "<iframe src='https://example.invalid/frame'></iframe></body></html>"
    )
    dom, requests = _open_in_chromium(control, tmp_path / "c")
    assert "<title>PWNED-CONTROL</title>" in dom
    page_loads = {a for u, a in requests if u.startswith("https://example.invalid")}
    assert page_loads, requests

    page = root / "dossier" / "index.html"
    dom, requests = _open_in_chromium(page, tmp_path / "d")
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None and title.group(1).startswith("Dossier: support-assistant")
    assert "PWNED" not in title.group(1)
    assert "Verdict and gate results" in dom
    left = [(u, a) for u, a in _external(requests) if a in page_loads or "example.invalid" in u]
    assert left == [], left


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "my new address is 25411 Wright Glen, Benjaminborough, UT 53945.",
            "my new address is <STREET_ADDRESS>.",
        ),
        (
            "billing address 3406 Riley Lights Suite 216 today",
            "billing address <STREET_ADDRESS> today",
        ),
        (
            "…holder <PERSON>, billing address 3406 Riley L…",
            "…holder <PERSON>, billing address <STREET_ADDRESS>…",
        ),
        ("Regulation (EU) 2024/1689, Article 10", "Regulation (EU) 2024/1689, Article 10"),
    ],
)
def test_street_addresses_are_masked_even_when_a_snippet_cuts_them(
    text: str, expected: str
) -> None:
    from finetrail.reports.redact import mask_text

    assert mask_text(text) == expected
