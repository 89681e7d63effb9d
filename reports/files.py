"""Writing the rendered files: atomically, and readable by others (mode 0644).

The workspace's atomic writer (:func:`finetrail.governance.io.atomic_write_bytes`) creates its
temporary file with ``mkstemp``, so what it writes is ``0600``: right for keys and evidence, wrong
for a dossier meant to be read, served or attached. Reports go through :func:`write_output`, which
gives the file its ``mode`` after the atomic rename (keys keep their own writer and stay ``0600``).
"""

from __future__ import annotations

import os
from pathlib import Path

from finetrail.governance.io import atomic_write_bytes

REPORT_FILE_MODE = 0o644


def write_output(
    path: str | os.PathLike[str], data: bytes, *, mode: int = REPORT_FILE_MODE
) -> Path:
    """Write ``data`` to ``path`` atomically and set its permission bits to ``mode``."""
    target = Path(path)
    atomic_write_bytes(target, data)
    os.chmod(target, mode)
    return target
