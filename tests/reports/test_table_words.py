"""Table layout in the PDF dossier: header and cell words wrap between words, never inside one
(digests and paths, in code, may wrap anywhere). Read back from the real PDF with pdftotext."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.sample_release import build_fixed, report

WORD = re.compile(r"[A-Za-z]{4,}")


CODE = (
    r"<code[^>]*>.*?</code>",
    r'<td class="(?:mono|val)[^"]*">.*?</td>',
    r'<span class="mono[^"]*"[^>]*>.*?</span>',
)


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def _cell_words(page: str) -> tuple[set[str], set[str], set[str]]:
    """(words of table headers, words of table cells outside code, words inside code: digests
    and paths, which may wrap at any character), from the HTML."""
    code: set[str] = set()
    for pattern in CODE:
        code |= {w for m in re.findall(pattern, page, re.S) for w in WORD.findall(_text(m))}
        page = re.sub(pattern, " ", page, flags=re.S)

    def words(cells: list[str]) -> set[str]:
        return set(WORD.findall(" ".join(_text(c) for c in cells)))

    return (
        words(re.findall(r"<th[^>]*>(.*?)</th>", page, re.S)),
        words(re.findall(r"<td[^>]*>(.*?)</td>", page, re.S)),
        code,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"WeasyPrint cannot be loaded here: {exc}")
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is not installed")
    root = tmp_path_factory.mktemp("words") / "ws"
    build_fixed(root)
    code, _, err = report(["report", str(root), "--format", "html,pdf"])
    assert code == 0, err
    text = subprocess.run(
        ["pdftotext", "-layout", str(root / "dossier" / "dossier.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    boxes = subprocess.run(
        ["pdftotext", "-bbox", str(root / "dossier" / "dossier.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return (root / "dossier" / "index.html").read_text(encoding="utf-8"), text, boxes


def _split_words(words: set[str], pdf_text: str, known: set[str], code: set[str]) -> list[str]:
    """Words of ``words`` whose start shows in the PDF as a token of its own (a fragment: a
    token that is no word of the page, nor the start of a word in code), i.e. broken across
    lines."""
    tokens = set(re.findall(r"[A-Za-z]+", pdf_text))
    fragments = {
        t
        for t in tokens - known
        if len(t) >= 3
        and not re.fullmatch(r"[a-f]+", t)  # a piece of a hex digest
        and not any(c.startswith(t) for c in code)  # a path or digest may wrap anywhere
    }
    return sorted(
        f"{w} (shown as {f!r})" for w in words for f in fragments if w != f and w.startswith(f)
    )


def test_no_table_header_or_cell_word_is_split_in_the_pdf(
    rendered: tuple[str, str, str],
) -> None:
    page, pdf_text, _ = rendered
    headers, cells, code = _cell_words(page)
    known = set(re.findall(r"[A-Za-z]+", html.unescape(re.sub(r"<[^>]+>", " ", page))))
    assert {"Metric", "Severity", "Evidence"} <= headers  # the check covers real tables
    assert len(cells) > 50
    assert _split_words(headers, pdf_text, known, code) == []
    assert _split_words(cells, pdf_text, known, code) == []


def test_whole_words_still_fit_the_page(rendered: tuple[str, str, str]) -> None:
    """Keeping words whole must not push a wide table past the right margin (12 mm on A4)."""
    _, _, boxes = rendered
    pages = re.findall(r'<page width="([\d.]+)" height="[\d.]+">(.*?)</page>', boxes, re.S)
    assert len(pages) >= 5
    beyond = [
        (number, word)
        for number, (width, body) in enumerate(pages, start=1)
        for x_max, word in re.findall(r'xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>', body)
        if float(x_max) > float(width) - 12 * 72 / 25.4 + 1
    ]
    assert beyond == []


def test_the_stylesheet_breaks_words_only_where_it_must() -> None:
    css = (Path(__file__).resolve().parents[2] / "templates/dossier.css").read_text()
    rule = re.search(r"th, td \{[^}]*\}", css)
    assert rule and "overflow-wrap: break-word" in rule.group(0)
    assert "anywhere" not in rule.group(0)  # anywhere only for code, .mono and .val
    assert re.search(r"td code, td\.mono, td \.mono, td\.val \{ overflow-wrap: anywhere; \}", css)
