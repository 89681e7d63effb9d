"""The reports facade: :func:`render_report` and :func:`compare_workspaces`.

``render_report`` writes, under ``out`` (default ``WORKSPACE/dossier/``):

==============  ============================================================================
format          files
==============  ============================================================================
(always)        ``coverage.json``
``md``          ``annex_iv.md``, ``nist_ai_rmf.md``, ``README.md`` (model card), ``coverage.md``,
                ``datasheets/<name>-<sha8>.md``, ``diff.md`` (with ``compare``)
``html``        ``index.html`` (the dossier)
``pdf``         ``dossier.pdf`` (WeasyPrint)
``cyclonedx``   ``bom.cdx.json`` (CycloneDX 1.6 ML-BOM)
``spdx``        ``spdx.json`` (SPDX 3.0.1, AI and Dataset profiles)
==============  ============================================================================

When ``out`` lies under the workspace's ``dossier/`` (the default), the digest of every file written
there, and the stale datasheets removed, are recorded as one ``report.rendered`` ledger event through
:meth:`Workspace.append_event` (under the workspace lock, with the writes), so that ``verify``
(:mod:`finetrail.governance.coverage`) names an edited, deleted or added dossier file. A workspace
that cannot record (not a workspace, a write refused) still gets its dossier;
``ReportResult.not_recorded`` says why, and ``verify`` then names the unrecorded files.

The same evidence and the same clock (``FINETRAIL_FIXED_TIME`` / ``SOURCE_DATE_EPOCH``) give
byte-identical files (the PDF aside, whose bytes depend on WeasyPrint's version).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetrail.errors import InputError
from finetrail.governance.io import sha256_bytes
from finetrail.reports import bom, datasheet, dossier, model_card, render, spdx
from finetrail.reports.diff import Diff, diff
from finetrail.reports.files import write_output
from finetrail.reports.loader import load_evidence
from finetrail.reports.model import ReportModel, build_model

FORMATS: tuple[str, ...] = ("html", "md", "pdf", "cyclonedx", "spdx")
DEFAULT_FORMATS: tuple[str, ...] = ("html", "md", "cyclonedx", "spdx")
DOSSIER_DIR = "dossier"
REPORT_EVENT = "report.rendered"  # governance.coverage.REPORT_EVENT: the digests of the dossier


@dataclass
class ReportResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    model: ReportModel | None = None
    diff: Diff | None = None
    recorded: bool = False  # the digests are in the ledger (report.rendered)
    not_recorded: str | None = None  # why not, when out lies in the workspace's dossier/

    @property
    def integrity_ok(self) -> bool:
        return self.model is not None and self.model.ev.integrity.ok


def parse_formats(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    wanted = [x.strip().lower() for x in items if x.strip()]
    unknown = [x for x in wanted if x not in FORMATS]
    if unknown or not wanted:
        raise InputError(
            f"unknown format(s): {', '.join(unknown) or '(none given)'}",
            field="--format",
            fix=f"choose from {', '.join(FORMATS)} (comma-separated)",
        )
    return tuple(f for f in FORMATS if f in wanted)


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def compare_workspaces(*, before: str | os.PathLike[str], after: str | os.PathLike[str]) -> Diff:
    """What changed from the release in ``before`` to the one in ``after``."""
    return diff(build_model(load_evidence(before)), build_model(load_evidence(after)))


def render_outputs(
    m: ReportModel,
    *,
    formats: tuple[str, ...],
    templates: str | os.PathLike[str] | None = None,
    change: Diff | None = None,
) -> dict[str, bytes]:
    """Every file of the dossier (relative name -> bytes), rendered in memory from ``m``."""
    md_env = render.make_env(html=False, user_dir=templates)
    html_env = render.make_env(html=True, user_dir=templates)
    outputs: dict[str, bytes] = {}

    outputs["coverage.json"] = _json_bytes(m.coverage_json())
    card_sha: str | None = None
    if "md" in formats:
        ctx = {"m": m}
        outputs["annex_iv.md"] = render.render(md_env, "annex_iv.md.j2", **ctx).encode()
        outputs["nist_ai_rmf.md"] = render.render(md_env, "nist_ai_rmf.md.j2", **ctx).encode()
        outputs["coverage.md"] = render.render(md_env, "coverage.md.j2", **ctx).encode()
        readme = render.render(
            md_env, "model_card.md.j2", m=m, front_matter=model_card.front_matter(m)
        )
        outputs["README.md"] = readme.encode()
        card_sha = sha256_bytes(outputs["README.md"])
        for sheet in datasheet.datasheets(m):
            outputs[f"datasheets/{sheet.slug}.md"] = render.render(
                md_env, "datasheet.md.j2", m=m, sheet=sheet
            ).encode()
        if change is not None:
            outputs["diff.md"] = render.render(md_env, "diff.md.j2", d=change).encode()
    html: str | None = None
    if "html" in formats or "pdf" in formats:
        html = dossier.render_html(html_env, m, diff=change)
        if "html" in formats:
            outputs["index.html"] = html.encode()
    if "cyclonedx" in formats:
        outputs["bom.cdx.json"] = _json_bytes(bom.build_bom(m, model_card_sha256=card_sha))
    if "spdx" in formats:
        outputs["spdx.json"] = _json_bytes(spdx.build_spdx(m))
    if "pdf" in formats and html is not None:
        outputs["dossier.pdf"] = dossier.render_pdf(html)
    for name in render.user_templates(templates):
        env = html_env if name.endswith(".html.j2") else md_env
        out_name = name.removesuffix(".j2")
        if out_name in outputs or out_name.startswith(("/", "..")):
            raise InputError(
                f"user template {name} would overwrite {out_name}",
                path=str(templates),
                field="--templates",
                fix="rename it",
            )
        outputs[out_name] = render.render(env, name, m=m, diff=change).encode()
    return outputs


def render_report(
    *,
    workspace: str | os.PathLike[str],
    formats: tuple[str, ...] = DEFAULT_FORMATS,
    templates: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    compare: str | os.PathLike[str] | None = None,
    keyring: str | os.PathLike[str] | None = None,
    actor: str | None = None,
) -> ReportResult:
    """Render the packs and exports of ``workspace``; returns the files written.

    ``actor`` is who the ``report.rendered`` ledger event names (default: the login name).

    ``keyring`` is the trusted reviewer keyring (as for the gate); reviews are shown with the
    states the gate gives them.
    """
    formats = parse_formats(list(formats))
    m = build_model(load_evidence(workspace, keyring=keyring))
    change = diff(build_model(load_evidence(compare)), m) if compare is not None else None
    out_dir = Path(out) if out is not None else Path(workspace) / DOSSIER_DIR
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("the output path is not a folder", path=str(out_dir), field="--out")
    result = ReportResult(out=out_dir, model=m, diff=change)
    outputs = render_outputs(m, formats=formats, templates=templates, change=change)
    _check_targets(out_dir, outputs)  # before anything is written or recorded
    dossier_root = (Path(workspace) / DOSSIER_DIR).resolve()
    try:
        inside = out_dir.resolve() == dossier_root or out_dir.resolve().is_relative_to(dossier_root)
    except OSError:
        inside = False
    if not inside:
        _write_outputs(out_dir, outputs, result)
        return result
    from finetrail.errors import FinetrailError
    from finetrail.governance.workspace import Workspace, default_actor

    try:
        ws = Workspace.open(workspace)
    except FinetrailError as err:
        result.not_recorded = err.what
        _write_outputs(out_dir, outputs, result)
        return result
    root = ws.root.resolve()
    try:
        with ws.transaction():  # the lock: no other command writes between files and digests
            removed = _write_outputs(out_dir, outputs, result)
            written = {
                (out_dir / rel).resolve().relative_to(root).as_posix(): sha256_bytes(data)
                for rel, data in outputs.items()
            }
            ws.append_event(
                REPORT_EVENT,
                actor=default_actor(actor, owner=ws.metadata.owner),
                payload={
                    "files": written,
                    "removed": sorted(p.resolve().relative_to(root).as_posix() for p in removed),
                    "formats": list(formats),
                },
            )
        result.recorded = True
    except FinetrailError as err:
        result.not_recorded = err.what
    return result


def _check_targets(out_dir: Path, outputs: dict[str, bytes]) -> None:
    """Refuse, before writing anything, a path that is neither absent nor a regular file (a
    folder, a symlink, a FIFO where a dossier file goes), naming it."""
    import stat

    folders = {str(Path(r).parent) for r in outputs if "/" in r}
    for rel in sorted({*outputs, *folders}):
        p = out_dir / rel
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise InputError(
                "cannot write the dossier here", path=str(p), why=err.strerror
            ) from err
        want_dir = rel in folders
        if not (stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)):
            want = "folder" if want_dir else "regular file"
            raise InputError(
                f"in the way of the dossier: not a {want} (a symlink, folder, FIFO or device)",
                path=str(p),
                fix="remove it and render again",
            )


def _write_outputs(out_dir: Path, outputs: dict[str, bytes], result: ReportResult) -> list[Path]:
    """Write the rendered files; returns the stale datasheets it removed."""
    removed: list[Path] = []
    ds_dir = out_dir / "datasheets"
    if ds_dir.is_dir():  # datasheets of datasets no longer in the workspace are stale
        for old in sorted(ds_dir.glob("*.md")):
            if f"datasheets/{old.name}" not in outputs:
                old.unlink()
                removed.append(old)
    for rel, data in outputs.items():
        write_output(out_dir / rel, data)  # mode 0644: a report is meant to be read
        result.files.append(out_dir / rel)
    return removed
