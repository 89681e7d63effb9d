"""Generic English text that needs no download: documentation that ships with Python itself.

The docstrings of the CPython standard library, read with :mod:`ast` (no module is imported), and
the help topics of :mod:`pydoc_data.topics`. Files are visited in sorted order and nodes in
:func:`ast.walk` order, so the result is fixed for a given Python installation.
"""

from __future__ import annotations

import ast
import functools
import re
import sysconfig
from pathlib import Path

MIN_CHARS = 40
MAX_CHARS = 4000
SKIP_PARTS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
)
# Drop the odd docstring that names a person or carries contact details: this corpus has no PII.
_PERSONAL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|copyright|written by|author|contributed by", re.I)
_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _clean(text: str) -> list[str]:
    """The text in pieces of at most MAX_CHARS (split at blank lines); none if it is personal."""
    text = text.strip()
    if len(text) < MIN_CHARS or _PERSONAL.search(text):
        return []
    pieces: list[str] = []
    current = ""
    for para in text.split("\n\n"):
        para = para[:MAX_CHARS]
        if current and len(current) + len(para) + 2 > MAX_CHARS:
            pieces.append(current)
            current = para
        else:
            current = f"{current}\n\n{para}" if current else para
    if current:
        pieces.append(current)
    return [p for p in pieces if len(p.strip()) >= MIN_CHARS]


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@functools.lru_cache(maxsize=2)
def stdlib_docstrings(root: str | None = None) -> tuple[tuple[str, str], ...]:
    """``(source, docstring)`` pairs from every standard-library module (tests skipped).

    ``source`` is ``relative/path.py:qualified.name``. Cached per process: reading about 700 files
    takes a few seconds.
    """
    base = Path(root) if root else stdlib_root()
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    files = sorted(
        p for p in base.rglob("*.py") if not SKIP_PARTS.intersection(p.relative_to(base).parts)
    )
    for path in files:
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):  # a stray file that does not parse
            continue
        rel = path.relative_to(base).as_posix()
        for node in ast.walk(tree):
            if not isinstance(node, _DOC_NODES):
                continue
            doc = ast.get_docstring(node)
            name = getattr(node, "name", "<module>")
            for text in _clean(doc) if doc else []:
                if text not in seen:
                    seen.add(text)
                    out.append((f"stdlib:{rel}:{name}", text))
    return tuple(out)


def pydoc_topics() -> tuple[tuple[str, str], ...]:
    """``(source, text)`` for each help topic shipped in :mod:`pydoc_data.topics`."""
    from pydoc_data.topics import topics

    out: list[tuple[str, str]] = []
    for name in sorted(topics):
        out.extend((f"pydoc:{name}", text) for text in _clean(topics[name]))
    return tuple(out)
