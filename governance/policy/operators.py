"""Policy operators: the literal registry :data:`OPERATORS` and :func:`compare`, their one
implementation. Null never satisfies an ordering (it fails closed)."""

from __future__ import annotations

import json
import math
from typing import Any

# op -> (arity, description). Binary operators take exactly one of `threshold` or `ref`.
OPERATORS: dict[str, tuple[int, str]] = {
    "<": (2, "less than"),
    "<=": (2, "at most"),
    ">": (2, "greater than"),
    ">=": (2, "at least"),
    "==": (2, "equal to"),
    "!=": (2, "different from"),
    "in": (2, "one of"),
    "not_in": (2, "none of"),
    "strictly_between": (2, "strictly between"),  # threshold [low, high]: low < value < high
    "present": (1, "present (not null)"),
    "nonempty": (1, "present and not empty"),
}
ORDERING = ("<", "<=", ">", ">=")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return (
        json.dumps(value)
        if isinstance(value, str) or value is None or isinstance(value, bool)
        else str(value)
    )


def fmt(value: Any) -> str:
    """A short display form of an evidence value."""
    return _fmt(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


# Values that fill a field without saying anything: "nonempty" rejects them (case-insensitive,
# surrounding whitespace and punctuation ignored).
PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "noassertion",
        "none",
        "null",
        "nil",
        "n/a",
        "na",
        "n.a.",
        "tbd",
        "tba",
        "todo",
        "fixme",
        "xxx",
        "unknown",
        "unspecified",
        "not set",
        "unset",
        "placeholder",
        "-",
        "--",
        "?",
        "...",
        "\u2026",
        "needs input",
    }
)


def is_nonempty(value: Any) -> bool:
    """Present and saying something: not null, not blank, not a placeholder such as
    ``NOASSERTION`` or ``TODO``; a list or mapping with at least one such item."""
    if value is None:
        return False
    if isinstance(value, str):
        text = " ".join(value.split()).casefold()
        return bool(text) and text not in PLACEHOLDERS and text.strip(" .") not in PLACEHOLDERS
    if isinstance(value, list | tuple):
        return any(is_nonempty(v) for v in value)
    if isinstance(value, dict):
        return any(is_nonempty(v) for v in value.values())
    return True


def compare(op: str, value: Any, bound: Any = None) -> tuple[bool | None, str | None]:
    """Apply ``op``: (True/False, None), or (None, why) when the values cannot be compared."""
    if op == "present":
        return value is not None, None
    if op == "nonempty":
        return is_nonempty(value), None
    if value is None:
        return False, None  # null is never a pass, whatever the operator (fail closed)
    if op in ("in", "not_in"):
        found = any(_same(value, b) for b in bound)
        return (found if op == "in" else not found), None
    if op in ("==", "!="):
        eq = _same(value, bound)
        return (eq if op == "==" else not eq), None
    if not _is_number(value) or not math.isfinite(value):
        return None, f"expected a finite number, found {_fmt(value)}"
    if op == "strictly_between":
        low, high = bound
        return low < value < high, None
    if not _is_number(bound) or not math.isfinite(bound):
        return None, f"the reference value {_fmt(bound)} is not a finite number"
    result = {
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
    }[op]
    return result, None
