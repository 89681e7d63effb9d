"""SPDX licence identifiers and expressions, checked offline against the shipped list.

``governance/data/spdx_ids.txt`` is generated at development time from PyPI packages
(``scripts/generate_spdx_ids.py``); nothing is fetched at run time. Accepted: an SPDX licence
identifier (case-insensitive, normalised to the list's spelling, optionally with ``+``),
``LicenseRef-<idstring>`` for licences not on the list, and expressions joining those with
``AND``, ``OR``, ``WITH <exception>`` and parentheses (SPDX specification, Annex D).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from finetrail.errors import InputError

_REF = re.compile(r"(?:DocumentRef-[A-Za-z0-9.\-]+:)?LicenseRef-[A-Za-z0-9.\-]+")
_ADDITION_REF = re.compile(r"(?:DocumentRef-[A-Za-z0-9.\-]+:)?AdditionRef-[A-Za-z0-9.\-]+")
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_FIX = (
    "use an SPDX licence identifier (https://spdx.org/licenses/), an expression such as "
    "'MIT OR Apache-2.0', or LicenseRef-<name> for a licence that is not on the list"
)


@dataclass(frozen=True)
class SpdxList:
    version: str
    licenses: dict[str, str]  # lower-case id -> canonical id
    exceptions: dict[str, str]
    deprecated: frozenset[str]


@lru_cache(maxsize=1)
def spdx_list() -> SpdxList:
    text = resources.files("finetrail.governance").joinpath("data/spdx_ids.txt").read_text("utf-8")
    licenses: dict[str, str] = {}
    exceptions: dict[str, str] = {}
    deprecated: set[str] = set()
    version = "unknown"
    for line in text.splitlines():
        if line.startswith("#"):
            m = re.search(r"\(v[\d.]+-([\d.]+)\)", line)
            if m:
                version = m.group(1)
            continue
        if not line.strip():
            continue
        spdx_id, kind, status = line.split("\t")
        (exceptions if kind == "exception" else licenses)[spdx_id.lower()] = spdx_id
        if status == "deprecated":
            deprecated.add(spdx_id)
    return SpdxList(version, licenses, exceptions, frozenset(deprecated))


@dataclass(frozen=True)
class LicenseCheck:
    expression: str  # normalised
    deprecated: tuple[str, ...]


def _unknown(token: str, pool: dict[str, str], what: str) -> InputError:
    close = difflib.get_close_matches(token.lower(), list(pool), n=3, cutoff=0.75)
    hint = f" (did you mean {', '.join(repr(pool[c]) for c in close)}?)" if close else ""
    return InputError(f"unknown {what} {token!r}{hint}", field="license", fix=_FIX)


class _Parser:
    def __init__(self, text: str, spdx: SpdxList) -> None:
        self.tokens = _TOKEN.findall(text)
        self.pos = 0
        self.spdx = spdx
        self.deprecated: list[str] = []

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise InputError("the licence expression ends too early", field="license", fix=_FIX)
        self.pos += 1
        return tok

    def expression(self) -> str:
        left = self.term()
        while (tok := self.peek()) is not None and tok.upper() == "OR":
            self.take()
            left = f"{left} OR {self.term()}"
        return left

    def term(self) -> str:
        left = self.factor()
        while (tok := self.peek()) is not None and tok.upper() == "AND":
            self.take()
            left = f"{left} AND {self.factor()}"
        return left

    def factor(self) -> str:
        tok = self.take()
        if tok == "(":
            inner = self.expression()
            if self.take() != ")":
                raise InputError(
                    "unbalanced parentheses in the licence expression", field="license", fix=_FIX
                )
            out = f"({inner})"
        elif tok in {")"} or tok.upper() in {"AND", "OR", "WITH"}:
            raise InputError(
                f"unexpected {tok!r} in the licence expression", field="license", fix=_FIX
            )
        else:
            out = self.license_id(tok)
        nxt = self.peek()
        if nxt is not None and nxt.upper() == "WITH":
            self.take()
            out = f"{out} WITH {self.exception_id(self.take())}"
        return out

    def license_id(self, tok: str) -> str:
        if _REF.fullmatch(tok):
            return tok
        plus = tok.endswith("+")
        base = tok[:-1] if plus else tok
        canonical = self.spdx.licenses.get(base.lower())
        if canonical is None:
            if base.lower() in self.spdx.exceptions:
                raise InputError(
                    f"{tok!r} is a licence exception; it goes after WITH", field="license", fix=_FIX
                )
            raise _unknown(tok, self.spdx.licenses, "licence identifier")
        if canonical in self.spdx.deprecated:
            self.deprecated.append(canonical)
        return canonical + ("+" if plus else "")

    def exception_id(self, tok: str) -> str:
        if _ADDITION_REF.fullmatch(tok):
            return tok
        canonical = self.spdx.exceptions.get(tok.lower())
        if canonical is None:
            raise _unknown(tok, self.spdx.exceptions, "licence exception")
        return canonical


def check_license(expression: str) -> LicenseCheck:
    """Validate and normalise an SPDX licence expression; raises :class:`InputError`."""
    text = expression.strip()
    if not text:
        raise InputError("the licence is empty", field="license", fix=_FIX)
    parser = _Parser(text, spdx_list())
    result = parser.expression()
    if parser.peek() is not None:
        raise InputError(
            f"unexpected {parser.peek()!r} in the licence expression", field="license", fix=_FIX
        )
    return LicenseCheck(result, tuple(parser.deprecated))
