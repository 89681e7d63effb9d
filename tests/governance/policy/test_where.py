"""A rule's 'where' filters the records of a list kind, or the items of the path's first [*]
inside one record; `policy lint` checks the condition's path against the record class."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetrail.errors import ConfigError
from finetrail.governance.policy.load import load_policy

HEAD = """id: p
version: "1"
title: where test
written_against: {nist_ai_rmf: "AI RMF 1.0"}
rules:
  - id: r
    title: the rule under test
    severity: error
    controls: {nist_ai_rmf: ["MEASURE 2.11"]}
    rationale: a rule whose where clause is under test.
"""


def policy(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(HEAD + "\n".join("    " + line for line in body.strip().splitlines()) + "\n")
    return p


@pytest.mark.parametrize(
    "body",
    [
        # items of a list inside one record
        "path: bias.groups[*].selection_rate.value\nop: '>'\nthreshold: 0\n"
        "where: {path: too_small, op: '==', threshold: false}",
        # records of a list kind (unchanged)
        "path: datasets[*].pii.residual[*]\nop: '=='\nthreshold: 0\n"
        "where: {path: derived_from, op: nonempty}",
    ],
)
def test_where_on_records_or_items_lints(tmp_path: Path, body: str) -> None:
    assert load_policy(policy(tmp_path, body)).policy.rules[0].where is not None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            "path: bias.task.selection_rate\nop: '>'\nthreshold: 0\n"
            "where: {path: too_small, op: '==', threshold: false}",
            "has neither",
        ),
        (
            "path: bias.groups[*].selection_rate.value\nop: '>'\nthreshold: 0\n"
            "where: {path: no_such_field, op: '==', threshold: false}",
            "no field 'no_such_field'",
        ),
    ],
)
def test_a_where_that_cannot_apply_is_refused(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_policy(policy(tmp_path, body))
    assert fragment in str(exc.value) and "where" in str(exc.value)
