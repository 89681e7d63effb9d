"""The rendering core: jinja2 environments for Markdown and HTML.

- Templates ship in the ``finetrail.templates`` package (``*.md.j2``, ``*.html.j2``, CSS).
- ``StrictUndefined`` everywhere: a misspelt variable is an error, never an empty string.
- HTML templates autoescape. Markdown templates pass every value through :func:`md_escape`, so a
  dataset name like ``<script>`` or ``[x](javascript:...)`` stays text in any Markdown viewer.
- Evidence strings are data, never templates: nothing renders a string read from evidence.
- A user's template folder (``--templates DIR``) is rendered in an
  :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`; its templates override the packaged ones
  by name, and any other ``*.j2`` in it renders to the output folder under its own name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from finetrail.errors import InputError
from finetrail.reports.loader import base_model_label
from finetrail.reports.model import blind_baseline_text, fair, fair_effect, fair_value, fmt
from finetrail.textsafe import neutralise

PACKAGE = "finetrail.templates"
_MD_SPECIAL = re.compile(r"([\\`\[\]|<])")


def md_escape(value: Any) -> str:
    """Text safe to place in Markdown (also inside a table cell): no HTML, links or code spans."""
    if isinstance(value, Markup):
        return str(value)
    text = neutralise(fmt(value))
    text = re.sub(r"\s*[\r\n]+\s*", " ", text)
    return _MD_SPECIAL.sub(lambda m: "&lt;" if m.group(1) == "<" else "\\" + m.group(1), text)


def _finalize_html(value: Any) -> Any:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, Markup):
        return Markup(neutralise(str(value)))
    if isinstance(value, str):
        return neutralise(value)
    return value


def short(value: Any, n: int = 12) -> str:
    s = "" if value is None else str(value)
    return s if len(s) <= n else s[:n] + "..."


def shortpath(value: Any) -> str:
    """A workspace path with its 64-hex digest parts cut to 8 characters (full path in coverage.json)."""
    return re.sub(
        r"[0-9a-f]{64}", lambda m: m.group(0)[:8] + "...", "" if value is None else str(value)
    )


def _loader(user_dir: Path | None) -> jinja2.BaseLoader:
    package = jinja2.PackageLoader(PACKAGE, ".")
    if user_dir is None:
        return package
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(user_dir)), package])


def make_env(*, html: bool, user_dir: str | os.PathLike[str] | None = None) -> jinja2.Environment:
    """The environment for HTML (autoescaped) or Markdown templates; sandboxed with a user folder."""
    udir = Path(user_dir) if user_dir is not None else None
    if udir is not None and not udir.is_dir():
        raise InputError(
            "template folder not found",
            path=str(udir),
            field="--templates",
            fix="pass a folder holding *.md.j2 / *.html.j2 templates",
        )
    cls: type[jinja2.Environment] = ImmutableSandboxedEnvironment if udir else jinja2.Environment
    env = cls(
        loader=_loader(udir),
        undefined=jinja2.StrictUndefined,
        autoescape=html,
        finalize=_finalize_html if html else md_escape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["fair"] = fair
    env.filters["fair_value"] = fair_value
    env.filters["fair_effect"] = fair_effect
    env.filters["short"] = short
    env.filters["shortpath"] = shortpath
    env.filters["md"] = md_escape
    env.filters["base_model_label"] = base_model_label
    env.filters["blind_baseline"] = blind_baseline_text
    return env


def render(env: jinja2.Environment, name: str, **context: Any) -> str:
    """Render one template; template errors become :class:`InputError` naming the template."""
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise InputError(f"template not found: {name}", field="--templates") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(
            f"template syntax error at line {exc.lineno}: {exc.message}",
            path=exc.filename or name,
            field="--templates",
        ) from exc
    except jinja2.exceptions.SecurityError as exc:
        raise InputError(
            f"template refused by the sandbox: {exc}", path=name, field="--templates"
        ) from exc
    except jinja2.UndefinedError as exc:
        raise InputError(
            f"template uses an undefined value: {exc.message}",
            path=name,
            field="--templates",
            fix="check the variable names against the report model",
        ) from exc


def user_templates(user_dir: str | os.PathLike[str] | None) -> list[str]:
    """Templates in the user's folder that do not override a packaged one (rendered as extras)."""
    if user_dir is None:
        return []
    shipped = set(jinja2.PackageLoader(PACKAGE, ".").list_templates())
    own = jinja2.FileSystemLoader(str(user_dir)).list_templates()
    return sorted(n for n in own if n.endswith(".j2") and n not in shipped)
