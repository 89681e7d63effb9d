"""Dataset provenance: registration, record-level Merkle proofs, lineage, PII scans, sanitising.

The facade (keyword-only):

- :func:`register_dataset` writes a :class:`~finetrail.governance.evidence.dataset.DatasetRecord`
  (file SHA-256, RFC 6962 Merkle root over the records, schema, licence, lineage, and with
  ``scan=True`` a Presidio PII summary);
- :func:`prove_record` makes an inclusion proof for one record; :func:`check_proof` checks one
  against a trusted root (standard library only, see :mod:`.proofcheck`);
- :func:`sanitize_dataset` writes a sanitised copy, registers it as derived, re-scans it;
- :func:`find_dataset`, :func:`list_datasets`, :func:`dataset_for_file` look datasets up;
- :func:`log_datasets_to_mlflow` logs registered datasets as MLflow dataset inputs.

Importing this package is light: presidio and mlflow are imported only by the calls that need
them (a scan or sanitise; the MLflow logging).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetrail.governance.pii.config import ScanConfig
    from finetrail.governance.provenance.api import (
        dataset_for_file,
        find_dataset,
        list_datasets,
        prove_record,
        register_dataset,
        sanitize_dataset,
    )
    from finetrail.governance.provenance.mlflow_inputs import log_datasets_to_mlflow
    from finetrail.governance.provenance.proofcheck import check_proof

# Loaded on first use, so importing one submodule (verify's lineage check, the address pattern
# the reports use) does not load the registration API.
_WHERE = {
    "dataset_for_file": "api",
    "find_dataset": "api",
    "list_datasets": "api",
    "prove_record": "api",
    "register_dataset": "api",
    "sanitize_dataset": "api",
    "ScanConfig": "config",
    "log_datasets_to_mlflow": "mlflow_inputs",
    "check_proof": "proofcheck",
}

__all__ = [
    "ScanConfig",
    "check_proof",
    "dataset_for_file",
    "find_dataset",
    "list_datasets",
    "log_datasets_to_mlflow",
    "prove_record",
    "register_dataset",
    "sanitize_dataset",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
