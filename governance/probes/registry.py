"""The literal registry of probes: one small class per file, listed here in run order."""

from __future__ import annotations

from typing import Protocol

from finetrail.errors import InputError
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.probes.context import ProbeContext
from finetrail.governance.probes.dp_audit import DPAuditProbe
from finetrail.governance.probes.exposure import ExposureProbe
from finetrail.governance.probes.extraction import ExtractionProbe
from finetrail.governance.probes.membership import MembershipProbe


class Probe(Protocol):
    name: str  # the evidence kind suffix: probes.<name>, evidence/probes/<name>.json
    cli_name: str  # what ``finetrail probe --only`` accepts

    def missing(self, ctx: ProbeContext) -> str | None:
        """Why the probe cannot run on this context (None when it can)."""

    def run(self, ctx: ProbeContext) -> EvidenceRecord: ...


PROBES: tuple[Probe, ...] = (
    ExposureProbe(),
    ExtractionProbe(),
    MembershipProbe(),
    DPAuditProbe(),
)


def select_probes(only: str | list[str] | tuple[str, ...] | None) -> list[Probe]:
    """The probes named (CLI names, comma-separated or a list), in registry order; all if None."""
    if only is None:
        return list(PROBES)
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
    known = {p.cli_name: p for p in PROBES} | {p.name: p for p in PROBES}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise InputError(
            f"unknown probe(s): {', '.join(unknown) or '(none given)'}",
            field="--only",
            fix=f"choose from {','.join(p.cli_name for p in PROBES)}",
        )
    chosen = {known[n].name for n in names}
    return [p for p in PROBES if p.name in chosen]
