"""Neutralise control characters in user-supplied text before a terminal or a document shows it.

A model name, dataset name or note may hold raw ESC, BEL or OSC sequences (which retitle or
rewrite a terminal), C1 controls, or Unicode bidirectional overrides (which reorder what a reader
sees, "Trojan Source"). :func:`neutralise` replaces each with a visible stand-in: C0 controls by
their Unicode control picture (ESC -> U+241B), DEL by U+2421, C1 controls and bidi/invisible
format characters by U+FFFD. Replacement keeps JSON valid (no backslash is introduced).

The CLI wraps standard output and error (:class:`NeutralStream`), so every line a command
prints is neutralised; the report environments neutralise every value they render.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

# bidi embeddings/overrides/isolates, the marks, and zero-width/invisible formatting characters
_BIDI = "\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_KEEP_CR = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}]")


def _picture(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def neutralise(text: str, *, keep_cr: bool = False) -> str:
    """``text`` with control, bidi and invisible format characters made visible (tab and
    newline kept; carriage return kept only with ``keep_cr``, for progress bars)."""
    return (_UNSAFE_KEEP_CR if keep_cr else _UNSAFE).sub(_picture, text)


def neutralise_value(value: Any) -> Any:
    """:func:`neutralise` applied to a string, or to every string of a JSON-like value."""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, dict):
        return {neutralise_value(k): neutralise_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [neutralise_value(v) for v in value]
    return value


class NeutralStream:
    """A text stream that neutralises what is written to it.

    A carriage return is kept only at the start of a write (how a progress bar redraws its
    line); anywhere else, as inside a user string, it could hide what came before on the line.
    """

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        body = text.lstrip("\r")
        self._inner.write(text[: len(text) - len(body)] + neutralise(body))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
