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
