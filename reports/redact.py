"""Re-mask anything that looks like PII before it reaches a rendered document.

Evidence is supposed to hold masked examples only (the data layer replaces PII with placeholders
such as ``<EMAIL_ADDRESS>``). Reports do not trust that: every free-text string read from a
workspace passes through :func:`mask_text` (pattern recognisers, no NLP model, nothing heavy), and
structured values through :func:`scrub`. Digests and timestamps are left alone.

Limits, stated plainly: these are patterns. They catch e-mail addresses, US street addresses (the
data layer's pattern, also when a snippet cuts one short: "3406 Riley L…"), phone numbers, US
social security numbers, payment-card numbers (Luhn-checked), IPv4 addresses and IBANs. A person's
name in free text is only caught by the data layer's scanner, before evidence is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from finetrail.governance.pii.addresses import STREET_ADDRESS_RE

_DIGEST = re.compile(r"^[0-9a-f]{32,128}$")
_ISO_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?)?$"
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "<CREDIT_CARD>" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


# (entity, pattern, replacement); order matters: e-mail before phone, card before phone.
_PATTERNS: tuple[tuple[str, re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (
        "EMAIL_ADDRESS",
        re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
        "<EMAIL_ADDRESS>",
    ),
    ("STREET_ADDRESS", STREET_ADDRESS_RE, "<STREET_ADDRESS>"),
    (
        "STREET_ADDRESS",  # a house number and capitalised words cut short by a snippet's "…"
        re.compile(r"(?<![\w.,/-])\d{1,6}(?:\s+[A-Z][A-Za-z'\-]*){1,4}\s*\u2026"),
        "<STREET_ADDRESS>\u2026",
    ),
    (
        "IBAN_CODE",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        "<IBAN_CODE>",
    ),
    ("CREDIT_CARD", re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])"), _card),
    ("US_SSN", re.compile(r"(?<![\w-])\d{3}[- ]\d{2}[- ]\d{4}(?![\w-])"), "<US_SSN>"),
    (
        "PHONE_NUMBER",
        re.compile(
            r"(?<![\w.-])(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}"
            r"(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w-])"
        ),
        "<PHONE_NUMBER>",
    ),
    (
        "IP_ADDRESS",
        re.compile(
            r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])"
        ),
        "<IP_ADDRESS>",
    ),
)

ENTITIES: tuple[str, ...] = tuple(dict.fromkeys(name for name, _, _ in _PATTERNS))


def mask_text(text: str) -> str:
    """Replace every PII-looking span of ``text`` with its ``<ENTITY>`` placeholder."""
    if _DIGEST.match(text) or _ISO_TIME.match(text):
        return text
    for _, pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def scrub(value: Any) -> Any:
    """A copy of a JSON value with every string (keys included) passed through :func:`mask_text`."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value
