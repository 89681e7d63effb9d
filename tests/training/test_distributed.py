"""``finetrail train --nproc 2``: Opacus DPDDP under torchrun on 2 CPU processes (gloo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.io import sha256_file
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace
from tests.support.tiny_training import base_config, tiny_model, write_config

pytestmark = pytest.mark.slow


def test_two_processes_end_identical_and_state_the_global_batch(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    run_cli,  # type: ignore[no-untyped-def]
) -> None:
    base = tiny_model("llama", tmp_path_factory)
    data = tmp_path / "data"
    data.mkdir()
    cfg = write_config(
        tmp_path / "train.yaml", base_config(base, data, optim={"steps": 4, "batch_size": 8})
    )
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    code, _out, err = run_cli(
        "train", str(cfg), "--workspace", str(ws.root), "--nproc", "2", "--no-progress"
    )
    assert code == 0, err[-3000:]
    rec = TrainingEvidence.read(ws.root / "evidence/training.json")
    assert rec.completed and rec.compute.processes == 2
    # each rank hashed its own trainable tensors after the last step
    assert len(rec.compute.rank_parameter_sha256) == 2
    assert len(set(rec.compute.rank_parameter_sha256)) == 1
    # the global (expected) batch is the configured one; each process samples half of it
    assert rec.dp.expected_batch_size == pytest.approx(8.0)
    assert rec.dp.batch_size_per_process == pytest.approx(4.0)
    assert rec.dp.sample_rate == pytest.approx(8 / 48) and rec.dp.steps == 4
    assert rec.adapter is not None and sha256_file(ws.root / rec.adapter.path) == rec.adapter.sha256
    # only rank 0 wrote: one trained event, one copy of each adapter file
    kinds = [e.kind for e in ws.ledger.entries()]
    assert kinds.count("trained") == 1 and kinds.count("artifact.added") == 2
    assert verify_workspace(ws.root).ok
