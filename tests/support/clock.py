"""Setting the release gate's clock in a test (the seam no environment variable reaches)."""

from __future__ import annotations

from datetime import datetime

import pytest

from finetrail.governance import clock


def set_release_clock(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """Make the gate's waiver clock read ``when`` (ISO 8601) for the rest of the test."""
    value = datetime.fromisoformat(when)
    monkeypatch.setattr(clock, "RELEASE_CLOCK", lambda: value)
