"""Shared fixtures: workspaces built in the test, a pinned clock, and CLI helpers."""

from __future__ import annotations

import os

# Two pytest-xdist workers share two cores: one intra-op thread each, set before torch loads
# (oversubscribed OpenMP threads made tiny matmuls 100x slower on a busy 2-core machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# Tests that do not test signing write unsigned ledger entries (development mode); the signing
# tests set a key with finetrail.governance.keys.signing_with or FINETRAIL_LEDGER_KEY.
os.environ.setdefault("FINETRAIL_DEV_UNSIGNED", "1")
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from finetrail.cli import main
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.registry import EvidenceKind
from finetrail.governance.workspace import Workspace


class SampleEvidence(EvidenceRecord):
    """A test-only record kind."""

    record_type: Literal["sample"] = "sample"
    name: str
    value: float
    notes: tuple[str, ...] = ()


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINETRAIL_FIXED_TIME", "2026-01-15T12:00:00+00:00")
    from datetime import datetime

    from finetrail.governance import clock

    # the release gate's clock is a test-only seam (no environment variable reaches it)
    monkeypatch.setattr(
        clock, "RELEASE_CLOCK", lambda: datetime.fromisoformat("2026-01-15T12:00:00+00:00")
    )
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def use_contract_kinds() -> tuple[EvidenceKind, ...]:
    """Checks that every kind of the evidence contract is registered with its real class."""
    from tests.support.workspaces import contract_kinds

    return contract_kinds()


@pytest.fixture
def make_workspace(tmp_path: Path) -> Callable[..., Workspace]:
    counter = {"n": 0}

    def _make(name: str | None = None, **kw: str) -> Workspace:
        counter["n"] += 1
        root = tmp_path / (name or f"ws{counter['n']}")
        args = {"model": "support-assistant", "version": "1.0.0", "owner": "alice"} | kw
        return Workspace.init(root, **args)

    return _make


@pytest.fixture
def sample_workspace(make_workspace: Callable[..., Workspace], tmp_path: Path) -> Workspace:
    """A workspace with a few evidence records and artifacts, all recorded properly."""
    ws = make_workspace("sample")
    for i in range(3):
        ws.write_record(
            f"evidence/sample_{i}.json",
            SampleEvidence(name=f"s{i}", value=i / 3, notes=("a", "ü")),
            event="sample.written",
            actor="tester",
        )
    blob = tmp_path / "adapter.bin"
    blob.write_bytes(os.urandom(256))
    ws.add_artifact(blob, "artifacts/adapter/adapter.bin", actor="tester")
    folder = tmp_path / "plots"
    folder.mkdir()
    (folder / "a.json").write_text('{"x": [1, 2]}')
    (folder / "b.json").write_text('{"y": [3]}')
    ws.add_artifact(folder, "artifacts/plots", actor="tester")
    return ws


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def _run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return _run
