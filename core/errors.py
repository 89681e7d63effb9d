"""The one error base of finetrail.

Every error the library raises on purpose derives from :class:`FinetrailError` and can explain
itself with :meth:`FinetrailError.diagnostics` (what went wrong, why, how to fix it). The CLI
catches it once, at the edge, and maps it to an exit code; the library never calls ``sys.exit``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


class FinetrailError(Exception):
    """Base of all deliberate finetrail errors.

    ``what`` says what went wrong, ``why`` the cause, ``fix`` what the user can do. ``path`` and
    ``field`` name the file and the field when the error is about input.
    """

    exit_code: int = EXIT_BAD_INPUT

    def __init__(
        self,
        what: str,
        *,
        why: str | None = None,
        fix: str | None = None,
        path: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.fix = fix
        self.path = str(path) if path is not None else None
        self.field = field

    def diagnostics(self) -> str:
        where = ""
        if self.path and self.field:
            where = f"{self.path}: field '{self.field}': "
        elif self.path:
            where = f"{self.path}: "
        elif self.field:
            where = f"field '{self.field}': "
        lines = [f"error: {where}{self.what}"]
        if self.why:
            lines.append(f"  why: {self.why}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.diagnostics()


class InputError(FinetrailError):
    """Bad input: a missing, malformed or invalid file, config or argument (exit 2)."""


class ConfigError(InputError):
    """A configuration file or option is invalid (exit 2)."""


class WorkspaceBusy(FinetrailError):
    """Another command holds the workspace's lock for longer than the wait allows (exit 2)."""


class IntegrityError(FinetrailError):
    """Evidence does not hold together: tampered, stale, missing (exit 1)."""

    exit_code = 1


class CheckFailed(FinetrailError):
    """A check or gate ran and failed (exit 1)."""

    exit_code = 1


class DPGuardError(FinetrailError):
    """A differential-privacy guard refused a configuration or a run (exit 2)."""


class DependencyMissing(FinetrailError):
    """An optional dependency or system library is missing (exit 2)."""
