"""Commands of the reports layer: ``report`` and ``diff``.

Light: importing this module loads click only; the commands import jinja2, matplotlib and the
exporters when they run (never torch, transformers, mlflow or presidio; WeasyPrint only for PDF).
"""

from __future__ import annotations

import click

from finetrail.cli_options import echo_json, json_option, keyring_option, workspace_argument
from finetrail.errors import EXIT_CHECK_FAILED, EXIT_OK
from finetrail.extras import require_extra

# What each format imports beyond the core: modules of the reports (and pdf) extras. Every format
# reads licences as SPDX expressions (license_expression); md needs no chart library.
_BASE = ("license_expression", "huggingface_hub")
FORMAT_MODULES: dict[str, dict[str, tuple[str, ...]]] = {
    "md": {"reports": _BASE},
    "html": {"reports": (*_BASE, "matplotlib", "networkx")},
    "cyclonedx": {"reports": (*_BASE, "cyclonedx")},
    "spdx": {"reports": (*_BASE, "spdx_python_model", "lib4sbom", "jsonschema")},
    "pdf": {"reports": (*_BASE, "matplotlib", "networkx"), "pdf": ("weasyprint",)},
}


def require_formats(formats: tuple[str, ...], *, command: str) -> None:
    """The extras the formats need, checked before anything is read (exit 2 naming them)."""
    need: dict[str, tuple[str, ...]] = {}
    for f in formats:
        for extra, mods in FORMAT_MODULES.get(f, {"reports": _BASE}).items():
            need[extra] = tuple(dict.fromkeys((*need.get(extra, ()), *mods)))
    require_extra(*need, command=command, modules=need)


@click.command("report")
@workspace_argument()
@click.option(
    "--format",
    "formats",
    default="html,md,cyclonedx,spdx",
    show_default=True,
    help="Comma-separated: html, md, pdf, cyclonedx, spdx.",
)
@click.option(
    "--templates",
    type=click.Path(),
    default=None,
    help="A folder of your own *.md.j2 / *.html.j2 templates (rendered sandboxed); "
    "same-named templates override the shipped ones.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output folder (default: WORKSPACE/dossier/).",
)
@click.option(
    "--compare",
    type=click.Path(file_okay=False),
    default=None,
    help="An earlier release's workspace: adds a 'changes' section and diff.md.",
)
@keyring_option()
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing: re-derive every statement of the dossier already in --out from the "
    "current evidence; exit 1 naming each statement that disagrees.",
)
@json_option("the check's result (with --check)")
def report_cmd(
    workspace: str,
    formats: str,
    templates: str | None,
    out: str | None,
    compare: str | None,
    keyring: str | None,
    check: bool,
    as_json: bool,
) -> int:
    """Render the documentation packs, exports and the analyst dossier from evidence.

    Exit 1 when the workspace fails its integrity check (the dossier is still written and says
    so), 2 on bad input. With --check, exit 1 when the rendered dossier no longer says what the
    evidence says.
    """
    from finetrail.reports.api import parse_formats, render_report

    require_formats(
        ("html", "md") if check else parse_formats(formats),
        command="report --check" if check else "report",
    )
    if check:
        from finetrail.reports.claims import check_dossier

        res = check_dossier(
            workspace=workspace, out=out, templates=templates, compare=compare, keyring=keyring
        )
        if as_json:
            echo_json(res.to_json())
        else:
            for d in res.disagreements:
                click.echo(f"DISAGREES {d.text()}")
            click.echo(
                f"report --check: {len(res.files)} file(s) checked in {res.out}; "
                + (
                    "every statement agrees with the evidence"
                    if res.ok
                    else f"{len(res.disagreements)} statement(s) disagree with the evidence"
                )
            )
        return EXIT_OK if res.ok else EXIT_CHECK_FAILED

    result = render_report(
        workspace=workspace,
        formats=parse_formats(formats),
        templates=templates,
        out=out,
        compare=compare,
        keyring=keyring,
    )
    m = result.model
    assert m is not None
    for f in result.files:
        click.echo(f"wrote {f}")
    if result.not_recorded:
        click.echo(
            f"warning: the dossier's digests were not recorded ({result.not_recorded}); "
            "`finetrail verify` will name its files as not written by `finetrail report`",
            err=True,
        )
    click.echo(
        f"verdict: {m.verdict.status}; "
        + "; ".join(
            f"{c.key} {c.totals.get('evidence', 0)}/{c.totals['total']} with evidence"
            for c in m.coverages
        )
    )
    if not result.integrity_ok:
        click.echo(
            "error: the workspace failed `finetrail verify`; the dossier says so. Run "
            "`finetrail verify WORKSPACE` for the findings.",
            err=True,
        )
        return EXIT_CHECK_FAILED
    return EXIT_OK


@click.command("diff")
@click.argument("workspace_a", type=click.Path(file_okay=False))
@click.argument("workspace_b", type=click.Path(file_okay=False))
@json_option("the changes")
def diff_cmd(workspace_a: str, workspace_b: str, as_json: bool) -> int:
    """What changed from release WORKSPACE_A to WORKSPACE_B: datasets, DP guarantee, probe and
    audit figures, gate outcomes and coverage."""
    require_formats(("md",), command="diff")
    from finetrail.reports.api import compare_workspaces

    d = compare_workspaces(before=workspace_a, after=workspace_b)
    if as_json:
        echo_json(d.to_json())
    else:
        click.echo(d.render_text())
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(report_cmd)
    group.add_command(diff_cmd)
