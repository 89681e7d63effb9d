"""The analyst dossier: one self-contained ``index.html`` and its PDF.

Self-contained means no external request of any kind: CSS is inlined, charts are inline SVG, a
Content-Security-Policy forbids scripts and any fetch, and no template references a URL. The PDF
is WeasyPrint's rendering of the same HTML with its print stylesheet (a running header with the
model, version and short manifest digest; "Page N of M"), tagged as PDF/UA-1 where the installed
WeasyPrint supports it; WeasyPrint is imported only when a PDF is asked for, and its URL fetcher
refuses every URL.
"""

from __future__ import annotations

from typing import Any

import jinja2
from markupsafe import Markup

from finetrail import __version__
from finetrail.errors import DependencyMissing
from finetrail.reports import charts, datasheet
from finetrail.reports.diff import Diff
from finetrail.reports.model import ReportModel
from finetrail.reports.render import render

PDF_VARIANT = "pdf/ua-1"  # tagged, for screen readers (ISO 14289-1)
PDF_PACKAGES = "libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 libfontconfig1 fonts-dejavu-core"


def render_html(env: jinja2.Environment, m: ReportModel, *, diff: Diff | None = None) -> str:
    svgs = {
        k: (Markup(v) if v else None) for k, v in charts.all_charts(m.ev).items()
    }  # matplotlib SVG
    return render(
        env,
        "dossier.html.j2",
        m=m,
        charts=svgs,
        datasheets=datasheet.datasheets(m),
        diff=diff,
        finetrail_version=__version__,
    )


def _refuse_fetch(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    raise ValueError(f"the dossier must not fetch anything (asked for {url[:80]})")


def render_pdf(html: str) -> bytes:
    """The dossier as PDF (WeasyPrint); DependencyMissing (exit 2) when it cannot be loaded."""
    try:
        import weasyprint
    except ImportError as exc:
        raise DependencyMissing(
            "PDF export needs WeasyPrint, which is not installed",
            why=str(exc),
            fix="pip install 'finetrail[pdf]' (WeasyPrint); on Debian also "
            f"`apt-get install {PDF_PACKAGES}`; or leave pdf out of --format",
        ) from exc
    except OSError as exc:  # the Python package is there but Pango/HarfBuzz are not
        raise DependencyMissing(
            "PDF export needs WeasyPrint's system libraries (Pango, HarfBuzz), which are missing",
            why=str(exc).splitlines()[0] if str(exc) else "a shared library could not be loaded",
            fix=f"on Debian: `apt-get install {PDF_PACKAGES}`; or leave pdf out of --format",
        ) from exc
    doc = weasyprint.HTML(string=html, base_url=None, url_fetcher=_refuse_fetch)
    pdf: bytes = doc.write_pdf(
        pdf_identifier=b"finetrail-dossier", uncompressed_pdf=False, **pdf_options(weasyprint)
    )
    return pdf


def pdf_options(weasyprint: Any) -> dict[str, Any]:
    """Tagged PDF (PDF/UA-1: structure tags, language, title) where this WeasyPrint offers it
    (``pdf_variant="pdf/ua-1"``, WeasyPrint 59 and later); an untagged PDF otherwise."""
    try:
        from weasyprint.pdf import VARIANTS
    except ImportError:  # older WeasyPrint: no variants at all
        return {}
    return {"pdf_variant": PDF_VARIANT} if PDF_VARIANT in VARIANTS else {}
