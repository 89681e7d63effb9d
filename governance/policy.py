"""Policy packs: the rules a release gate applies, as frozen pydantic models.

A policy names the regulatory texts it was written against, the evidence it requires, its rules,
the approvals it requires (four-eyes) and its waivers. A rule reads one evidence value by path
(:mod:`finetrail.governance.evidence.paths`), compares it with an operator against a threshold
or another evidence value (``ref``), and names the controls it serves and why.

Operators are a literal registry (:data:`OPERATORS`); :func:`compare` is their one implementation.
Loading from YAML with line and column in every error lives in
:mod:`finetrail.governance.policy_load`.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date
from functools import lru_cache
from importlib import resources
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
RESERVED_IDS = ("workspace-integrity", "approvals")
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None
Threshold = Scalar | list[Scalar]
Framework = Literal["eu_ai_act", "nist_ai_rmf", "iso_iec_42001"]
FRAMEWORK_NAMES: dict[str, str] = {
    "eu_ai_act": "EU AI Act",
    "nist_ai_rmf": "NIST AI RMF",
    "iso_iec_42001": "ISO/IEC 42001",
}
_ARTICLE = re.compile(r"^Art\. (\d{1,3}|4a)(\(\d+\))?(\([a-z]+\))*$")


@lru_cache(maxsize=1)
def control_catalogue() -> dict[str, frozenset[str]]:
    """Known control IDs (shipped with the package; copied from shared/reference)."""
    text = resources.files("finetrail.governance").joinpath("data/controls.json").read_text("utf-8")
    data = json.loads(text)
    return {
        "annex_iv": frozenset(data["eu_ai_act_annex_iv"]),
        "nist_ai_rmf": frozenset(data["nist_ai_rmf"]),
        "iso_iec_42001": frozenset(data["iso_iec_42001"]),
    }


def _check_eu(ident: str) -> str | None:
    if ident.startswith("Annex IV "):
        item = ident.removeprefix("Annex IV ")
        if item not in control_catalogue()["annex_iv"]:
            return f"unknown EU AI Act Annex IV item {item!r}"
        return None
    m = _ARTICLE.match(ident)
    if not m:
        return (
            f"unknown EU AI Act control {ident!r}: write 'Art. N(p)(x)' (e.g. 'Art. 10(5)(b)') "
            "or 'Annex IV ITEM' (e.g. 'Annex IV 2(d)')"
        )
    number = m.group(1)
    if number != "4a" and not 1 <= int(number) <= 113:
        return f"the EU AI Act has no Article {number}"
    return None


class Controls(Frozen):
    """The controls a rule serves, by framework (IDs checked against the shipped catalogue)."""

    eu_ai_act: tuple[str, ...] = ()
    nist_ai_rmf: tuple[str, ...] = ()
    iso_iec_42001: tuple[str, ...] = ()

    @field_validator("eu_ai_act")
    @classmethod
    def _eu(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        problems = [p for p in (_check_eu(i) for i in v) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("nist_ai_rmf")
    @classmethod
    def _nist(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [i for i in v if i not in control_catalogue()["nist_ai_rmf"]]
        if unknown:
            raise ValueError(
                f"unknown NIST AI RMF subcategory {', '.join(map(repr, unknown))} "
                "(write e.g. 'MEASURE 2.10')"
            )
        return v

    @field_validator("iso_iec_42001")
    @classmethod
    def _iso(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [i for i in v if i not in control_catalogue()["iso_iec_42001"]]
        if unknown:
            raise ValueError(
                f"unknown ISO/IEC 42001 Annex A control {', '.join(map(repr, unknown))} "
                "(write e.g. 'A.7.4')"
            )
        return v

    @model_validator(mode="after")
    def _some(self) -> Controls:
        if not (self.eu_ai_act or self.nist_ai_rmf or self.iso_iec_42001):
            raise ValueError("name at least one control (eu_ai_act, nist_ai_rmf or iso_iec_42001)")
        return self

    def labels(self) -> list[str]:
        out = [f"EU AI Act {c}" for c in self.eu_ai_act]
        out += [f"NIST AI RMF {c}" for c in self.nist_ai_rmf]
        out += [f"ISO/IEC 42001 {c}" for c in self.iso_iec_42001]
        return out


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


class Rule(Frozen):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=3, max_length=200)
    path: str = Field(min_length=1)
    op: str
    threshold: Threshold = None
    ref: str | None = None
    ref_transform: Literal["value", "reciprocal"] = "value"
    where: Condition | None = None
    severity: Literal["error", "warning"]
    controls: Controls
    rationale: str = Field(min_length=10)

    @field_validator("op")
    @classmethod
    def _known_op(cls, v: str) -> str:
        return _check_op(v)

    @model_validator(mode="after")
    def _operands(self) -> Rule:
        _check_operands(self.op, self.threshold, self.ref is not None)
        if self.ref_transform != "value" and self.ref is None:
            raise ValueError("ref_transform applies only with a ref")
        if self.id in RESERVED_IDS:
            raise ValueError(f"rule id {self.id!r} is reserved for the gate's own checks")
        return self

    def expectation(self, ref_values: list[Any] | None = None) -> str:
        if OPERATORS[self.op][0] == 1:
            return self.op
        if self.ref is not None:
            target = f"reciprocal({self.ref})" if self.ref_transform == "reciprocal" else self.ref
            shown = ""
            if ref_values:
                shown = " (" + ", ".join(_fmt(v) for v in ref_values[:5]) + ")"
            return f"{self.op} {target}{shown}"
        return f"{self.op} {_fmt(self.threshold)}"


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


# -- the operators ---------------------------------------------------------------------------------
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
