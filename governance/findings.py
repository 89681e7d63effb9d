"""Findings: what a check found, with where and why. Checks collect them all, then report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str  # e.g. "modified", "missing", "extra", "reordered", "truncated", "chain"
    location: str  # a workspace-relative path, or "ledger.jsonl:LINE"
    message: str

    def render(self) -> str:
        return f"{self.severity.upper():7} {self.code:12} {self.location}: {self.message}"
