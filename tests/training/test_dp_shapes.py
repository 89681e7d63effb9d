"""The per-example guards: OPT's flattened feed-forward layers are refused before training, and
the first step's per-sample gradients are checked against the batch and the clipping bound."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from finetrail.errors import DPGuardError
from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.workspace import Workspace
from finetrail.training import train
from finetrail.training.dp_guards import model_inputs
from finetrail.training.dp_shapes import check_first_step
from tests.support.tiny_training import (
    base_config,
    first_batch,
    tiny_config,
    tiny_engine,
    tiny_model,
    write_config,
)
from tests.training.architecture_models import tiny_arch


@pytest.fixture(scope="module")
def tiny_opt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_arch("opt", tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


def _train(base: Path, tmp_path: Path, **sections: Any) -> tuple[Workspace, Any]:
    cfg = write_config(tmp_path / "t.yaml", base_config(base, tmp_path, **sections))
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    return ws, lambda: train(config=cfg, workspace=ws)


FFN = [
    ("lora", {"name": "lora", "rank": 4, "target_modules": ["fc1", "fc2"]}, "fc1, fc2"),
    ("lora", {"name": "lora", "rank": 4, "target_modules": "all-linear"}, "fc1, fc2"),
    ("ia3", {"name": "ia3", "target_modules": ["fc2"], "feedforward_modules": ["fc2"]}, "fc2"),
    ("full", {"name": "full"}, "fc1, fc2, final_layer_norm"),
]


@pytest.mark.parametrize("clipping", ["hooks", "ghost"])
@pytest.mark.parametrize(
    ("method", "spec", "layers"), FFN, ids=["lora-ffn", "lora-all", "ia3", "full"]
)
def test_opt_feed_forward_under_dp_is_refused_before_training(
    tiny_opt: Path, tmp_path: Path, method: str, spec: dict[str, Any], layers: str, clipping: str
) -> None:
    if method == "full" and clipping == "ghost":
        pytest.skip("tied embeddings: refused by the ghost-clipping tying rule first")
    ws, run = _train(tiny_opt, tmp_path, method=spec, privacy={"clipping": clipping})
    with pytest.raises(DPGuardError) as err:
        run()
    e = err.value
    assert e.what.startswith(
        f"DP training refused before it started: architecture opt (OPTForCausalLM), method "
        f"{method}, clipping {clipping}: layers {layers} ("
    )
    assert (
        "see a leading dimension of 6 for a batch of 2 sequences of 3 tokens: the architecture "
        "flattens hidden states to (batch x positions, hidden) before them, so Opacus would clip "
        "each token's gradient, not each example's" in e.what
    )
    assert e.field == "method" and e.fix is not None
    if method != "full":
        assert "set method.target_modules to layers that see (batch, positions, hidden)" in e.fix
        assert "'q_proj'" in e.fix and "'fc1'" not in e.fix.split("leave out")[0]
    assert "use method: prefix, or train the non-private control (privacy: none)" in e.fix
    assert not (ws.root / "evidence/training.json").exists()  # nothing ran, nothing recorded


def test_opts_default_targets_are_per_example_and_stated(tiny_opt: Path, tmp_path: Path) -> None:
    _, run = _train(tiny_opt, tmp_path, method={"name": "lora", "rank": 4}, optim={"steps": 2})
    rec = run()
    assert rec.completed and rec.dp.epsilon and rec.dp.epsilon > 0
    assert any(
        a.startswith(
            "method.target_modules not set: finetrail's lora default for opt is "
            "['q_proj', 'k_proj', 'v_proj', 'out_proj'] (its feed-forward layers see hidden "
            "states flattened"
        )
        for a in rec.dp.adjustments
    )


def test_the_first_step_guard_refuses_per_token_gradients(
    tiny_opt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the check before training bypassed, the first step still refuses the update."""
    from finetrail.training import engine

    monkeypatch.setattr(engine, "check_per_example_structure", lambda *a, **k: None)
    ws, run = _train(tiny_opt, tmp_path, method=FFN[0][1])
    with pytest.raises(DPGuardError) as err:
        run()
    assert err.value.what.startswith(
        "refusing the first step: 8 trainable tensor(s) have per-sample gradients whose leading "
        "dimension is not the batch ("
    )
    assert "fc1.lora_A.default.weight: (" in err.value.what
    rec = TrainingEvidence.read(ws.root / "evidence/training.json")
    assert rec.status == "failed" and rec.dp.steps == 0 and rec.adapter is None


def test_the_first_step_guard_compares_opacus_sum_with_one_clip_per_example(
    tiny_llama: Path, tmp_path: Path
) -> None:
    config = tiny_config(tiny_llama, tmp_path, privacy={"max_grad_norm": 1e-4})
    _, _, eng = tiny_engine(config)
    ids, mask = first_batch(eng)
    st, opt = eng.stepper, eng.optimizer
    st.backward(st.loss(eng.model(**model_inputs(ids, mask, "lora")).logits, ids, mask))
    after = check_first_step(mode="hooks", optimizer=opt, batch=ids.shape[0], names={})
    assert after is not None
    opt.clip_and_accumulate()
    after()  # Opacus's sum is one clip per example
    for p in eng.params:  # an unclipped sum (what a skipped clipping pass would leave)
        p.summed_grad = p.grad_sample.sum(0)
    with pytest.raises(DPGuardError, match="disagrees with one clip per example"):
        after()
    eng.close()


def test_the_first_step_runs_the_check_once(tiny_llama: Path, tmp_path: Path) -> None:
    _, _, eng = tiny_engine(tiny_config(tiny_llama, tmp_path))
    st = eng.stepper
    calls: list[int] = []
    original = eng.optimizer.clip_and_accumulate

    def counting() -> None:
        calls.append(1)
        original()

    for _ in range(2):
        ids, mask = first_batch(eng)
        st.backward(st.loss(eng.model(**model_inputs(ids, mask, "lora")).logits, ids, mask))
        eng.optimizer.clip_and_accumulate = counting
        st.step()
    assert st._first_checked and len(calls) == 2
    eng.close()


@pytest.mark.parametrize(
    ("norms", "coef", "match"),
    [
        (torch.ones(6), torch.ones(6), r"norms have shape \(6,\) for a batch of 2 examples"),
        (torch.full((2,), 3.0), torch.ones(2), r"clipped per-example gradient norm is 3 > "),
    ],
)
def test_the_ghost_first_step_check(norms: torch.Tensor, coef: torch.Tensor, match: str) -> None:
    opt = SimpleNamespace(max_grad_norm=1.0, param_groups=[])
    with pytest.raises(DPGuardError, match=match):
        check_first_step(mode="ghost", optimizer=opt, batch=2, names={}, norms=norms, coef=coef)
    ok = torch.tensor([0.5, 3.0])
    assert (
        check_first_step(
            mode="ghost", optimizer=opt, batch=2, names={}, norms=ok, coef=(1 / ok).clamp(max=1)
        )
        is None
    )
