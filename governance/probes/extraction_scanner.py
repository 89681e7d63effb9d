"""Finding identifiers in text for the extraction probe, and masking them for storage.

:class:`RegexPiiScanner` recognises the canary formats and the structured identifiers of the
one PII pattern table (:mod:`finetrail.governance.pii.patterns`, shared with the scan engine
and report re-masking). It is what the probe always runs; a
richer scanner (the provenance layer's Presidio analyzer, through :class:`PresidioScanner`) can
be combined with it through the :class:`PiiScanner` protocol. Only masked values ever leave this module in evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from finetrail.governance.pii import patterns
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


class RegexPiiScanner:
    """The canary formats plus the structured identifiers of the one PII pattern table
    (:mod:`finetrail.governance.pii.patterns`, validate hooks included)."""

    name = "regex"

    def __init__(self, formats: Sequence[CanaryFormat] = ()) -> None:
        self._formats: list[tuple[str, re.Pattern[str]]] = []
        seen: set[tuple[str, str]] = set()
        for f in formats:
            if (f.entity, f.regex) not in seen:
                seen.add((f.entity, f.regex))
                self._formats.append((f.entity, re.compile(f.regex)))

    def find(self, text: str) -> list[PiiMatch]:
        taken: list[tuple[int, int]] = []
        out = []
        for entity, pattern in self._formats:  # canaries first: they are what was planted
            for m in pattern.finditer(text):
                s, e = m.span()
                if any(s < te and ts < e for ts, te in taken):
                    continue
                taken.append((s, e))
                out.append(PiiMatch(entity, m.group(0).strip(), s, e))
        for pm in patterns.find(text):
            if any(pm.start < te and ts < pm.end for ts, te in taken):
                continue
            taken.append((pm.start, pm.end))
            out.append(PiiMatch(pm.entity, pm.value(text).strip(), pm.start, pm.end))
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
