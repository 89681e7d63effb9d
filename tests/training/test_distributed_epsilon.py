"""DPDDP evidence: a two-rank run and a one-rank run with the same global batch state the same
epsilon, the same accounting inputs, what each rank sampled from, and both verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace
from tests.support.tiny_training import base_config, tiny_model, write_config

pytestmark = pytest.mark.slow


def test_one_and_two_ranks_state_the_same_guarantee(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    run_cli,  # type: ignore[no-untyped-def]
) -> None:
    base = tiny_model("llama", tmp_path_factory)
    data = tmp_path / "data"
    data.mkdir()
    cfg = write_config(
        tmp_path / "train.yaml", base_config(base, data, optim={"steps": 3, "batch_size": 8})
    )
    # the same logical batches accumulated from physical chunks of 2 on each of 2 ranks: one DP
    # step per logical batch, so the same accounting (Opacus's splitting loader under DPDDP)
    accumulated = write_config(
        tmp_path / "train-acc.yaml",
        base_config(base, data, optim={"steps": 3, "batch_size": 8, "physical_batch_size": 2}),
    )
    records = {}
    for name, nproc, config in ((1, 1, cfg), (2, 2, cfg), ("2acc", 2, accumulated)):
        ws = Workspace.init(tmp_path / f"ws{name}", model="m", version="1", owner="alice")
        code, _out, err = run_cli(
            "train", str(ws.root), str(config), "--nproc", str(nproc), "--no-progress"
        )
        assert code == 0, err[-3000:]
        assert verify_workspace(ws.root).ok
        records[name] = TrainingEvidence.read(ws.root / "evidence/training.json")
    one, two, acc = records[1], records[2], records["2acc"]
    assert acc.dp.epsilon == pytest.approx(one.dp.epsilon, rel=1e-12)
    for field in ("expected_batch_size", "sample_rate", "steps", "noise_multiplier"):
        assert getattr(acc.dp, field) == getattr(one.dp, field), field
    assert acc.dp.execution is not None and acc.compute.processes == 2
    assert one.dp.epsilon is not None and one.dp.epsilon == pytest.approx(two.dp.epsilon, rel=1e-12)
    for field in ("expected_batch_size", "sample_rate", "steps", "noise_multiplier"):
        assert getattr(one.dp, field) == getattr(two.dp, field), field
    assert (one.compute.processes, two.compute.processes) == (1, 2)
    assert two.dp.batch_size_per_process == pytest.approx(4.0)
    assert one.dp.batch_size_per_process == pytest.approx(8.0)
    # each rank states what it sampled from: the same pool on both
    assert len(two.compute.rank_data_sha256) == 2 and len(set(two.compute.rank_data_sha256)) == 1
