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


def compare(op: str, value: Any, bound: Any = None) -> tuple[bool | None, str | None]:
    """Apply ``op``: (True/False, None), or (None, why) when the values cannot be compared."""
    if op == "present":
        return value is not None, None
    if op == "nonempty":
        if value is None:
            return False, None
        if isinstance(value, str | list | dict):
            return len(value) > 0, None
        return True, None
    if op in ("in", "not_in"):
        found = any(_same(value, b) for b in bound)
        return (found if op == "in" else not found), None
    if op in ("==", "!="):
        eq = _same(value, bound)
        return (eq if op == "==" else not eq), None
    if value is None:
        return False, None  # null fails closed (e.g. epsilon is null when DP is off)
    if not _is_number(value) or not math.isfinite(value):
        return None, f"expected a finite number, found {_fmt(value)}"
    if not _is_number(bound) or not math.isfinite(bound):
        return None, f"the reference value {_fmt(bound)} is not a finite number"
    result = {
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
    }[op]
    return result, None
