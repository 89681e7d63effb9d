"""Operators fail closed: null never passes, and "nonempty" rejects blanks and placeholders."""

from __future__ import annotations

from typing import Any

import pytest

from finetrail.governance.policy.operators import OPERATORS, compare


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        " ",
        "\t\n",
        "NOASSERTION",
        "noassertion",
        "TODO",
        " n/a ",
        "N/A",
        "tbd",
        "-",
        "unknown",
        "None",
        "null",
        "?",
        "...",
        [],
        {},
        ["", " "],
        ["TODO"],
        {"a": None},
    ],
)
def test_nonempty_rejects_blank_and_placeholder_values(value: Any) -> None:
    assert compare("nonempty", value) == (False, None)


@pytest.mark.parametrize(
    "value",
    ["answer customer-support questions", "Example Org", 0, False, ["x"], {"k": 1}, "N/A x"],
)
def test_nonempty_accepts_values_that_say_something(value: Any) -> None:
    assert compare("nonempty", value) == (True, None)


@pytest.mark.parametrize("op", [o for o in OPERATORS if o not in ("present", "nonempty")])
def test_null_is_never_a_pass(op: str) -> None:
    bound: Any = ["gdp"] if op in ("in", "not_in") else 1
    ok, _ = compare(op, None, bound)
    assert ok is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, False), (1.0, False), (0.5, True), (1e-9, True), (-0.1, False), (None, False)],
)
def test_strictly_between_excludes_both_ends(value: object, expected: bool) -> None:
    from finetrail.governance.policy.operators import compare

    assert compare("strictly_between", value, [0.0, 1.0])[0] is expected


@pytest.mark.parametrize(
    "threshold", [[0.0], [1.0, 0.0], [0.0, 0.0], [0.0, "1"], [True, 2], [0.0, float("inf")], 0.5]
)
def test_strictly_between_needs_two_ordered_finite_numbers(threshold: object) -> None:
    from pydantic import ValidationError

    from finetrail.governance.policy.rules import Condition

    with pytest.raises(ValidationError, match="strictly_between"):
        Condition.model_validate({"path": "x", "op": "strictly_between", "threshold": threshold})
