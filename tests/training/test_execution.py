"""Plan = execution, on a real Opacus optimizer and accountant: the check passes an honest run
and names each planted difference (noise changed mid-run, clipping changed, a sample rate the
accountant did not see, steps not accounted)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from finetrail.errors import IntegrityError
from finetrail.training.execution import check_execution

N, BATCH, SIGMA, CLIP = 64, 8, 1.1, 1.0


class _Engine:
    def __init__(self, optimizer: Any, privacy_engine: Any) -> None:
        self.optimizer, self.privacy_engine = optimizer, privacy_engine


def _opacus_run(steps: int, *, mutate: Any = None) -> _Engine:
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    data = TensorDataset(torch.randn(N, 4), torch.randint(0, 2, (N,)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pe = PrivacyEngine(accountant="prv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus's secure-RNG notice
        model, opt, loader = pe.make_private(
            module=model,
            optimizer=opt,
            data_loader=DataLoader(data, batch_size=BATCH),
            noise_multiplier=SIGMA,
            max_grad_norm=CLIP,
            poisson_sampling=True,
        )
    done = 0
    warnings.filterwarnings(  # torch's note on Opacus's hooks for a linear model's first layer
        "ignore", message="Full backward hook is firing", category=UserWarning
    )
    while done < steps:
        for x, y in loader:
            if done == steps:
                break
            if mutate is not None and done == steps // 2:
                mutate(opt)
            opt.zero_grad()
            if len(x):
                torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            done += 1
    return _Engine(opt, pe)


def _check(engine: _Engine, **changes: Any) -> dict[str, Any]:
    plan = {
        "noise_multiplier": SIGMA,
        "max_grad_norm": CLIP,
        "sample_rate": BATCH / N,
        "expected_batch_size": float(BATCH),
        "world_size": 1,
        "steps": 6,
    }
    return check_execution(engine, **{**plan, **changes})


def test_honest_run_passes_and_states_what_ran() -> None:
    facts = _check(_opacus_run(6))
    assert facts["accountant_steps"] == 6
    assert facts["accountant_history"] == [[SIGMA, BATCH / N, 6]]
    assert facts["noise_multiplier"] == SIGMA and facts["normalised_by"] == BATCH


@pytest.mark.parametrize(
    ("mutate", "changes", "message"),
    [
        (lambda o: setattr(o, "noise_multiplier", SIGMA / 10), {}, "noise multiplier"),
        (lambda o: setattr(o, "max_grad_norm", 100.0), {}, "clipping norm: ran 100.0"),
        (None, {"sample_rate": 0.5}, "accountant's sample rate"),
        (None, {"steps": 7}, "the accountant saw 6, the run states 7"),
        (None, {"noise_multiplier": 2.0}, "noise multiplier: ran 1.1"),
        (lambda o: setattr(o, "expected_batch_size", 16), {}, "expected batch size per process"),
    ],
    ids=[
        "noise-cut-mid-run",
        "clipping-lifted",
        "sample-rate",
        "steps",
        "sigma-overclaimed",
        "normalisation",
    ],
)
def test_each_difference_is_named(mutate: Any, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        _check(_opacus_run(6, mutate=mutate), **changes)


@pytest.mark.slow
def test_training_evidence_states_the_execution_check(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    run_cli,  # type: ignore[no-untyped-def]
) -> None:
    from finetrail.governance.evidence.training import TrainingEvidence
    from finetrail.governance.workspace import Workspace
    from tests.support.tiny_training import base_config, tiny_model, write_config

    base = tiny_model("llama", tmp_path_factory)
    data = tmp_path / "data"
    data.mkdir()
    cfg = write_config(tmp_path / "t.yaml", base_config(base, data, optim={"steps": 3}))
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    code, _out, err = run_cli("train", str(ws.root), str(cfg), "--no-progress")
    assert code == 0, err[-2000:]
    rec = TrainingEvidence.read(ws.root / "evidence/training.json")
    assert rec.dp.execution is not None
    assert rec.dp.execution["accountant_steps"] == rec.dp.steps == 3
    assert rec.dp.execution["noise_multiplier"] == rec.dp.noise_multiplier
