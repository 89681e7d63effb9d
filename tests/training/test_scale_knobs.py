"""Scale knobs on the CPU: gradient accumulation (``optim.physical_batch_size``).

A logical (Poisson-sampled) batch is one DP step whatever its physical chunking: the same config
with and without a small physical batch plans the same steps and noise, Opacus's accountant counts
one step per logical batch (the plan = execution check passes), and the white-box mechanism audit
still verifies the optimizer's steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from finetrail.errors import ConfigError
from finetrail.training.config import parse_config
from finetrail.training.execution import check_execution
from finetrail.training.loop import RunState, mechanism_claim, run_loop
from tests.support.tiny_training import base_config, tiny_config, tiny_engine, tiny_model

STEPS, BATCH = 6, 8


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


def _run(config: Any, *, dp: bool = True) -> tuple[Any, Any, RunState, list[int]]:
    built, plan, engine = tiny_engine(config, dp=dp)
    chunks: list[int] = []
    forward = engine.model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        chunks.append(int(kwargs["input_ids"].shape[0]))
        return forward(*args, **kwargs)

    engine.model.forward = counting
    state = RunState()
    claim = None
    if dp:
        claim = mechanism_claim(plan, max_grad_norm=config.privacy.max_grad_norm, delta=1e-3)
    run_loop(
        engine=engine,
        plan=plan,
        method=built.method,
        device=torch.device("cpu"),
        state=state,
        validation=None,
        eval_every=100,
        early_stopping=None,
        rank=0,
        dp=dp,
        progress=False,
        mechanism=claim,
    )
    return plan, engine, state, chunks


def _config(base: Path, tmp: Path, **optim: Any) -> Any:
    return tiny_config(
        base,
        tmp,
        optim={"batch_size": BATCH, "steps": STEPS, **optim},
        privacy={"noise_multiplier": 1.0, "delta": 1e-3, "max_grad_norm": 0.05,
                 "randomness": "seeded"},
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_accumulation_is_one_dp_step_per_logical_batch(
    mode: str, tiny_llama: Path, tmp_path: Path
) -> None:
    whole = _config(tiny_llama, tmp_path / "a")
    split = _config(tiny_llama, tmp_path / "b", physical_batch_size=3)
    whole = whole.model_copy(
        update={"privacy": whole.privacy.model_copy(update={"clipping": mode})}
    )
    split = split.model_copy(
        update={"privacy": split.privacy.model_copy(update={"clipping": mode})}
    )
    plan_a, engine_a, state_a, chunks_a = _run(whole)
    plan_b, engine_b, state_b, chunks_b = _run(split)
    # the same plan: steps, sample rate, noise (so the same epsilon)
    assert (plan_a.total_steps, plan_a.sample_rate, plan_a.noise_multiplier) == (
        plan_b.total_steps,
        plan_b.sample_rate,
        plan_b.noise_multiplier,
    )
    assert state_a.step == state_b.step == STEPS
    # seeded Poisson sampling: the same logical batches, the split run in chunks of at most 3
    assert max(chunks_b) <= 3 < max(chunks_a)
    assert sum(chunks_a) == sum(chunks_b) and len(chunks_b) > len(chunks_a)
    for plan, engine, state in ((plan_a, engine_a, state_a), (plan_b, engine_b, state_b)):
        facts = check_execution(
            engine,
            noise_multiplier=plan.noise_multiplier,
            max_grad_norm=0.05,
            sample_rate=plan.sample_rate,
            expected_batch_size=plan.expected_batch_size,
            world_size=1,
            steps=state.step,
        )
        assert facts["accountant_steps"] == STEPS
        assert state.mechanism is not None
        assert state.mechanism.verdict == "verified", state.mechanism.reasons
        assert state.mechanism.cost is not None and state.mechanism.cost.steps == STEPS


def test_accumulation_without_dp_gives_the_whole_batch_gradient(
    tiny_llama: Path, tmp_path: Path
) -> None:
    def final(**optim: Any) -> list[torch.Tensor]:
        cfg = tiny_config(tiny_llama, tmp_path / str(optim), privacy="none",
                          optim={"batch_size": BATCH, "steps": 3, "optimizer": "sgd",
                                 "learning_rate": 1.0, **optim})  # fmt: skip
        _, engine, state, chunks = _run(cfg, dp=False)
        assert state.step == 3
        assert max(chunks) <= optim.get("physical_batch_size", BATCH)
        return [p.detach().clone() for p in engine.params]

    whole, split = final(), final(physical_batch_size=3)
    moved = max(float((a - b).abs().max()) for a, b in zip(whole, split, strict=True))
    assert moved < 1e-5


def test_physical_batch_size_is_validated(tiny_llama: Path, tmp_path: Path) -> None:
    cfg = base_config(tiny_llama, tmp_path, optim={"physical_batch_size": 0})
    with pytest.raises(ConfigError, match=r"optim\.physical_batch_size"):
        parse_config(cfg, source="test")
    alias = base_config(tiny_llama, tmp_path, optim={"max_physical_batch_size": 4})
    assert parse_config(alias, source="test").optim.physical_batch_size == 4


# ---- gradient checkpointing --------------------------------------------------------------------


def _layer_calls(engine: Any) -> list[int]:
    calls = [0]
    layer = engine.inner.get_base_model().model.layers[0].self_attn.q_proj  # checkpointed
    layer.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_checkpointing_without_dp_recomputes_and_gives_the_same_update(
    tiny_llama: Path, tmp_path: Path
) -> None:
    def final(checkpointing: bool) -> tuple[list[torch.Tensor], int]:
        cfg = tiny_config(tiny_llama, tmp_path / str(checkpointing), privacy="none",
                          optim={"batch_size": BATCH, "steps": 2, "optimizer": "sgd",
                                 "learning_rate": 1.0, "gradient_checkpointing": checkpointing})  # fmt: skip
        built, plan, engine = tiny_engine(cfg, dp=False)
        calls = _layer_calls(engine)
        run_loop(engine=engine, plan=plan, method=built.method, device=torch.device("cpu"),
                 state=RunState(), validation=None, eval_every=100, early_stopping=None,
                 rank=0, dp=False, progress=False)  # fmt: skip
        return [p.detach().clone() for p in engine.params], calls[0]

    (plain, plain_calls), (ckpt, ckpt_calls) = final(False), final(True)
    assert plain_calls == 2 and ckpt_calls == 4  # the layer's forward ran again in backward
    diff = max(float((a - b).abs().max()) for a, b in zip(plain, ckpt, strict=True))
    assert diff < 1e-5


@pytest.mark.parametrize("clipping", ["auto", "hooks", "ghost"])
def test_checkpointing_under_dp_is_refused_naming_the_fields(
    clipping: str, tiny_llama: Path, tmp_path: Path, run_cli: Any
) -> None:
    from finetrail.governance.workspace import Workspace
    from tests.support.tiny_training import write_config

    cfg = base_config(tiny_llama, tmp_path, optim={"gradient_checkpointing": True},
                      privacy={"noise_multiplier": 1.0, "delta": 1e-3, "clipping": clipping})  # fmt: skip
    path = write_config(tmp_path / "t.yaml", cfg)
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    code, _out, err = run_cli("train", str(ws.root), str(path), "--no-progress")
    assert code == 2
    assert "optim.gradient_checkpointing is refused under DP (privacy.clipping " in err
    assert f"{clipping!r}, method 'lora')" in err
    assert "Traceback" not in err
    assert not (ws.root / "evidence/training.json").exists()


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_opacus_per_sample_gradients_break_under_checkpointing(
    mode: str, tiny_llama: Path, tmp_path: Path
) -> None:
    """Why the refusal: this fails once Opacus handles recomputed forward passes (then lift it)."""
    from finetrail.training.dp_guards import model_inputs, quiet_hook_warning
    from tests.support.tiny_training import first_batch

    cfg = tiny_config(tiny_llama, tmp_path, privacy={"noise_multiplier": 1.0, "delta": 1e-3,
                                                     "clipping": mode})  # fmt: skip
    built, _plan, engine = tiny_engine(cfg)
    built.model.gradient_checkpointing_enable(
        gradient_checkpointing_kwargs={"use_reentrant": False}
    )
    ids, mask = first_batch(engine)
    loss = engine.stepper.loss(
        engine.model(**model_inputs(ids, mask, built.method)).logits, ids, mask
    )
    if mode == "ghost":
        with pytest.raises(NotImplementedError, match="Parameter tying"), quiet_hook_warning():
            loss.backward()
        return
    with quiet_hook_warning():
        loss.backward()
    missing = [p for p in engine.params if getattr(p, "grad_sample", None) is None]
    assert missing and all(p.grad is not None for p in missing)


# ---- end to end: accumulation through `finetrail train`, device auto, precision ----------------


def _completion_data(folder: Path) -> Path:
    import json

    from tests.support.tiny_training import make_texts

    folder.mkdir(parents=True, exist_ok=True)
    prompts, answers = make_texts(48, seed=5, max_words=6), make_texts(48, seed=6, max_words=6)
    path = folder / "pc.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": p, "completion": a}) + "\n" for p, a in zip(prompts, answers, strict=True)),
        encoding="utf-8",
    )  # fmt: skip
    return path


def _train(tiny: Path, tmp: Path, run_cli: Any, **optim: Any) -> tuple[int, str, Path]:
    from finetrail.governance.workspace import Workspace
    from tests.support.tiny_training import write_config

    tmp.mkdir(parents=True, exist_ok=True)
    cfg = base_config(tiny, tmp, optim={"steps": 4, **optim}, device="auto",
                      privacy={"noise_multiplier": 1.0, "delta": 1e-3, "randomness": "seeded"})  # fmt: skip
    cfg["data"] = {**cfg["data"], "train": str(_completion_data(tmp / "pc")),
                   "format": "prompt_completion"}  # fmt: skip
    del cfg["data"]["validation"]
    path = write_config(tmp / "t.yaml", cfg)
    ws = Workspace.init(tmp / "ws", model="m", version="1", owner="alice")
    code, _out, err = run_cli("train", str(ws.root), str(path), "--no-progress")
    return code, err, ws.root


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU behaviour of device: auto")
def test_train_with_accumulation_states_the_same_dp_and_the_device_used(
    tiny_llama: Path, tmp_path: Path, run_cli: Any
) -> None:
    from finetrail.governance.evidence.mechanism import MechanismEvidence
    from finetrail.governance.evidence.training import TrainingEvidence

    records = []
    for name, optim in (("whole", {}), ("split", {"physical_batch_size": 3})):
        code, err, root = _train(tiny_llama, tmp_path / name, run_cli, **optim)
        assert code == 0, err[-2000:]
        rec = TrainingEvidence.read(root / "evidence/training.json")
        mech = MechanismEvidence.read(root / "evidence/mechanism.json")
        assert mech.verdict == "verified", mech.reasons
        assert rec.compute.device == "cpu"  # device: auto on a machine without CUDA
        assert rec.compute.precision == "fp32" == rec.config["optim"]["precision"]
        assert rec.dp.execution is not None
        assert rec.dp.execution["accountant_steps"] == rec.dp.steps == 4
        records.append(rec)
    whole, split = records
    assert (split.dp.epsilon, split.dp.noise_multiplier, split.dp.sample_rate) == (
        whole.dp.epsilon,
        whole.dp.noise_multiplier,
        whole.dp.sample_rate,
    )
    assert split.compute.tokens == whole.compute.tokens  # the same seeded batches, in chunks


def test_mixed_precision_on_the_cpu_is_refused_before_training(
    tiny_llama: Path, tmp_path: Path, run_cli: Any
) -> None:
    from finetrail.training.engine import check_precision

    cfg = tiny_config(tiny_llama, tmp_path, optim={"precision": "bf16"})
    with pytest.raises(ConfigError) as info:
        check_precision(cfg, torch.device("cpu"))
    assert info.value.field == "optim.precision"
    assert (
        "optim.precision 'bf16' autocasts on CUDA only; this run's device is cpu (device: cpu)"
        in str(info.value)
    )
    check_precision(tiny_config(tiny_llama, tmp_path), torch.device("cpu"))  # fp32: accepted
    code, err, root = _train(tiny_llama, tmp_path / "run", run_cli, precision="bf16")
    assert code == 2
    assert "optim.precision 'bf16' autocasts on CUDA only; this run's device is cpu" in err
    assert "Traceback" not in err
    assert not (root / "evidence/training.json").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast needs a CUDA device")
def test_bf16_on_cuda_is_recorded_with_the_device(
    tiny_llama: Path, tmp_path: Path, run_cli: Any
) -> None:
    from finetrail.governance.evidence.training import TrainingEvidence

    code, err, root = _train(tiny_llama, tmp_path / "bf16", run_cli, precision="bf16")
    assert code == 0, err[-2000:]
    rec = TrainingEvidence.read(root / "evidence/training.json")
    assert rec.compute.device.startswith("cuda")
    assert rec.compute.precision == "bf16" == rec.config["optim"]["precision"]


def test_fp16_is_refused_naming_the_field(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"optim\.precision: fp16 needs loss scaling"):
        tiny_config(tiny_llama, tmp_path, optim={"precision": "fp16"})


# ---- sharded checkpoints -----------------------------------------------------------------------


def test_sharded_full_weights_are_all_recorded_loaded_and_verified(
    tiny_llama: Path, tmp_path: Path, run_cli: Any
) -> None:
    from finetrail.errors import IntegrityError
    from finetrail.governance.evidence.training import TrainingEvidence
    from finetrail.governance.workspace import Workspace
    from finetrail.training.loading import load_trained
    from tests.support.tiny_training import write_config

    cfg = base_config(tiny_llama, tmp_path, method={"name": "full"}, privacy="none",
                      optim={"steps": 2}, save={"max_shard_size": "40KB"})  # fmt: skip
    path = write_config(tmp_path / "t.yaml", cfg)
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    code, _out, err = run_cli("train", str(ws.root), str(path), "--no-progress")
    assert code == 0, err[-2000:]
    rec = TrainingEvidence.read(ws.root / "evidence/training.json")
    assert rec.adapter is not None
    assert rec.adapter.path == "artifacts/adapter/model.safetensors.index.json"
    shards = sorted(f for f in rec.adapter.files if f.endswith(".safetensors"))
    assert len(shards) >= 3, shards  # ~120 KB of fp32 weights in shards of at most 40 KB
    assert all("-of-" in s for s in shards)
    assert "artifacts/adapter/model.safetensors" not in rec.adapter.files
    loaded = load_trained(ws.root, device="cpu", base_model_path=tiny_llama)
    assert sum(p.numel() for p in loaded.model.parameters()) == rec.total_parameters  # all shards
    code, _out, err = run_cli("verify", str(ws.root))
    assert code == 0, err[-2000:]

    victim = ws.root / shards[-1]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    with pytest.raises(IntegrityError, match=f"{shards[-1]}: sha256 differs from the evidence"):
        load_trained(ws.root, device="cpu", base_model_path=tiny_llama)
    code, out, err = run_cli("verify", str(ws.root))
    assert code != 0
    assert Path(shards[-1]).name in out + err


def test_max_shard_size_is_validated(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"save\.max_shard_size: String should match pattern"):
        tiny_config(tiny_llama, tmp_path, save={"max_shard_size": "lots"})
