"""The one clock. ``FINETRAIL_FIXED_TIME`` (ISO 8601) or ``SOURCE_DATE_EPOCH`` pins it for
reproducible builds and tests; otherwise it is the current UTC time."""

from __future__ import annotations

import os
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
