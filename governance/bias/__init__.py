"""Bias audit: group metrics with fairlearn, bootstrap intervals, counterfactual probes, and the
fine-tune's own effect (fine-tuned minus base, paired).

Light to import: nothing heavy is loaded until a name below is used (numpy then; fairlearn,
scikit-learn, torch and transformers inside the functions that need them), so the CLI's start-up
stays light. The record it produces is
:class:`finetrail.governance.evidence.bias.BiasAuditEvidence` (``evidence/bias.json``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetrail.governance.bias._audit import BiasAuditSettings, audit_bias, make_settings
    from finetrail.governance.bias._counterfactual import ProbeSet, load_probes
    from finetrail.governance.bias._data import load_eval, load_predictions
    from finetrail.governance.bias._scoring import Scorer, label_probabilities, lm_scorer, predict
    from finetrail.governance.bias._workspace import audit_workspace_bias

_WHERE = {
    "BiasAuditSettings": "_audit",
    "audit_bias": "_audit",
    "make_settings": "_audit",
    "ProbeSet": "_counterfactual",
    "load_probes": "_counterfactual",
    "load_eval": "_data",
    "load_predictions": "_data",
    "Scorer": "_scoring",
    "label_probabilities": "_scoring",
    "lm_scorer": "_scoring",
    "predict": "_scoring",
    "audit_workspace_bias": "_workspace",
}

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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
