"""The evidence record base: frozen, strict, versioned, canonically serialised, content-addressed."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finetrail._version import __version__
from finetrail.errors import InputError
from finetrail.governance.io import canonical_json, read_json_strict, sha256_bytes


class Frozen(BaseModel):
    """A frozen, strict model for nested parts of records."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class EvidenceRecord(Frozen):
    """Base of every evidence record.

    Subclasses set ``record_type`` as a ``Literal`` default and ``SCHEMA_VERSION``. Serialised as
    canonical JSON; the record's address is the SHA-256 of those bytes (:meth:`digest`).
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    record_type: str
    schema_version: int = Field(default=1, ge=1)
    finetrail_version: str = __version__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

    def model_post_init(self, __context: Any) -> None:
        if self.schema_version > type(self).SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is newer than this finetrail "
                f"understands ({type(self).SCHEMA_VERSION}); upgrade finetrail"
            )

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_json_dict())

    def content_digest(self) -> str:
        return sha256_bytes(self.canonical_bytes())

    @classmethod
    def parse(cls, data: Any, *, source: str | None = None) -> Self:
        """Validate ``data``; errors become :class:`InputError` naming the source and field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise validation_error_to_input_error(exc, source=source) from exc

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Self:
        return cls.parse(read_json_strict(path), source=str(path))


def validation_error_to_input_error(
    exc: ValidationError, *, source: str | None, what: str = "invalid record"
) -> InputError:
    """Turn a pydantic ValidationError into one InputError listing every bad field."""
    problems = []
    first_field = None
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        first_field = first_field or loc
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = err["msg"]
        problems.append(f"{loc}: {msg}")
    return InputError(
        f"{what}: " + "; ".join(problems),
        path=source,
        field=first_field,
        fix="correct the named field(s); unknown fields are rejected",
    )
