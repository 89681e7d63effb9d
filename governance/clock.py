"""The clocks.

:func:`now` stamps records: ``FINETRAIL_FIXED_TIME`` (ISO 8601) or ``SOURCE_DATE_EPOCH`` pins it
for reproducible builds and tests; otherwise it is the current UTC time.

:func:`release_now` decides what a release gate decides with time (waiver expiry). It is the real
clock: no environment variable of the job being judged can move it (a waiver that expired must
not become valid again because the caller set ``SOURCE_DATE_EPOCH``). Tests replace it through the
module attribute :data:`RELEASE_CLOCK` (a seam no environment variable reaches).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime


def now() -> datetime:
    fixed = os.environ.get("FINETRAIL_FIXED_TIME")
    if fixed:
        value = datetime.fromisoformat(fixed)
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    return datetime.now(UTC).replace(microsecond=0)


def _system_time() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# The clock of release decisions; replaced only by tests (``monkeypatch.setattr``).
RELEASE_CLOCK: Callable[[], datetime] = _system_time


def release_now() -> datetime:
    """The real time for release decisions (waiver expiry); never read from the environment."""
    return RELEASE_CLOCK()


def pinned_by_environment() -> str | None:
    """Which environment variable pins :func:`now`, if any (recorded in a gate decision)."""
    for name in ("FINETRAIL_FIXED_TIME", "SOURCE_DATE_EPOCH"):
        if os.environ.get(name):
            return name
    return None
