"""Training layer: fine-tuning under differential privacy with PEFT and Opacus, tracked in MLflow.

Importing this package is light; torch and friends are imported by the functions that train.

- :func:`train` (``finetrail train``) runs one fine-tune and writes ``evidence/training.json``;
- :func:`finetrail.training.loading.load_trained` loads what that evidence describes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finetrail.governance.evidence.training import TrainingEvidence

__all__ = ["train"]


def train(
    *,
    config: str | os.PathLike[str] | Any,
    workspace: str | os.PathLike[str] | Any,
    check_dp: bool = False,
    progress: bool = False,
    actor: str | None = None,
    tracking_uri: str | None = None,
) -> TrainingEvidence:
    """Fine-tune as ``config`` (a YAML path or a ``TrainConfig``) says; write the evidence into
    ``workspace``. See :func:`finetrail.training.api.train`."""
    from finetrail.training.api import train as _train

    return _train(
        config=config,
        workspace=workspace,
        check_dp=check_dp,
        progress=progress,
        actor=actor,
        tracking_uri=tracking_uri,
    )
