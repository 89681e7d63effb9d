"""The runnable blocks of the documentation: what ``tests/docs/test_doc_commands.py`` runs.

A fenced block is runnable when the line before its opening fence is an HTML comment (invisible
on GitHub and in any Markdown renderer)::

    <!-- doctest: run -->            the block is a shell script, run with bash -e -o pipefail
    <!-- doctest: run exit=1 -->     ... and must exit 1 (a gate that fails, as the text says)
    <!-- doctest: write PATH -->     the block's text is written to PATH (a config shown as YAML)

Blocks without a marker are never run. A file's blocks run in order in one fresh folder, so a
later block sees what an earlier one wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "doc_files", "extract"]

MARKER = re.compile(r"^<!--\s*doctest:\s*(?P<kind>\w+)(?P<args>[^>]*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    kind: str  # run | write
    text: str
    target: str | None = None  # write: where
    exit_code: int = 0  # run: the exit status the text promises

    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def doc_files(root: Path) -> list[Path]:
    """README.md and docs/*.md, in name order."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _parse_marker(path: Path, number: int, kind: str, args: str) -> tuple[str | None, int]:
    words = args.split()
    if kind == "write":
        if len(words) != 1:
            raise ValueError(f"{path}:{number}: `doctest: write` needs one PATH, got {args!r}")
        return words[0], 0
    if kind != "run":
        raise ValueError(f"{path}:{number}: unknown doctest marker {kind!r} (run, write)")
    code = 0
    for word in words:
        name, _, value = word.partition("=")
        if name != "exit" or not value.isdigit():
            raise ValueError(f"{path}:{number}: unknown doctest option {word!r} (exit=N)")
        code = int(value)
    return None, code


def extract(path: Path) -> list[Block]:
    """The marked blocks of one Markdown file, in order; a marker that is not followed by a
    fenced block, or a fence left open, is an error naming the line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i].strip())
        if not m:
            i += 1
            continue
        target, code = _parse_marker(path, i + 1, m["kind"], m["args"])
        j = i + 1
        fence = FENCE.match(lines[j]) if j < len(lines) else None
        if fence is None:
            raise ValueError(f"{path}:{i + 1}: a doctest marker must be followed by a fence")
        close = fence["fence"]
        body: list[str] = []
        k = j + 1
        while k < len(lines) and lines[k].strip() != close:
            body.append(lines[k])
            k += 1
        if k == len(lines):
            raise ValueError(f"{path}:{j + 1}: the fenced block is never closed")
        text = "\n".join(body) + "\n"
        blocks.append(Block(path, j + 1, m["kind"], text, target, code))
        i = k + 1
    return blocks
