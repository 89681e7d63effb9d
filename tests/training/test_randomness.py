"""Where DP noise and sampling draw from, stated in the evidence: OS-seeded by default (two runs
differ), seeded from the config for research (two runs are identical, digest for digest), and
Opacus's secure_mode refused with a clear message when torchcsprng is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.workspace import Workspace
from tests.support.tiny_training import base_config, tiny_model, write_config

pytestmark = pytest.mark.slow


def _train(tmp: Path, name: str, cfg: Path, run_cli) -> TrainingEvidence:  # type: ignore[no-untyped-def]
    ws = Workspace.init(tmp / name, model="m", version="1", owner="alice")
    code, _out, err = run_cli("train", str(ws.root), str(cfg), "--no-progress")
    assert code == 0, err[-3000:]
    return TrainingEvidence.read(ws.root / "evidence/training.json")


@pytest.mark.parametrize("randomness", ["os", "seeded"])
def test_noise_source_is_stated_and_behaves_as_stated(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    run_cli,
    randomness: str,  # type: ignore[no-untyped-def]
) -> None:
    base = tiny_model("llama", tmp_path_factory)
    data = tmp_path / "data"
    data.mkdir()
    cfg = write_config(
        tmp_path / "train.yaml",
        base_config(base, data, optim={"steps": 3}, privacy={"randomness": randomness}),
    )
    a, b = (_train(tmp_path, n, cfg, run_cli) for n in ("a", "b"))
    assert a.dp.randomness_source == randomness and a.dp.randomness is not None
    assert a.adapter is not None and b.adapter is not None
    if randomness == "seeded":
        assert a.adapter.sha256 == b.adapter.sha256  # the research run reproduces exactly
        assert "no release's privacy guarantee" in a.dp.randomness
    else:
        assert a.adapter.sha256 != b.adapter.sha256  # fresh noise each run
        assert "seeded by the operating system" in a.dp.randomness


@pytest.mark.skipif(
    importlib.util.find_spec("torchcsprng") is not None, reason="torchcsprng is installed here"
)
def test_secure_mode_without_torchcsprng_is_a_clear_error(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    run_cli,  # type: ignore[no-untyped-def]
) -> None:
    base = tiny_model("llama", tmp_path_factory)
    data = tmp_path / "data"
    data.mkdir()
    cfg = write_config(
        tmp_path / "train.yaml",
        base_config(base, data, optim={"steps": 2}, privacy={"randomness": "secure"}),
    )
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    code, _out, err = run_cli("train", str(ws.root), str(cfg), "--no-progress")
    assert code == 2, err[-2000:]
    assert "privacy.randomness" in err and "torchcsprng" in err and "Traceback" not in err
    assert not (ws.root / "evidence" / "training.json").exists()
