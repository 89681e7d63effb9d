"""The one table of PII patterns: pattern data plus one validate hook each (Presidio's shape).

Three users read this table, so that what the extraction probe counts is what the report masks
and what the scanner finds:

- the Presidio scan engine (:mod:`.engine`) registers each entry as a ``PatternRecognizer``
  whose ``validate_result`` is the entry's hook (it replaces Presidio's own credit-card, SSN,
  IBAN and IP recognisers, which miss 2-series Mastercard numbers, UnionPay and IPv6);
- the extraction probe (:class:`~finetrail.governance.probes.extraction_scanner.RegexPiiScanner`);
- report re-masking (:func:`finetrail.reports.redact.mask_text`).

Standard library only (``re``, ``ipaddress``): the report layer imports it without presidio.
Validators:

- payment cards: 12-19 digits, a known issuer range (IIN) and the Luhn check;
- US SSN: area not 000, 666 or 9xx, group not 00, serial not 0000; undelimited nine digits only
  after a label ("SSN", "social security number");
- IBAN: the ISO 13616 mod-97 check;
- IP addresses: parsed by :mod:`ipaddress` (v4 and v6).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from finetrail.governance.pii.addresses import CITY_STATE_ZIP, FLAGS, MILITARY, STREET, UNIT

Validator = Callable[[str], bool]


@dataclass(frozen=True)
class PiiPattern:
    """One pattern: what it finds, the regular expression, its score and its validate hook."""

    entity: str
    name: str
    regex: str
    score: float
    validate: Validator | None = None
    flags: int = 0

    @property
    def compiled(self) -> re.Pattern[str]:
        return _compile(self.regex, self.flags)


_CACHE: dict[tuple[str, int], re.Pattern[str]] = {}


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    key = (pattern, flags)
    if key not in _CACHE:
        _CACHE[key] = re.compile(pattern, flags)
    return _CACHE[key]


# -- validators ----------------------------------------------------------------------------------
def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Issuer identification number ranges (first digits) and the lengths each network issues.
# (low, high, lengths): a card number's prefix of len(str(low)) digits lies in [low, high].
CARD_RANGES: tuple[tuple[int, int, tuple[int, ...]], ...] = (
    (4, 4, (13, 16, 19)),  # Visa
    (1800, 1800, (15,)),  # JCB (15-digit ranges)
    (2131, 2131, (15,)),
    (51, 55, (16,)),  # Mastercard
    (2221, 2720, (16,)),  # Mastercard 2-series
    (34, 34, (15,)),  # American Express
    (37, 37, (15,)),
    (6011, 6011, (16, 17, 18, 19)),  # Discover
    (644, 649, (16, 17, 18, 19)),
    (65, 65, (16, 17, 18, 19)),
    (3528, 3589, (16, 17, 18, 19)),  # JCB
    (300, 305, (14, 15, 16, 17, 18, 19)),  # Diners Club
    (36, 36, (14, 15, 16, 17, 18, 19)),
    (38, 39, (14, 15, 16, 17, 18, 19)),
    (3095, 3095, (14, 15, 16, 17, 18, 19)),
    (62, 62, (16, 17, 18, 19)),  # UnionPay
    (2200, 2204, (16, 17, 18, 19)),  # Mir
    (50, 50, (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    (56, 69, (12, 13, 14, 15, 16, 17, 18, 19)),
    (60, 60, (16,)),  # RuPay
    (81, 82, (16,)),
)


def card_network_ok(digits: str) -> bool:
    for low, high, lengths in CARD_RANGES:
        width = len(str(low))
        if len(digits) in lengths and low <= int(digits[:width]) <= high:
            return True
    return False


def card_ok(text: str) -> bool:
    digits = digits_of(text)
    return 12 <= len(digits) <= 19 and card_network_ok(digits) and luhn_ok(digits)


def ssn_ok(text: str) -> bool:
    d = digits_of(text)
    if len(d) != 9:
        return False
    area, group, serial = d[:3], d[3:5], d[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def iban_ok(text: str) -> bool:
    s = re.sub(r"\s", "", text).upper()
    if not (15 <= len(s) <= 34) or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in moved))
    except ValueError:
        return False
    return number % 97 == 1


def ip_ok(text: str) -> bool:
    candidate = text.split("%", 1)[0]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def phone_ok(text: str) -> bool:
    return 7 <= len(digits_of(text)) <= 15


# -- the table -----------------------------------------------------------------------------------
_SSN_LABELS = (
    "SSN",
    "SSN:",
    "SSN#",
    "SSN #",
    "SSN is",
    "SS#",
    "social security number",
    "social security number:",
    "social security no.",
    "social security #",
)
_SSN_LOOKBEHIND = "(?:" + "|".join(rf"(?<={re.escape(w)} )" for w in _SSN_LABELS) + ")"

PATTERNS: tuple[PiiPattern, ...] = (
    PiiPattern(
        "EMAIL_ADDRESS",
        "e-mail address",
        r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        0.85,
    ),
    PiiPattern(
        "STREET_ADDRESS",
        "US street address, city, state, ZIP",
        STREET + UNIT + CITY_STATE_ZIP,
        0.85,
        flags=FLAGS,
    ),
    PiiPattern("STREET_ADDRESS", "US military address", MILITARY, 0.85, flags=FLAGS),
    PiiPattern("STREET_ADDRESS", "US street address", STREET + UNIT, 0.5, flags=FLAGS),
    PiiPattern(
        "STREET_ADDRESS",  # a house number and capitalised words cut short by a snippet's "…"
        "US street address cut short",
        r"(?<![\w.,/-])\d{1,6}(?:\s+[A-Z][A-Za-z'\-]*){1,4}\s*(?=\u2026)",
        0.5,
        flags=FLAGS,
    ),
    PiiPattern(
        "IBAN_CODE",
        "IBAN (mod-97)",
        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        0.85,
        iban_ok,
    ),
    PiiPattern(
        "CREDIT_CARD",
        "payment card number (IIN range, Luhn)",
        r"(?<![\w-])(?:\d[ -]?){11,18}\d(?![\w-])",
        0.85,
        card_ok,
    ),
    PiiPattern(
        "US_SSN",
        "US SSN (delimited)",
        r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])",
        0.6,
        ssn_ok,
    ),
    PiiPattern(
        "US_SSN",
        "US SSN (nine digits after a label)",
        rf"(?i:{_SSN_LOOKBEHIND})\d{{9}}(?!\d)",
        0.6,
        ssn_ok,
    ),
    PiiPattern(
        "PHONE_NUMBER",
        "phone number (international, +country code)",
        r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,5}\)?){2,5}(?![\w-])",
        0.5,
        phone_ok,
    ),
    PiiPattern(
        "PHONE_NUMBER",
        "phone number (North American)",
        r"(?<![\w.-])(?:1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}"
        r"(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w-])",
        0.5,
        phone_ok,
    ),
    PiiPattern(
        "IP_ADDRESS",
        "IPv4 address",
        r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.-])",
        0.6,
        ip_ok,
    ),
    PiiPattern(
        "IP_ADDRESS",
        "IPv6 address",
        r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[\w.]+)?(?![\w:])",
        0.6,
        ip_ok,
    ),
)

ENTITIES: tuple[str, ...] = tuple(dict.fromkeys(p.entity for p in PATTERNS))


@dataclass(frozen=True)
class PatternMatch:
    entity: str
    start: int
    end: int
    pattern: str  # the table entry's name

    def value(self, text: str) -> str:
        return text[self.start : self.end]


def find(
    text: str, patterns: Sequence[PiiPattern] = PATTERNS, *, entities: Sequence[str] | None = None
) -> list[PatternMatch]:
    """Every validated match in ``text``; where matches overlap, the earlier table entry wins."""
    taken: list[tuple[int, int]] = []
    out: list[PatternMatch] = []
    for p in patterns:
        if entities is not None and p.entity not in entities:
            continue
        for m in p.compiled.finditer(text):
            s, e = m.span()
            if e <= s or any(s < te and ts < e for ts, te in taken):
                continue
            if p.validate is not None and not p.validate(m.group(0)):
                continue
            taken.append((s, e))
            out.append(PatternMatch(p.entity, s, e, p.name))
    return sorted(out, key=lambda m: m.start)


def mask_text(text: str, placeholder: Callable[[str], str] = lambda e: f"<{e}>") -> str:
    """``text`` with every match replaced by ``placeholder(entity)`` (``<ENTITY>`` by default)."""
    out = text
    for m in sorted(find(text), key=lambda m: m.start, reverse=True):
        out = out[: m.start] + placeholder(m.entity) + out[m.end :]
    return out
