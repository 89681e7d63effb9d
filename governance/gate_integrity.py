"""A verify check the gate relies on: the manifest agrees with the files and the ledger in full.

The core checks compare each file's SHA-256 with the manifest and the manifest's anchor with the
ledger's head. This check closes what they leave open, so that any edit of ``manifest.json`` is
caught: every file's size must match the manifest's ``size``, and the manifest's version stamp
must be that of the ledger's last entry (both are written by the same finetrail, in the same
locked step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetrail.governance.findings import Finding

MANIFEST = "manifest.json"


def check_manifest_sizes(root: Path, ctx: Any) -> list[Finding]:
    manifest = getattr(ctx, "manifest", None)
    if manifest is None:
        return []
    out = []
    for rel, info in manifest.files.items():
        file = root / rel
        if file.is_file() and file.stat().st_size != info.size:
            out.append(
                Finding(
                    "error",
                    "modified",
                    rel,
                    f"size {file.stat().st_size} differs from the manifest's {info.size}",
                )
            )
    entries = getattr(ctx, "entries", [])
    if (
        entries
        and manifest.ledger.head == entries[-1].digest
        and manifest.finetrail_version != entries[-1].finetrail_version
    ):
        out.append(
            Finding(
                "error",
                "modified",
                MANIFEST,
                f"version stamp {manifest.finetrail_version!r} differs from the ledger "
                f"head's {entries[-1].finetrail_version!r} (written together)",
            )
        )
    return out
