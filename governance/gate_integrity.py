"""A verify check the gate relies on: every file's size agrees with the manifest.

The core checks compare each file's SHA-256 with the manifest; this one also compares sizes, so
that an edit to a ``size`` in ``manifest.json`` (which keeps it canonical and every digest
intact) is caught as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetrail.governance.findings import Finding


def check_manifest_sizes(root: Path, ctx: Any) -> list[Finding]:
    manifest = getattr(ctx, "manifest", None)
    if manifest is None:
        return []
    out = []
    for rel, info in manifest.files.items():
        file = root / rel
        if file.is_file() and file.stat().st_size != info.size:
            out.append(Finding("error", "modified", rel,
                               f"size {file.stat().st_size} differs from the manifest's {info.size}"))
    return out
