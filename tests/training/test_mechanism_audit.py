"""The white-box mechanism audit: every planted bug is rejected, honest runs at epsilon 1, 4 and 8
are verified (the check fails both ways), its statistics hold their false-alarm rate, and its
record is written through the workspace and read back through the evidence store.

Each run is a tiny LoRA Llama (width 32, 2 layers) under Opacus, 20 steps; the noise generator is
seeded in the tests so an honest run cannot flake (a false alarm has probability 1e-3 otherwise).
"""

from __future__ import annotations

import contextlib
import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from finetrail.errors import DPGuardError
from finetrail.governance.evidence.mechanism import MechanismEvidence
from finetrail.training.loop import RunState, mechanism_claim, run_loop
from finetrail.training.mechanism_audit import (
    AuditSettings,
    MechanismAudit,
    gaussian_step_epsilon,
    noise_test,
    not_run,
    write_mechanism_evidence,
)
from finetrail.training.mechanism_bugs import PLANTED_BUGS, plant
from tests.support.tiny_training import tiny_config, tiny_engine, tiny_model

DELTA = 1e-5
CLIP = 0.01  # small enough that every example is clipped: the clipping check has power
# calibrate_noise(target_epsilon=e, delta=1e-5, sample_rate=1/6, steps=20) (48 records, batch 8;
# PRV epsilon of the rounded value within 0.003 of e); calibrating in each test costs seconds
SIGMA = {1.0: 3.184, 4.0: 1.216, 8.0: 0.828}


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


def _engine(base: Path, tmp: Path, *, epsilon: float, mode: str, seed: int) -> tuple[Any, ...]:
    config = tiny_config(
        base,
        tmp,
        privacy={
            "noise_multiplier": SIGMA[epsilon],
            "delta": DELTA,
            "max_grad_norm": CLIP,
            "clipping": mode,
        },
        optim={"batch_size": 8, "steps": 20, "learning_rate": 0.01},
    )
    built, plan, engine = tiny_engine(config)
    engine.optimizer.generator = torch.Generator().manual_seed(seed)
    claim = mechanism_claim(plan, max_grad_norm=CLIP, delta=DELTA)
    return built, plan, engine, claim


def _bare_loop(built: Any, plan: Any, engine: Any, audit: MechanismAudit) -> MechanismEvidence:
    """Opacus steps with none of finetrail's own guards: the audit alone must catch the bug."""
    from finetrail.training.dp_guards import model_inputs, quiet_hook_warning, sequence_loss

    opt = engine.optimizer
    audit.attach()
    steps = 0
    try:
        while steps < plan.total_steps:
            for ids, mask in engine.loader:
                if steps >= plan.total_steps:
                    break
                if ids.shape[0] == 0:
                    for p in engine.params:
                        if plan.clipping_mode == "hooks":
                            p.grad_sample = torch.zeros((0, *p.shape))
                        else:
                            p.grad = torch.zeros_like(p)
                else:
                    length = int(mask.sum(1).max())
                    ids, mask = ids[:, :length], mask[:, :length]
                    logits = engine.model(**model_inputs(ids, mask, built.method)).logits
                    if plan.clipping_mode == "ghost":
                        loss = engine.stepper.criterion(logits, ids, mask)
                    else:
                        loss = sequence_loss(logits, ids, mask).mean()
                    with quiet_hook_warning():
                        loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                steps += 1
    finally:
        audit.detach()
    return audit.evidence(steps=steps, loop_seconds=1.0)


def _audit(engine: Any, plan: Any, claim: Any) -> MechanismAudit:
    return MechanismAudit(
        optimizer=engine.optimizer,
        claim=claim,
        mode=plan.clipping_mode,
        hooks=engine.hooks,
        names={id(p): n for n, p in engine.inner.named_parameters()},
        settings=AuditSettings(max_fraction=1.0),  # observe every step
    )


# test which planted bug is expected to fail which part of the audit
CAUGHT_BY = {
    "noise_down_10": "noise",
    "noise_down_1e4": "noise",
    "sigma_overclaimed": "noise",
    "clipping_disabled": "clipping",
    "noise_cancelled": "noise",
    "normalisation_actual_batch": "normalisation",
    "normalisation_scaled": "normalisation",
}


def test_every_planted_bug_has_a_case() -> None:
    assert set(CAUGHT_BY) == set(PLANTED_BUGS)


@pytest.mark.parametrize("bug", sorted(PLANTED_BUGS))
def test_planted_bug_is_rejected(bug: str, tiny_llama: Path, tmp_path: Path) -> None:
    built, plan, engine, claim = _engine(tiny_llama, tmp_path, epsilon=4.0, mode="hooks", seed=1)
    plant(engine.optimizer, bug, mode=plan.clipping_mode, hooks=engine.hooks)
    record = _bare_loop(built, plan, engine, _audit(engine, plan, claim))
    assert record.verdict == "rejected", record.reasons
    part = getattr(record, CAUGHT_BY[bug])
    assert part.verdict == "rejected", (bug, part.reason)
    assert any(r.startswith(f"{CAUGHT_BY[bug]}:") for r in record.reasons)


@pytest.mark.parametrize("epsilon", [1.0, 4.0, 8.0])
def test_honest_run_is_verified(epsilon: float, tiny_llama: Path, tmp_path: Path) -> None:
    built, plan, engine, claim = _engine(
        tiny_llama, tmp_path, epsilon=epsilon, mode="hooks", seed=2
    )
    record = _bare_loop(built, plan, engine, _audit(engine, plan, claim))
    assert record.verdict == "verified", record.reasons
    assert record.reasons == ()
    noise, clipping, norm = record.noise, record.clipping, record.normalisation
    assert noise is not None and clipping is not None and norm is not None
    assert noise.steps == 20 and noise.observations == 20 * noise.tensors * 32
    assert noise.variance_ratio_interval is not None
    assert noise.variance_ratio_interval.low < 1 < noise.variance_ratio_interval.high
    assert noise.p_value is not None and noise.p_value >= 5e-4
    assert clipping.examples_above_bound > 0  # the clipping check had power
    assert clipping.synthetic_canary is not None
    assert clipping.synthetic_canary.contribution_norm == pytest.approx(CLIP, rel=1e-4)
    assert norm.applied_divisor == pytest.approx(plan.expected_batch_size)
    assert record.bound is not None and record.bound.verdict != "contradicted"
    assert record.bound.epsilon_lower_bound <= record.bound.ceiling


@pytest.mark.parametrize(
    ("bug", "verdict"),
    [(None, "verified"), ("clipping_disabled", "rejected"), ("noise_down_10", "rejected")],
)
def test_ghost_clipping_is_audited(
    bug: str | None, verdict: str, tiny_llama: Path, tmp_path: Path
) -> None:
    built, plan, engine, claim = _engine(tiny_llama, tmp_path, epsilon=4.0, mode="ghost", seed=3)
    if bug:
        plant(engine.optimizer, bug, mode="ghost", hooks=engine.hooks)
    record = _bare_loop(built, plan, engine, _audit(engine, plan, claim))
    assert record.verdict == verdict, record.reasons
    assert record.clipping_mode == "ghost"


def _run_loop(built: Any, plan: Any, engine: Any, claim: Any, state: RunState) -> RunState:
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
        dp=True,
        progress=False,
        mechanism=claim,
    )
    return state


def test_run_loop_audits_by_default_and_the_record_round_trips(
    tiny_llama: Path, tmp_path: Path
) -> None:
    from finetrail.governance.evidence.store import EvidenceSet
    from finetrail.governance.workspace import Workspace

    built, plan, engine, claim = _engine(tiny_llama, tmp_path, epsilon=4.0, mode="hooks", seed=4)
    state = _run_loop(built, plan, engine, claim, RunState())
    record = state.mechanism
    assert record is not None and record.verdict == "verified", record and record.reasons
    assert record.cost is not None and record.cost.steps == 20
    assert record.cost.steps_observed >= 3  # the first steps always; then within the budget
    assert MechanismEvidence.parse(record.to_json_dict()) == record
    # the optimizer is left as it was found
    assert "add_noise" not in vars(engine.optimizer)
    assert "step" not in vars(engine.optimizer.original_optimizer)

    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="team")
    write_mechanism_evidence(ws, record, actor="tester")
    assert EvidenceSet(ws.root).one("mechanism", MechanismEvidence) == record


@pytest.mark.parametrize("bug", ["clipping_disabled", "noise_cancelled", "noise_down_1e4"])
def test_run_loop_records_a_rejection_even_when_a_guard_stops_the_run(
    bug: str, tiny_llama: Path, tmp_path: Path
) -> None:
    built, plan, engine, claim = _engine(tiny_llama, tmp_path, epsilon=4.0, mode="hooks", seed=5)
    plant(engine.optimizer, bug, mode="hooks", hooks=engine.hooks)
    state = RunState()
    # finetrail's first-step and moved-tensor guards stop two of these runs
    with contextlib.suppress(DPGuardError):
        _run_loop(built, plan, engine, claim, state)
    record = state.mechanism
    assert record is not None and record.verdict == "rejected", record


def test_not_run_record_fails_closed() -> None:
    record = not_run("no DP")
    assert record.verdict == "not_run" and not record.ran and record.reasons == ("no DP",)


# ---- the statistics alone ---------------------------------------------------------------------


def _gaussian_test(std: float, seed: int, *, tensors: int = 8, n: int = 400) -> Any:
    rng = random.Random(seed)
    sumsq, sums = [], []
    for _ in range(tensors):
        z = [rng.gauss(0.0, std) for _ in range(n)]
        sumsq.append(math.fsum(v * v for v in z))
        sums.append(math.fsum(z))
    return noise_test(
        sumsq=sumsq,
        sums=sums,
        counts=[n] * tensors,
        names=[f"t{i}" for i in range(tensors)],
        alpha=1e-3,
        claimed_std=1.0,
        steps=n,
        coordinates_per_tensor=1,
    )


def test_noise_test_false_alarms_stay_near_its_rate() -> None:
    # 300 honest runs at alpha 1e-3: expected 0.3 false alarms; P[>= 3] is about 0.004
    alarms = sum(_gaussian_test(1.0, seed).verdict == "rejected" for seed in range(300))
    assert alarms <= 2


@pytest.mark.parametrize("std", [0.1, 0.9, 1.1, 10.0])
def test_noise_test_rejects_too_little_and_too_much_noise(std: float) -> None:
    # 3,200 observations resolve a 10% change of the standard deviation (21% of the variance)
    out = _gaussian_test(std, 7)
    assert out.verdict == "rejected", out.reason
    assert ("smaller" if std < 1 else "larger") in out.reason


def test_noise_test_finds_one_tensor_without_noise() -> None:
    out = noise_test(
        sumsq=[400.0] * 7 + [0.0],
        sums=[0.0] * 8,
        counts=[400] * 8,
        names=[f"t{i}" for i in range(8)],
        alpha=1e-3,
        claimed_std=1.0,
        steps=400,
        coordinates_per_tensor=1,
    )
    assert out.verdict == "rejected" and out.worst_tensor == "t7"
    assert "tensor t7" in out.reason


@pytest.mark.parametrize("sigma", [0.5, 0.7, 1.0, 2.0])
def test_gaussian_step_epsilon_matches_dp_accounting(sigma: float) -> None:
    from dp_accounting.pld import privacy_loss_distribution as pld

    ref = pld.from_gaussian_mechanism(
        standard_deviation=sigma, value_discretization_interval=1e-4
    ).get_epsilon_for_delta(DELTA)
    assert gaussian_step_epsilon(sigma, DELTA) == pytest.approx(ref, rel=2e-3)
