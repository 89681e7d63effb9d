"""PDF export with WeasyPrint, and the clear error when it cannot be loaded."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.sample_release import build_fixed, report


def test_missing_weasyprint_is_exit_2_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    build_fixed(root, kinds=())
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import weasyprint -> ImportError
    code, _, err = report(["report", str(root), "--format", "pdf"])
    assert code == 2
    assert "needs the 'pdf' extra, which is not installed (missing: weasyprint (pdf))" in err
    assert "pip install 'finetrail[pdf]'" in err
    assert not (root / "dossier" / "dossier.pdf").exists()


def test_missing_system_libraries_name_the_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from finetrail.errors import DependencyMissing
    from finetrail.reports import dossier

    real_import = builtins.__import__

    def no_pango(name: str, *args: object, **kwargs: object) -> object:
        if name == "weasyprint":
            raise OSError("cannot load library 'libpango-1.0-0'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "weasyprint", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_pango)
    with pytest.raises(DependencyMissing) as exc:
        dossier.render_pdf("<html></html>")
    assert "system libraries (Pango, HarfBuzz), which are missing" in exc.value.diagnostics()
    assert "apt-get install libpango-1.0-0" in exc.value.diagnostics()


@pytest.mark.slow
def test_pdf_is_rendered_from_the_dossier(tmp_path: Path) -> None:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"WeasyPrint cannot be loaded here: {exc}")
    root = tmp_path / "ws"
    build_fixed(root)
    code, _, err = report(["report", str(root), "--format", "pdf"])
    assert code == 0, err
    pdf = (root / "dossier" / "dossier.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    if shutil.which("pdfinfo"):  # poppler-utils: read it back as a PDF reader would
        info = subprocess.run(
            ["pdfinfo", str(root / "dossier" / "dossier.pdf")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
        assert pages >= 5
        assert "Dossier: support-assistant 1.0.0" in info
        assert re.search(r"^Tagged:\s+yes", info, re.M), info  # PDF/UA-1: a tagged PDF
    if shutil.which("pdftotext"):
        _assert_page_furniture(root / "dossier" / "dossier.pdf")


def _page_texts(pdf: Path) -> list[str]:
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return text.split("\f")[:-1]  # one form feed after each page


def _assert_page_furniture(pdf: Path) -> None:
    """Every page carries the running header (model, version, short manifest digest) and
    "Page i of N"; the rule table's headers and severities are whole words."""
    pages = _page_texts(pdf)
    full = re.search(r"manifest digest\s+([0-9a-f]{64})", " ".join(pages[0].split()))
    assert full, pages[0][:600]
    assert len(pages) >= 5
    for i, page in enumerate(pages, start=1):
        assert f"Page {i} of {len(pages)}" in page, (i, page[-300:])
        head = page.strip().splitlines()[0]
        assert "support-assistant 1.0.0 · compliance dossier · manifest " in head, head
        assert f"manifest {full.group(1)[:12]}..." in head, head
    first = pages[0]
    assert re.search(r"Rule\s+Severity\s+Result\s+Evidence path\s+Value\s+Why", first), first
    assert "blocking" in first and "blockin\n" not in first
