"""The third-party warnings and log lines finetrail silences, each with its reason.

Where a warning came from our own call, the call was fixed instead (and is not listed here):
``training/data.py`` and ``training/dp_check.py`` count full record lengths with
``verbose=False`` (transformers' "Token indices sequence length is longer than ..."), and
``governance/probes/scoring.py`` reads a model output's ``cache`` field, not its deprecated
``past_key_values`` alias. What remains is raised inside a library by code we do not call
differently; each filter matches one message, one category and one module, so any other warning
still shows. The table is listed in docs/training.md ("Warnings finetrail filters"); a test
checks the two agree.

:func:`quieted` applies them around one CLI command (``finetrail.cli.main``) and restores the
previous state afterwards. Importing this module imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["LOGGERS", "WARNINGS", "LoggerLevel", "WarningFilter", "quieted"]


@dataclass(frozen=True)
class WarningFilter:
    """One ignored warning: ``message`` and ``module`` are regular expressions matched at the
    start (as :func:`warnings.filterwarnings` does), ``category`` its class name."""

    message: str
    category: str
    module: str
    reason: str


@dataclass(frozen=True)
class LoggerLevel:
    """A library logger raised to ``level`` (lines below it are dropped)."""

    logger: str
    level: int
    reason: str


WARNINGS: tuple[WarningFilter, ...] = (
    WarningFilter(
        message=r"Secure RNG turned off",
        category="UserWarning",
        module=r"opacus\.privacy_engine",
        reason="the randomness is a recorded choice (privacy.randomness: os, seeded or secure), "
        "stored in evidence/training.json (dp.randomness_source, dp.randomness) and stated in the dossier's privacy "
        "section; the advice to retrain with secure_mode is the 'secure' setting",
    ),
    WarningFilter(
        message=r"Optimal order is the largest alpha",
        category="UserWarning",
        module=r"opacus\.accountants\.analysis\.rdp",
        reason="raised inside Opacus's PRV accountant, which sizes its numerical domain with an "
        "RDP bound over Opacus's default orders (no argument reaches it); a looser bound only "
        "widens that domain. The RDP epsilon finetrail records uses its own orders",
    ),
    WarningFilter(
        message=r"`is_gradient_checkpointing` is deprecated",
        category="FutureWarning",
        module=r"transformers\.modeling_utils",
        reason="peft's PeftModel reads the deprecated property of the transformers model while "
        "wrapping it (peft_model.py); finetrail never reads it",
    ),
    WarningFilter(
        message=r"The ``noload`` loader strategy is deprecated",
        category="DeprecationWarning",
        module=r"mlflow\.store\.tracking\.sqlalchemy_store",
        reason="MLflow's SQL store configures SQLAlchemy mappers that use it; shown only with "
        "-W default or PYTHONWARNINGS",
    ),
)

LOGGERS: tuple[LoggerLevel, ...] = (
    LoggerLevel(
        logger="mlflow.store.db.utils",
        level=logging.WARNING,
        reason="INFO lines 'Creating initial MLflow database tables...' and 'Updating database "
        "tables' on every new sqlite tracking store (the workspace's mlflow.db)",
    ),
)


@contextlib.contextmanager
def quieted() -> Iterator[None]:
    """Apply :data:`WARNINGS` and :data:`LOGGERS` for the duration of the block."""
    import builtins

    loggers = [(logging.getLogger(x.logger), x.level) for x in LOGGERS]
    before = [lg.level for lg, _ in loggers]
    with warnings.catch_warnings():
        for w in WARNINGS:
            warnings.filterwarnings(
                "ignore",
                message=w.message,
                category=getattr(builtins, w.category),
                module=w.module,
            )
        for lg, level in loggers:
            lg.setLevel(level)
        try:
            yield
        finally:
            for (lg, _), level in zip(loggers, before, strict=True):
                lg.setLevel(level)
