"""The optional extras (``pip install 'finetrail[train]'``) and the one check commands make.

Each command that needs more than the core calls :func:`require_extra` first, before it imports
anything heavy, so a core-only install answers with the exact extra to install (exit 2) instead
of a ``ModuleNotFoundError`` traceback half-way through. :data:`EXTRA_MODULES` names the
top-level modules each extra of ``pyproject.toml`` provides that finetrail imports; the test
``tests/core/test_packaging.py`` runs every command in a fresh core-only venv.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence

from finetrail.errors import DependencyMissing

__all__ = ["EXTRA_MODULES", "missing_modules", "require_extra"]

# extra -> the modules finetrail imports from it (import names, not distribution names)
EXTRA_MODULES: Mapping[str, tuple[str, ...]] = {
    "train": (
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "peft",
        "opacus",
        "mlflow",
        "tqdm",
        "faker",
    ),
    "data": ("presidio_analyzer", "presidio_anonymizer", "regex", "tldextract", "faker"),
    "pii-ner": ("spacy",),
    "audit": ("fairlearn", "sklearn", "pandas", "numpy", "scipy"),
    "reports": (
        "matplotlib",
        "networkx",
        "cyclonedx",
        "license_expression",
        "spdx_python_model",
        "lib4sbom",
        "jsonschema",
        "huggingface_hub",
    ),
    "pdf": ("weasyprint",),
    "spark": ("pyspark",),
    "team": ("psycopg", "boto3"),
}


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The modules of ``modules`` that cannot be found (nothing is imported)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def require_extra(
    *extras: str, command: str, modules: Mapping[str, Sequence[str]] | None = None
) -> None:
    """Raise :class:`DependencyMissing` (exit 2) naming the extras to install when a module of
    ``extras`` is missing. ``modules`` narrows an extra to the modules the command truly needs
    (``report --format md`` needs two of the reports extra's, not matplotlib)."""
    short: dict[str, list[str]] = {}
    for extra in extras:
        if extra not in EXTRA_MODULES:
            raise KeyError(f"unknown extra {extra!r}")  # a programming error, not user input
        wanted = (modules or {}).get(extra, EXTRA_MODULES[extra])
        gone = missing_modules(wanted)
        if gone:
            short[extra] = gone
    if not short:
        return
    names = ",".join(short)
    what = ", ".join(f"{', '.join(mods)} ({extra})" for extra, mods in short.items())
    raise DependencyMissing(
        f"`finetrail {command}` needs the {' and '.join(repr(e) for e in short)} "
        f"extra{'s' if len(short) > 1 else ''}, which {'are' if len(short) > 1 else 'is'} "
        f"not installed (missing: {what})",
        why="the core install (`pip install finetrail`) has no ML, PII-detection or rendering "
        "library; each extra adds one layer's",
        fix=f"install finetrail[{names}]: pip install 'finetrail[{names}]' (docs/install.md)",
    )
