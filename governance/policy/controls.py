"""Controls: the regulatory items a rule serves, checked against the shipped catalogue."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import field_validator, model_validator

from finetrail.governance.evidence.base import Frozen

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
