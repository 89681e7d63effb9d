"""Progress bars on standard error, one rule for every command.

A command that runs for more than a few seconds takes ``--progress/--no-progress``
(:func:`progress_option`). Unset, the bar is shown only when standard error is a terminal, so a
log file or a pipe never receives bar frames; ``--no-progress`` turns it off, ``--progress``
forces it on (for a terminal that does not say it is one). Bars always go to standard error:
standard output stays machine-readable where a command prints JSON.

Light at import: tqdm is imported when a bar is shown.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Bar", "FileProgress", "progress_option", "reading", "wanted"]


def progress_option(what: str) -> Callable[[F], F]:
    """The ``--progress/--no-progress`` option; ``what`` completes "while ..." in its help."""
    return click.option(
        "--progress/--no-progress",
        "progress",
        default=None,
        help=f"Progress bar on stderr while {what} (default: shown when stderr is a terminal).",
    )


def wanted(flag: bool | None) -> bool:
    """Whether to show a bar: the flag when given, else whether stderr is a terminal.

    When no bar is wanted, the libraries' own bars are switched off too (transformers' "Loading
    weights", huggingface_hub's), so a log or a pipe gets no bar frames from them either."""
    show = flag if flag is not None else stderr_is_terminal()
    if not show:
        library_bars_off()
    return show


def library_bars_off() -> None:
    """Switch off the bars of transformers and huggingface_hub for this process: the variable
    both read at import, and their switches when they are imported already (nothing is imported
    here)."""
    import os

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None and hasattr(hub, "disable_progress_bars"):
        hub.disable_progress_bars()
    tf_logging = sys.modules.get("transformers.utils.logging")
    if tf_logging is not None and hasattr(tf_logging, "disable_progress_bar"):
        tf_logging.disable_progress_bar()


def stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


class Bar:
    """One bar at a time on stderr; ``start`` replaces the current one. Disabled: no output and
    no tqdm import. Satisfies the probes' ``Progress`` protocol (``start``, ``advance``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def start(self, label: str, total: int | None, *, unit: str = "it", scale: bool = True) -> None:
        self.close()
        if not self.enabled:
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            desc=label,
            unit=unit,
            unit_scale=scale,
            unit_divisor=1024 if unit == "B" else 1000,
            file=sys.stderr,
            leave=True,
            dynamic_ncols=True,
        )

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileProgress:
    """Progress through a file being read: bytes of ``size`` when the reader reports its
    position (``bytes_read``), otherwise a count of records."""

    def __init__(self, bar: Bar, label: str, *, size: int | None) -> None:
        self._bar = bar
        self._by_bytes = size is not None and size > 0
        self._done = 0
        if self._by_bytes:
            bar.start(label, size, unit="B")
        else:
            bar.start(label, None, unit="rec")

    def record(self, bytes_read: int | None) -> None:
        """Called once per record with the reader's position (None when it has none)."""
        if not self._bar.enabled:
            return
        if self._by_bytes and bytes_read is not None:
            if bytes_read > self._done:
                self._bar.advance(bytes_read - self._done)
                self._done = bytes_read
        elif not self._by_bytes:
            self._bar.advance(1)

    def close(self) -> None:
        self._bar.close()


def reading(bar: Bar | None, label: str, reader: Any) -> FileProgress:
    """Progress through a dataset reader (bytes of the file; records for Parquet)."""
    import os

    size = None if reader.format == "parquet" else os.path.getsize(reader.path)
    return FileProgress(bar or Bar(False), label, size=size)
