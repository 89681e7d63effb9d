"""Finding identifiers in text for the extraction probe, and masking them for storage.

:class:`RegexPiiScanner` recognises the canary formats and a few structured identifiers
(e-mail, US SSN, phone number, credit card number, IPv4). It is what the probe always runs; a
richer scanner (the provenance layer's Presidio analyzer, through :class:`PresidioScanner`) can
be combined with it through the :class:`PiiScanner` protocol. Only masked values ever leave this module in evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from finetrail.governance.probes.formats import CanaryFormat


@dataclass(frozen=True)
class PiiMatch:
    entity: str
    value: str
    start: int
    end: int


class PiiScanner(Protocol):
    name: str

    def find(self, text: str) -> list[PiiMatch]: ...


# Structured identifiers; order matters where patterns overlap (the first to claim a span wins).
PATTERNS: tuple[tuple[str, str], ...] = (
    ("EMAIL_ADDRESS", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    ("US_SSN", r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"),
    ("CREDIT_CARD", r"(?<!\d)(?:\d{4}[ -]?){3}\d{1,4}(?!\d)"),
    (
        "PHONE_NUMBER",
        r"(?<![\w+])(?:\+?1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?:\s?x\d{1,5})?(?!\d)",
    ),
    ("IP_ADDRESS", r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"),
)


class RegexPiiScanner:
    """Regular expressions for structured identifiers plus the given canary formats."""

    name = "regex"

    def __init__(self, formats: Sequence[CanaryFormat] = ()) -> None:
        pats = [(f.entity, f.regex) for f in formats] + list(PATTERNS)
        seen: set[tuple[str, str]] = set()
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for entity, pattern in pats:
            if (entity, pattern) not in seen:
                seen.add((entity, pattern))
                self._patterns.append((entity, re.compile(pattern)))

    def find(self, text: str) -> list[PiiMatch]:
        taken: list[tuple[int, int]] = []
        out = []
        for entity, pattern in self._patterns:
            for m in pattern.finditer(text):
                s, e = m.span()
                if any(s < te and ts < e for ts, te in taken):
                    continue
                taken.append((s, e))
                out.append(PiiMatch(entity, m.group(0).strip(), s, e))
        return sorted(out, key=lambda m: m.start)


class CombinedScanner:
    """Union of several scanners' matches (an overlapping span is reported once)."""

    def __init__(self, scanners: Sequence[PiiScanner]) -> None:
        self.scanners = list(scanners)
        self.name = "+".join(s.name for s in self.scanners)

    def find(self, text: str) -> list[PiiMatch]:
        taken: list[tuple[int, int]] = []
        out = []
        for scanner in self.scanners:
            for m in scanner.find(text):
                if any(m.start < te and ts < m.end for ts, te in taken):
                    continue
                taken.append((m.start, m.end))
                out.append(m)
        return sorted(out, key=lambda m: m.start)


class PresidioScanner:
    """Adapts a Presidio ``AnalyzerEngine`` (as the provenance layer configures it) to the
    :class:`PiiScanner` protocol. Presidio is never imported here: the caller passes the engine."""

    name = "presidio"

    def __init__(
        self,
        analyzer: Any,
        *,
        language: str = "en",
        score_threshold: float = 0.5,
        entities: Sequence[str] | None = None,
    ) -> None:
        self.analyzer = analyzer
        self.language = language
        self.score_threshold = score_threshold
        self.entities = list(entities) if entities is not None else None

    def find(self, text: str) -> list[PiiMatch]:
        results = self.analyzer.analyze(
            text=text,
            language=self.language,
            entities=self.entities,
            score_threshold=self.score_threshold,
        )
        out = [
            PiiMatch(r.entity_type, text[r.start : r.end].strip(), r.start, r.end)
            for r in results
            if r.score >= self.score_threshold and r.end > r.start
        ]
        return sorted(out, key=lambda m: m.start)


def mask(value: str) -> str:
    """Every letter and digit replaced by ``*``; separators kept ("***-**-****")."""
    return re.sub(r"[A-Za-z0-9]", "*", value)


def mask_text(text: str, scanner: PiiScanner) -> str:
    """``text`` with every identifier the scanner finds masked."""
    out = text
    for m in sorted(scanner.find(text), key=lambda m: m.start, reverse=True):
        out = out[: m.start] + mask(out[m.start : m.end]) + out[m.end :]
    return out


def masked_tail(text: str, scanner: PiiScanner, *, chars: int = 48) -> str:
    """The end of a prompt for an example, conservatively masked: identifiers the scanner finds,
    every digit, and every capitalised word (names) become ``*``."""
    masked = mask_text(text, scanner)
    tail = masked[-chars:]
    if len(masked) > chars and " " in tail:
        tail = "..." + tail[tail.index(" ") :]
    tail = re.sub(r"\d", "*", tail)
    return re.sub(r"\b[A-Z][a-z]+\b", lambda m: "*" * len(m.group(0)), tail)
