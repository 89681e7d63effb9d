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
    assert "PDF export needs WeasyPrint" in err
    assert "apt-get install libpango-1.0-0" in err
    assert not (root / "dossier" / "dossier.pdf").exists()


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
