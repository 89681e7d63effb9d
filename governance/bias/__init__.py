"""Bias audit: group metrics with fairlearn, bootstrap intervals, counterfactual probes, and the
fine-tune's own effect (fine-tuned minus base, paired).

Light to import: numpy only. fairlearn, scikit-learn, torch and transformers are imported inside
the functions that need them. The record it produces is
:class:`finetrail.governance.evidence.bias.BiasAuditEvidence` (``evidence/bias.json``).
"""

from finetrail.governance.bias._audit import BiasAuditSettings, audit_bias, make_settings
from finetrail.governance.bias._counterfactual import ProbeSet, load_probes
from finetrail.governance.bias._data import load_eval, load_predictions
from finetrail.governance.bias._scoring import Scorer, label_probabilities, lm_scorer, predict
from finetrail.governance.bias._workspace import audit_workspace_bias

__all__ = [
    "BiasAuditSettings",
    "ProbeSet",
    "Scorer",
    "audit_bias",
    "audit_workspace_bias",
    "label_probabilities",
    "lm_scorer",
    "load_eval",
    "load_predictions",
    "load_probes",
    "make_settings",
    "predict",
]
