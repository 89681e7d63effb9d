"""Reports layer: renders evidence into documentation packs, exports and the analyst dossier.

Reads evidence only (never trains, scans or probes) and imports nothing heavy: no torch,
transformers, mlflow or presidio. The facade is :func:`render_report` (``finetrail report``) and
:func:`compare_workspaces` (``finetrail diff``); see :mod:`finetrail.reports.api`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compare_workspaces", "render_report"]


def __getattr__(name: str) -> Any:  # lazy: `import finetrail.reports.cli` stays light
    if name in __all__:
        from finetrail.reports import api

        return getattr(api, name)
    raise AttributeError(name)
