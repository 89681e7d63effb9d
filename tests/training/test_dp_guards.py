"""Each DP guard, with the failure it prevents shown happening when the guard is bypassed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finetrail.errors import DPGuardError
from finetrail.training.dp_guards import (
    MovedCheck,
    check_optimizer_params,
    choose_clipping_mode,
    model_inputs,
    quiet_hook_warning,
    sequence_loss,
)
from finetrail.training.loop import RunState, run_loop
from finetrail.training.model import build_model, check_on_device
from tests.support.tiny_training import first_batch, tiny_config, tiny_engine, tiny_model


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("gpt2", tmp_path_factory)


def _cpu_model(config):  # type: ignore[no-untyped-def]
    return build_model(config, device=torch.device("cpu"), dp=True)


# ---- the loss: per-sequence mean, then the batch mean ------------------------------------------


def test_each_examples_loss_is_its_own_token_mean(tiny_llama: Path, tmp_path: Path) -> None:
    built = _cpu_model(tiny_config(tiny_llama, tmp_path))
    tok, model = built.tokenizer, built.model
    texts = ["Refund.", "Order 123 was late and the parcel damaged, please replace it kindly."]
    enc = tok(texts, padding="longest", return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        batch = sequence_loss(model(**model_inputs(ids, mask, "lora")).logits, ids, mask)
        alone = []
        for i in range(2):
            n = int(mask[i].sum())
            one = ids[i : i + 1, :n]
            alone.append(
                sequence_loss(
                    model(**model_inputs(one, mask[i : i + 1, :n], "lora")).logits,
                    one,
                    mask[i : i + 1, :n],
                )
            )
        labels = ids.masked_fill(mask == 0, -100)
        hf = model(**model_inputs(ids, mask, "lora"), labels=labels).loss
    assert torch.allclose(
        batch, torch.cat(alone), atol=1e-6
    )  # padding and neighbours do not matter
    # HF's loss divides by the batch's token count: the long example outweighs the short one.
    assert not torch.isclose(hf, batch.mean(), atol=1e-4)


def test_the_training_step_gives_each_example_its_own_gradient(
    tiny_llama: Path, tmp_path: Path
) -> None:
    """Through the real training path (engine + stepper, hooks mode): each example's per-sample
    gradient equals the gradient of that example's loss computed alone, so no example's
    gradient depends on another's length (HF's batch-wide token mean would fail this)."""
    config = tiny_config(tiny_llama, tmp_path)
    built, _, engine = tiny_engine(config)
    ids, mask = first_batch(engine)
    named = [(n, p) for n, p in built.model.named_parameters() if p.requires_grad]
    brute = []
    engine.hooks.disable_hooks()  # plain autograd for the reference
    for i in range(ids.shape[0]):
        n = int(mask[i].sum())
        one, one_mask = ids[i : i + 1, :n], mask[i : i + 1, :n]
        with quiet_hook_warning():
            loss = sequence_loss(
                built.model(**model_inputs(one, one_mask, "lora")).logits, one, one_mask
            )
            grads = torch.autograd.grad(loss.sum(), [p for _, p in named])
        brute.append(torch.cat([g.flatten() for g in grads]))
    engine.hooks.enable_hooks()
    st = engine.stepper
    st.backward(st.loss(engine.model(**model_inputs(ids, mask, "lora")).logits, ids, mask))
    for i, ref in enumerate(brute):
        ours = torch.cat([p.grad_sample[i].flatten() for _, p in named])
        assert float((ours - ref).norm() / ref.norm()) < 1e-5
    engine.close()


def test_position_ids_are_expanded_to_the_batch() -> None:
    ids = torch.ones(3, 5, dtype=torch.long)
    kw = model_inputs(ids, torch.ones_like(ids), "full")
    assert kw["position_ids"].shape == (3, 5)
    assert torch.equal(kw["position_ids"][2], torch.arange(5))
    assert "position_ids" not in model_inputs(ids, torch.ones_like(ids), "prefix")


# ---- ghost clipping: only Opacus's criterion may be backpropagated -----------------------------


@pytest.fixture
def ghost(tiny_llama: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tiny_config(tiny_llama, tmp_path, privacy={"clipping": "ghost", "max_grad_norm": 1e-3})
    built, plan, engine = tiny_engine(config)
    assert plan.clipping_mode == "ghost"
    yield built, engine
    engine.close()


def test_ghost_mode_refuses_any_other_loss(ghost) -> None:  # type: ignore[no-untyped-def]
    _, engine = ghost
    ids, mask = first_batch(engine)
    logits = engine.model(**model_inputs(ids, mask, "lora")).logits
    with pytest.raises(DPGuardError, match="only the criterion returned by Opacus"):
        engine.stepper.backward(sequence_loss(logits, ids, mask).mean())


def test_ghost_mode_refuses_a_step_after_a_plain_backward(ghost) -> None:  # type: ignore[no-untyped-def]
    _, engine = ghost
    ids, mask = first_batch(engine)
    labels = ids.masked_fill(mask == 0, -100)
    with quiet_hook_warning():
        engine.model(**model_inputs(ids, mask, "lora"), labels=labels).loss.backward()
    with pytest.raises(DPGuardError, match="ghost-clipping pass did not run"):
        engine.stepper.step()
    assert len(engine.privacy_engine.accountant) == 0
    # Bypassing the guard: Opacus accepts the step silently and the accountant counts it, while
    # the update is far beyond the clipping bound (this is what the guard stops).
    grad_norm = torch.cat([p.grad.flatten() for p in engine.params]).norm()
    assert grad_norm > 10 * 1e-3 * ids.shape[0]
    engine.optimizer.step()
    assert len(engine.privacy_engine.accountant) == 1


def test_ghost_mode_through_the_criterion_is_clipped_and_counted(ghost) -> None:  # type: ignore[no-untyped-def]
    _, engine = ghost
    ids, mask = first_batch(engine)
    loss = engine.stepper.loss(engine.model(**model_inputs(ids, mask, "lora")).logits, ids, mask)
    engine.stepper.backward(loss)
    clipped = torch.cat([p.grad.flatten() for p in engine.params]).norm()
    assert clipped <= 1e-3 * ids.shape[0] * (1 + 1e-4)  # sum of per-example clipped gradients
    engine.stepper.step()
    assert len(engine.privacy_engine.accountant) == 1


# ---- the optimizer updates the model's own tensors; every tensor moves ------------------------


def test_optimizer_holding_other_tensors_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    built = _cpu_model(tiny_config(tiny_llama, tmp_path))
    copies = [p.detach().clone().requires_grad_(True) for _, p in built.trainable()]
    with pytest.raises(DPGuardError, match="does not hold the model's trainable tensors"):
        check_optimizer_params(torch.optim.SGD(copies, lr=0.1), built.model)
    check_optimizer_params(torch.optim.SGD([p for _, p in built.trainable()], lr=0.1), built.model)


def test_a_tensor_that_never_moves_stops_the_run(tiny_llama: Path, tmp_path: Path) -> None:
    # opacus#820 pattern: the model's tensor is replaced after the optimizer was built, so the
    # updates go elsewhere. Without DP noise nothing else would notice: the loss still falls.
    config = tiny_config(tiny_llama, tmp_path, privacy="none", optim={"steps": 4})
    built, plan, engine = tiny_engine(config, dp=False)
    layer = built.model.base_model.model.model.layers[0].self_attn.q_proj
    layer.lora_A["default"].weight = torch.nn.Parameter(
        layer.lora_A["default"].weight.detach().clone()
    )
    state = RunState()
    with pytest.raises(
        DPGuardError, match=r"1 of the trainable tensors did not change after step 2"
    ):
        run_loop(
            engine=engine,
            plan=plan,
            method="lora",
            device=torch.device("cpu"),
            state=state,
            validation=None,
            eval_every=100,
            early_stopping=None,
            rank=0,
            dp=False,
            progress=False,
        )
    assert state.step == 2


def test_moved_check_runs_once_at_its_step(tiny_llama: Path, tmp_path: Path) -> None:
    built = _cpu_model(tiny_config(tiny_llama, tmp_path))
    check = MovedCheck(built.model, after_step=1)
    assert check.check(built.model, 0) is False
    with pytest.raises(DPGuardError, match="did not change after step 1"):
        check.check(built.model, 1)


def test_parameters_off_the_device_are_refused(tiny_llama: Path, tmp_path: Path) -> None:
    built = _cpu_model(tiny_config(tiny_llama, tmp_path))
    check_on_device(built)
    layer = built.model.base_model.model.model.layers[1].mlp.up_proj
    layer.lora_A["default"].to("meta")
    with pytest.raises(DPGuardError, match="are not on cpu") as info:
        check_on_device(built)
    assert "before PEFT wraps it" in (info.value.why or "")


# ---- clipping mode: chosen and explained; ghost refused with tied parameters -------------------


def test_ghost_with_tied_parameters_is_refused(tiny_gpt2: Path, tmp_path: Path) -> None:
    config = tiny_config(
        tiny_gpt2, tmp_path, method={"name": "full"}, privacy={"clipping": "ghost"}
    )
    built = _cpu_model(config)
    with pytest.raises(DPGuardError, match=r"lm_head\.weight, transformer\.wte\.weight") as info:
        choose_clipping_mode(built.model, seq_len=32, requested="ghost")
    assert info.value.field == "privacy.clipping"
    mode, source, reason = choose_clipping_mode(built.model, seq_len=32, requested="auto")
    assert (mode, source) == ("hooks", "auto") and "tied" in reason


def test_clipping_mode_follows_layer_size_against_sequence_length(
    tiny_llama: Path, tmp_path: Path
) -> None:
    lora = _cpu_model(tiny_config(tiny_llama, tmp_path / "a"))
    mode, source, reason = choose_clipping_mode(lora.model, seq_len=48, requested="auto")
    assert (mode, source) == ("hooks", "auto") and "per-sample gradients (4,352 values" in reason
    full = _cpu_model(tiny_config(tiny_llama, tmp_path / "b", method={"name": "full"}))
    assert choose_clipping_mode(full.model, seq_len=2, requested="auto")[0] == "ghost"
    assert choose_clipping_mode(full.model, seq_len=48, requested="auto")[0] == "hooks"
    assert choose_clipping_mode(full.model, seq_len=2, requested="hooks")[1] == "config"


# ---- Poisson batches with no record still add noise and are accounted --------------------------


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_an_empty_poisson_batch_is_a_noise_only_step(
    tiny_llama: Path, tmp_path: Path, mode: str
) -> None:
    config = tiny_config(tiny_llama, tmp_path, privacy={"clipping": mode})
    _, _, engine = tiny_engine(config)
    before = [p.detach().clone() for p in engine.params]
    engine.stepper.empty_step(engine.params)
    assert len(engine.privacy_engine.accountant) == 1
    assert all(not torch.equal(a, p) for a, p in zip(before, engine.params, strict=True))
    engine.close()


# ---- EWC: the penalty gradient joins after Opacus privatised the batch gradient ----------------


def test_ewc_gradient_is_added_after_privatisation(tiny_llama: Path, tmp_path: Path) -> None:
    from finetrail.training.ewc import EWC

    config = tiny_config(tiny_llama, tmp_path, privacy={"max_grad_norm": 1e-4})
    built = _cpu_model(config)
    params = built.trainable()
    ewc = EWC(params=params, fisher={n: torch.ones_like(p) for n, p in params}, strength=3.0)
    with torch.no_grad():
        for _, p in params:
            p.add_(0.5)  # away from the anchor
    seen: dict[str, object] = {}

    def post() -> None:
        seen["accounted"] = len(engine.privacy_engine.accountant)
        before = [p.grad.clone() for _, p in params]
        ewc.add_gradient()
        seen["added"] = [p.grad - b for (_, p), b in zip(params, before, strict=True)]

    from torch.utils.data import TensorDataset

    from finetrail.training.engine import build_engine, plan_run

    ids = torch.randint(3, 100, (16, 12))
    plan = plan_run(
        config, sampled_records=16, private_records=16, world_size=1, seq_len=12, model=built.model
    )
    engine = build_engine(
        config,
        model=built.model,
        plan=plan,
        dataset=TensorDataset(ids, torch.ones_like(ids)),
        distributed=False,
        post_privatise=post,
    )
    ids, mask = first_batch(engine)
    loss = engine.stepper.loss(engine.model(**model_inputs(ids, mask, "lora")).logits, ids, mask)
    engine.stepper.backward(loss)
    engine.stepper.step()
    assert seen["accounted"] == 1  # the accountant (last act of privatisation) had run
    for added in seen["added"]:  # type: ignore[attr-defined]
        # the full penalty gradient, neither clipped to 1e-4 nor divided by the batch size
        assert torch.allclose(added, torch.full_like(added, 1.5), atol=1e-5)
    engine.close()


def test_ewc_fisher_comes_from_per_example_gradients(tiny_llama: Path, tmp_path: Path) -> None:
    from finetrail.training.ewc import EWC

    built = _cpu_model(tiny_config(tiny_llama, tmp_path))
    ids = torch.randint(3, 100, (4, 10))
    ewc = EWC.estimate(
        model=built.model,
        method="lora",
        params=built.trainable(),
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        strength=1.0,
    )
    a = [f for n, f in ewc.fisher.items() if "lora_A" in n]
    b = [f for n, f in ewc.fisher.items() if "lora_B" in n]
    assert all(float(f.abs().max()) == 0.0 for f in a)  # B starts at zero: A has no gradient yet
    assert all(float(f.min()) >= 0.0 for f in b) and any(float(f.max()) > 0 for f in b)
    assert ewc.penalty() == 0.0
