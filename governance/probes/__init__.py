"""Memorisation and privacy probes: what a fine-tune leaks, and whether its DP claim holds.

- canary planting before training (:func:`plant_file`, :func:`draw_canaries`);
- :class:`ExposureProbe` (Carlini et al. 2019), :class:`ExtractionProbe` (memorised identifiers
  attributed to the fine-tune), :class:`MembershipProbe` (five attacks, AUC and TPR at low FPR),
  :class:`DPAuditProbe` (one-run empirical epsilon lower bound, Steinke et al. 2023);
- :func:`run_probes` on models in memory, :func:`probe_workspace` on a trained workspace.

Light at import: torch, transformers, scipy, scikit-learn and mlflow are imported inside the
functions that use them.
"""

from finetrail.governance.probes.audit_math import (
    epsilon_lower_bound,
    p_value,
    theoretical_ceiling,
)
from finetrail.governance.probes.canaries import (
    Canary,
    CanarySet,
    build_canary_set,
    commit_canaries,
    draw_canaries,
    load_canaries,
    plant_file,
)
from finetrail.governance.probes.context import DPClaim, ProbeConfig, ProbeContext
from finetrail.governance.probes.dp_audit import DPAuditProbe, one_run_audit
from finetrail.governance.probes.exposure import ExposureProbe
from finetrail.governance.probes.extraction import ExtractionProbe
from finetrail.governance.probes.formats import FORMATS, CanaryFormat, format_by_name
from finetrail.governance.probes.membership import MembershipProbe
from finetrail.governance.probes.models import ProbeModels, weights_sha256
from finetrail.governance.probes.registry import PROBES, select_probes
from finetrail.governance.probes.runner import ProbeRun, probe_workspace, run_probes, write_evidence

__all__ = [
    "FORMATS",
    "PROBES",
    "Canary",
    "CanaryFormat",
    "CanarySet",
    "DPAuditProbe",
    "DPClaim",
    "ExposureProbe",
    "ExtractionProbe",
    "MembershipProbe",
    "ProbeConfig",
    "ProbeContext",
    "ProbeModels",
    "ProbeRun",
    "build_canary_set",
    "commit_canaries",
    "draw_canaries",
    "epsilon_lower_bound",
    "format_by_name",
    "load_canaries",
    "one_run_audit",
    "p_value",
    "plant_file",
    "probe_workspace",
    "run_probes",
    "select_probes",
    "theoretical_ceiling",
    "weights_sha256",
    "write_evidence",
]
