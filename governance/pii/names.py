"""A PERSON recogniser for scans without a spaCy model: a deny-list built from Faker's name data.

Presidio finds PERSON with NER (spaCy), which finetrail never downloads. Without a model this
recogniser looks for *pairs* in the text: a known first name followed by a known last name
("Maria Lopez", "John Q. Smith"), or a title followed by a known last name ("Dr. Okafor").
The lists are the first names, last names and titles of the Faker locales configured.

What it cannot do (and the scan evidence says so): single names, names outside the lists,
names in lower or upper case; and a capitalised word pair that happens to be a name pair is
reported as one. Imports presidio: load it only in code that scans.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import regex
from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult

from finetrail.errors import ConfigError
from finetrail.governance.pii.config import DEFAULT_LOCALES

_FIRST = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary")
_LAST = ("last_names", "last_names_male", "last_names_female", "last_names_nonbinary")
_TITLES = ("prefixes", "prefixes_male", "prefixes_female", "prefixes_nonbinary")

# A name token: letters with inner apostrophes or hyphens. A match starts with an uppercase
# letter (every listed name does), tokens are separated by spaces or tabs only.
_TOKEN = regex.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_UPPER_START = regex.compile(r"\p{Lu}")
_GAP = regex.compile(r"[ \t]+")
_TITLE_GAP = regex.compile(r"\.?[ \t]+")
_INITIAL_GAP = regex.compile(r"\.[ \t]+")
# Necessary for any match (checked by the pre-filter): an uppercase-initial run of non-space
# characters, spaces or tabs, and another uppercase letter.
PREFILTER = r"\p{Lu}\S*[ \t]+\p{Lu}"

SCORE_FULL_NAME = 0.85
SCORE_TITLE_NAME = 0.7


@dataclass(frozen=True)
class NameLists:
    locales: tuple[str, ...]
    first: frozenset[str]
    last: frozenset[str]
    titles: frozenset[str]

    def describe(self) -> dict[str, Any]:
        return {
            "source": "Faker person providers",
            "locales": list(self.locales),
            "first_names": len(self.first),
            "last_names": len(self.last),
            "titles": sorted(self.titles),
        }


def _names(provider: Any, attrs: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for attr in attrs:
        values = getattr(provider, attr, None)
        if values:
            out.update(str(v) for v in values)
    return out


def load_name_lists(locales: tuple[str, ...] = DEFAULT_LOCALES) -> NameLists:
    """Build the lists from Faker's locale data (no network, no files of ours)."""
    first: set[str] = set()
    last: set[str] = set()
    titles: set[str] = set()
    missing = []
    for loc in locales:
        try:
            provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        except ModuleNotFoundError:
            missing.append(loc)
            continue
        first |= _names(provider, _FIRST)
        last |= _names(provider, _LAST)
        titles |= {t.rstrip(".") for t in _names(provider, _TITLES)}

    if missing:
        raise ConfigError(
            f"unknown Faker locale(s) for the name list: {', '.join(missing)}",
            field="name_locales",
            fix="use locales Faker ships, e.g. en_US, de_DE, fr_FR",
        )

    def keep(name: str) -> bool:
        return (
            len(name) >= 2 and bool(_UPPER_START.match(name)) and _TOKEN.fullmatch(name) is not None
        )

    return NameLists(
        locales=tuple(locales),
        first=frozenset(filter(keep, first)),
        last=frozenset(filter(keep, last)),
        titles=frozenset(filter(keep, titles)),
    )


class NameListRecognizer(LocalRecognizer):
    """PERSON from (first name, last name) and (title, last name) pairs of known names."""

    ENTITY = "PERSON"
    NAME = "NameListRecognizer"

    def __init__(self, lists: NameLists, supported_language: str = "en") -> None:
        self.lists = lists
        super().__init__(
            supported_entities=[self.ENTITY],
            name=self.NAME,
            supported_language=supported_language,
        )

    def load(self) -> None:  # the lists are passed in
        return None

    def _last_name(self, token: str) -> bool:
        if token in self.lists.last:
            return True
        parts = token.split("-")
        return len(parts) > 1 and all(p in self.lists.last for p in parts)

    def _result(self, start: int, end: int, score: float, why: str) -> Any:
        explanation = AnalysisExplanation(
            recognizer=self.NAME, original_score=score, textual_explanation=why
        )
        return RecognizerResult(
            entity_type=self.ENTITY,
            start=start,
            end=end,
            score=score,
            analysis_explanation=explanation,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.NAME,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        if entities and self.ENTITY not in entities:
            return []
        tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
        results = []
        i, n = 0, len(tokens)
        while i < n - 1:
            s0, e0, t0 = tokens[i]
            s1, e1, t1 = tokens[i + 1]
            if t0 in self.lists.first:
                j = i + 1
                # an optional middle initial: "John Q. Smith"
                if (
                    len(t1) == 1
                    and _UPPER_START.match(t1)
                    and j + 1 < n
                    and _GAP.fullmatch(text, e0, s1)
                    and _INITIAL_GAP.fullmatch(text, e1, tokens[j + 1][0])
                ):
                    j += 1
                    gap_ok = True
                else:
                    gap_ok = _GAP.fullmatch(text, e0, s1) is not None
                if gap_ok and self._last_name(tokens[j][2]):
                    results.append(
                        self._result(s0, tokens[j][1], SCORE_FULL_NAME, "known first and last name")
                    )
                    i = j + 1
                    continue
            if (
                t0 in self.lists.titles
                and _TITLE_GAP.fullmatch(text, e0, s1)
                and self._last_name(t1)
            ):
                results.append(self._result(s1, e1, SCORE_TITLE_NAME, "title and known last name"))
                i += 2
                continue
            i += 1
        return results
