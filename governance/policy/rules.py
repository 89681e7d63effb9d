"""Policy packs: the rules a release gate applies, as frozen pydantic models.

A policy names the regulatory texts it was written against, the evidence it requires, its rules,
the approvals it requires (four-eyes) and its waivers. A rule reads one evidence value by path
(:mod:`finetrail.governance.evidence.paths`), compares it with an operator against a threshold
or another evidence value (``ref``), and names the controls it serves and why.

A rule may instead hold ``any_of``: two or more alternatives (each a path, an operator and a
threshold or ref), passing when at least one passes; when none does it fails and lists why each
one failed (for example: the DP claim is tested either by a verified mechanism audit or by a
black-box audit whose ceiling is above the claim).

Operators: :mod:`.operators`; controls and their catalogue: :mod:`.controls`.
Loading from YAML with line and column in every error lives in
:mod:`finetrail.governance.policy.load`.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from finetrail.governance.evidence.base import Frozen
from finetrail.governance.policy.controls import Controls, Framework
from finetrail.governance.policy.operators import OPERATORS, ORDERING, fmt

RESERVED_IDS = ("workspace-integrity", "approvals")
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None
Threshold = Scalar | list[Scalar]


def _check_op(op: str) -> str:
    if op not in OPERATORS:
        raise ValueError(f"unknown operator {op!r}; allowed: {', '.join(OPERATORS)}")
    return op


def _check_operands(op: str, threshold: Any, has_ref: bool, *, allow_ref: bool = True) -> None:
    arity = OPERATORS[op][0]
    has_threshold = threshold is not None
    if arity == 1:
        if has_threshold or has_ref:
            raise ValueError(f"operator {op!r} takes no threshold or ref")
        return
    if has_ref and not allow_ref:
        raise ValueError("a 'where' condition takes a threshold, not a ref")
    if has_threshold == has_ref:
        raise ValueError(f"operator {op!r} needs exactly one of 'threshold' or 'ref'")
    if op in ("in", "not_in"):
        if has_ref or not isinstance(threshold, list) or not threshold:
            raise ValueError(f"operator {op!r} needs a non-empty list as threshold")
    elif op == "strictly_between":
        if (
            has_ref
            or not isinstance(threshold, list)
            or len(threshold) != 2
            or not all(
                isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
                for t in threshold
            )
            or not threshold[0] < threshold[1]
        ):
            raise ValueError(
                f"operator {op!r} needs a threshold [low, high] of two finite numbers, low < high"
            )
    elif isinstance(threshold, list):
        raise ValueError(f"operator {op!r} compares with one value, not a list")
    if (
        op in ORDERING
        and has_threshold
        and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
        )
    ):
        raise ValueError(f"operator {op!r} needs a finite number as threshold, got {threshold!r}")


class Condition(Frozen):
    """A filter on the records of a list kind, by a path relative to each record."""

    path: str = Field(min_length=1)
    op: str
    threshold: Threshold = None

    @field_validator("op")
    @classmethod
    def _known_op(cls, v: str) -> str:
        return _check_op(v)

    @model_validator(mode="after")
    def _operands(self) -> Condition:
        _check_operands(self.op, self.threshold, False, allow_ref=False)
        return self


class Alternative(Frozen):
    """One branch of a rule's ``any_of``: a path compared as a rule compares it."""

    path: str = Field(min_length=1)
    op: str
    threshold: Threshold = None
    ref: str | None = None
    ref_transform: Literal["value", "reciprocal"] = "value"
    where: Condition | None = None

    @field_validator("op")
    @classmethod
    def _known_op(cls, v: str) -> str:
        return _check_op(v)

    @model_validator(mode="after")
    def _operands(self) -> Alternative:
        _check_operands(self.op, self.threshold, self.ref is not None)
        if self.ref_transform != "value" and self.ref is None:
            raise ValueError("ref_transform applies only with a ref")
        return self


class Rule(Frozen):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=3, max_length=200)
    path: str | None = Field(default=None, min_length=1)
    op: str | None = None
    threshold: Threshold = None
    ref: str | None = None
    ref_transform: Literal["value", "reciprocal"] = "value"
    where: Condition | None = None
    any_of: tuple[Alternative, ...] = ()
    severity: Literal["error", "warning"]
    controls: Controls
    rationale: str = Field(min_length=10)

    @field_validator("op")
    @classmethod
    def _known_op(cls, v: str | None) -> str | None:
        return None if v is None else _check_op(v)

    @model_validator(mode="after")
    def _operands(self) -> Rule:
        if self.id in RESERVED_IDS:
            raise ValueError(f"rule id {self.id!r} is reserved for the gate's own checks")
        if self.any_of:
            own = (self.path, self.op, self.threshold, self.ref, self.where)
            if any(v is not None for v in own) or self.ref_transform != "value":
                raise ValueError(
                    "a rule with 'any_of' states its conditions there, not in path/op/threshold/ref"
                )
            if len(self.any_of) < 2:
                raise ValueError("'any_of' needs at least two alternatives (else use path/op)")
            return self
        if self.path is None or self.op is None:
            raise ValueError("a rule needs 'path' and 'op' (or 'any_of')")
        _check_operands(self.op, self.threshold, self.ref is not None)
        if self.ref_transform != "value" and self.ref is None:
            raise ValueError("ref_transform applies only with a ref")
        return self

    def branches(self) -> tuple[Rule, ...]:
        """Each ``any_of`` alternative as a plain rule with this rule's id, severity and controls
        (the rule itself when it has no ``any_of``)."""
        if not self.any_of:
            return (self,)
        return tuple(
            self.model_copy(
                update={**{f: getattr(alt, f) for f in Alternative.model_fields}, "any_of": ()}
            )
            for alt in self.any_of
        )

    def expectation(self, ref_values: list[Any] | None = None) -> str:
        if self.op is None:
            return "any of: " + "; ".join(f"{b.path} {b.expectation()}" for b in self.branches())
        if OPERATORS[self.op][0] == 1:
            return self.op
        if self.ref is not None:
            target = f"reciprocal({self.ref})" if self.ref_transform == "reciprocal" else self.ref
            shown = ""
            if ref_values:
                shown = " (" + ", ".join(fmt(v) for v in ref_values[:5]) + ")"
            return f"{self.op} {target}{shown}"
        return f"{self.op} {fmt(self.threshold)}"


class Approvals(Frozen):
    """Four-eyes: how many current, signed approvals, by whom."""

    count: int = Field(ge=1, le=20)
    roles: tuple[str, ...] = ()  # every role listed must be covered by at least one approval
    # One person counts once, whatever roles they hold; a second approval by the same person is
    # rejected at signing and by verify. Stated in the policy so that readers see the rule.
    distinct_people: Literal[True] = True
    author_may_approve: bool = False
    controls: Controls
    rationale: str = Field(min_length=10)


class Waiver(Frozen):
    rule: str = Field(pattern=ID_PATTERN)
    justification: str = Field(min_length=10)
    approver: str = Field(min_length=1)
    expires: date
    granted: date | None = None

    @model_validator(mode="after")
    def _order(self) -> Waiver:
        if self.granted and self.granted > self.expires:
            raise ValueError("a waiver cannot expire before it was granted")
        return self


class Policy(Frozen):
    id: str = Field(pattern=ID_PATTERN)
    version: str = Field(min_length=1, max_length=40)
    title: str = Field(min_length=3)
    description: str = ""
    written_against: dict[Framework, str] = Field(min_length=1)
    required_evidence: tuple[str, ...] = ()
    approvals: Approvals | None = None
    waivers: tuple[Waiver, ...] = ()
    rules: tuple[Rule, ...] = Field(min_length=1)
