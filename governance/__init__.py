"""Governance layer: evidence workspace, ledger, verification, provenance, probes, audits and the gate.

Light at import: no torch, transformers, mlflow or presidio. Probes and audits that need a model
load it lazily inside the functions that run them.
"""

from finetrail.governance.ledger import Ledger
from finetrail.governance.verify import VerifyReport, verify_workspace
from finetrail.governance.workspace import Workspace

__all__ = ["Ledger", "VerifyReport", "Workspace", "verify_workspace"]
