"""Re-mask anything that looks like PII before it reaches a rendered document.

Evidence is supposed to hold masked examples only (the data layer replaces PII with placeholders
such as ``<EMAIL_ADDRESS>``). Reports do not trust that: every free-text string read from a
workspace passes through :func:`mask_text` (pattern recognisers, no NLP model, nothing heavy), and
structured values through :func:`scrub`. Digests and timestamps are left alone.

The patterns are the one table of :mod:`finetrail.governance.pii.patterns`, the same the scanner
and the extraction probe use. Limits, stated plainly: these are patterns. They catch e-mail
addresses, US street addresses (also when a snippet cuts one short: "3406 Riley L…"), phone
numbers, US social security numbers, payment-card numbers (issuer range and Luhn), IPv4 and IPv6
addresses and IBANs (mod-97). A person's
name in free text is only caught by the data layer's scanner, before evidence is written.
"""

from __future__ import annotations

import re
from typing import Any

from finetrail.governance.pii import patterns
from finetrail.governance.pii.patterns import ENTITIES as PII_ENTITIES

_DIGEST = re.compile(r"^[0-9a-f]{32,128}$")
_ISO_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?)?$"
)


ENTITIES: tuple[str, ...] = PII_ENTITIES


def mask_text(text: str) -> str:
    """Replace every PII-looking span of ``text`` with its ``<ENTITY>`` placeholder."""
    if _DIGEST.match(text) or _ISO_TIME.match(text):
        return text
    return patterns.mask_text(text)


def scrub(value: Any) -> Any:
    """A copy of a JSON value with every string (keys included) passed through :func:`mask_text`."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value
