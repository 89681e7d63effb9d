"""Training runs on the tiny models: each method with DP and without, the evidence it writes,
MLflow (SQLite in the workspace), interruptions, early stopping, EWC and mixing, the loader."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from finetrail.errors import ConfigError, IntegrityError
from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.io import sha256_file
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace
from finetrail.training import train
from finetrail.training.accounting import epsilon_prv, epsilon_rdp
from tests.support.tiny_training import (
    base_config,
    make_texts,
    tiny_model,
    write_config,
    write_jsonl,
)

pytestmark = pytest.mark.slow

METHODS = {
    "lora": {"name": "lora", "rank": 4, "alpha": 8, "target_modules": "all-linear"},
    "prefix": {"name": "prefix", "num_virtual_tokens": 4},
    "ia3": {"name": "ia3"},
    "full": {"name": "full"},
}


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


def _ws(tmp_path: Path, name: str = "ws") -> Workspace:
    return Workspace.init(
        tmp_path / name, model="support-assistant", version="1.0.0", owner="alice"
    )


def _config(tmp_path: Path, base: Path, **sections: object) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return write_config(tmp_path / "train.yaml", base_config(base, data, **sections))


@pytest.mark.parametrize("private", [True, False], ids=["dp", "none"])
@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_trains_and_the_evidence_verifies(
    tiny_llama: Path, tmp_path: Path, method: str, private: bool
) -> None:
    cfg = _config(
        tmp_path, tiny_llama, method=METHODS[method], **({} if private else {"privacy": "none"})
    )
    ws = _ws(tmp_path)
    rec = train(config=cfg, workspace=ws, actor="bob")

    assert rec.completed and rec.status == "completed" and rec.method == method
    assert rec.adapter is not None
    assert sha256_file(ws.root / rec.adapter.path) == rec.adapter.sha256
    assert rec.adapter.kind == ("full_weights" if method == "full" else "peft_adapter")
    assert TrainingEvidence.read(ws.root / "evidence/training.json") == rec
    assert verify_workspace(ws.root).ok
    train_file = tmp_path / "data/train.jsonl"
    assert [(d.role, d.sha256) for d in rec.datasets] == [
        ("train", sha256_file(train_file)),
        ("validation", sha256_file(tmp_path / "data/val.jsonl")),
    ]
    if method == "full":
        assert rec.trainable_parameters == rec.total_parameters
    else:
        assert 0 < rec.trainable_parameters < rec.total_parameters / 2
    assert rec.base_model.weights_sha256 == sha256_file(tiny_llama / "model.safetensors")
    assert rec.compute.tokens > 0 and rec.compute.flops > 0 and len(rec.val_loss) >= 1

    dp = rec.dp
    assert dp.steps == 6
    if private:
        q = 1 / math.ceil(48 / 8)
        assert dp.enabled and dp.accountant == "prv" and dp.sample_rate == pytest.approx(q)
        assert dp.epsilon == epsilon_prv(noise_multiplier=1.0, sample_rate=q, steps=6, delta=1e-3)
        assert dp.epsilon_rdp == pytest.approx(
            epsilon_rdp(noise_multiplier=1.0, sample_rate=q, steps=6, delta=1e-3)
        )
        assert dp.clipping_mode == "hooks" and dp.clipping_mode_source == "auto"
        assert dp.clipping_mode_reason and "per-sample gradients" in dp.clipping_mode_reason
        assert dp.guarantee.startswith(f"({dp.epsilon:.4g}, 0.001)-DP at the record level, PRV")
        assert dp.poisson_sampling and dp.epsilon_per_step[-1].step == 6
    else:
        assert not dp.enabled and dp.epsilon is None and dp.accountant is None
        assert dp.guarantee.startswith("none: no differential-privacy guarantee")

    from finetrail.training.loading import load_trained

    loaded = load_trained(ws.root, device="cpu")
    assert loaded.adapter_sha256 == rec.adapter.sha256 and loaded.method == method
    assert not loaded.model.training and not loaded.base_model.training
    import torch

    ids = loaded.tokenizer(["Refund for order 123 please."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        tuned = loaded.model(input_ids=ids).logits[:, -ids.shape[1] :]
        base = loaded.base_model(input_ids=ids).logits
    assert not torch.allclose(tuned, base)  # the trained weights are the ones loaded


def test_cli_train_with_check_dp_tracks_the_run_in_mlflow(
    tiny_llama: Path,
    tmp_path: Path,
    run_cli,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = _config(tmp_path, tiny_llama, tracking={"mlflow": True})
    ws = _ws(tmp_path)
    code, out, err = run_cli(
        "train", str(cfg), "--workspace", str(ws.root), "--check-dp", "--progress"
    )
    assert code == 0, err
    rec = TrainingEvidence.read(ws.root / "evidence/training.json")
    assert rec.dp.check is not None and rec.dp.check.passed
    assert rec.dp.check.max_relative_error <= 1e-5
    assert (
        f"epsilon={rec.dp.epsilon:.4g} (PRV; RDP" in out and "--check-dp max relative error" in out
    )
    assert "train: 100%" in err and "eps(rdp)=" in err  # the progress bar
    assert verify_workspace(ws.root).ok  # mlflow.db and mlflow-artifacts/ are not evidence

    from mlflow import MlflowClient

    uri = f"sqlite:///{(ws.root / 'mlflow.db').resolve()}"
    assert rec.mlflow.tracking_uri == uri and rec.mlflow.run_id
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(rec.mlflow.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["config.optim.batch_size"] == "8"
    assert run.data.params["plan.clipping_mode"] == "hooks"
    assert len(client.get_metric_history(run.info.run_id, "epsilon_rdp")) == 6
    assert 1 <= len(client.get_metric_history(run.info.run_id, "train_loss")) <= 6
    prv = client.get_metric_history(run.info.run_id, "epsilon")
    assert max(prv, key=lambda m: m.step).value == pytest.approx(rec.dp.epsilon)
    inputs = {
        i.tags[0].value if i.tags[0].key == "mlflow.data.context" else "": i
        for i in run.inputs.dataset_inputs
    }
    tags = {t.key: t.value for t in inputs["train"].tags}
    assert tags["sha256"] == rec.datasets[0].sha256 and len(tags["sha256"]) == 64
    assert inputs["train"].dataset.digest == rec.datasets[0].sha256[:36]
    assert "text" not in inputs["train"].dataset.source  # a source URI, no records
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert "adapter/adapter_model.safetensors" in artifacts
    (tmp_path / "dl").mkdir()
    local = client.download_artifacts(
        run.info.run_id, "evidence/training.json", str(tmp_path / "dl")
    )
    logged = json.loads(Path(local).read_text(encoding="utf-8"))
    assert logged == rec.to_json_dict()
    assert rec.adapter is not None
    version = client.get_model_version("support-assistant", rec.mlflow.model_version or "")
    assert version.run_id == run.info.run_id and version.tags["sha256"] == rec.adapter.sha256


class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "status"), [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")]
)
def test_interrupted_or_crashed_runs_never_claim_completion(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: type, status: str
) -> None:
    from finetrail.training import dp_guards
    from finetrail.training.loading import load_trained

    cfg = _config(tmp_path, tiny_llama)
    ws = _ws(tmp_path)
    original = dp_guards.Stepper.step
    calls = {"n": 0}

    def step(self):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise exc("stop")
        original(self)

    monkeypatch.setattr(dp_guards.Stepper, "step", step)
    with pytest.raises(exc):
        train(config=cfg, workspace=ws)
    rec = TrainingEvidence.read(ws.root / "evidence/training.json")
    assert not rec.completed and rec.status == status and rec.adapter is None
    assert rec.dp.steps == 2 and rec.dp.epsilon is not None and rec.dp.epsilon > 0  # budget spent
    assert not (ws.root / "artifacts/adapter").exists()
    assert verify_workspace(ws.root).ok
    with pytest.raises(IntegrityError, match="did not complete"):
        load_trained(ws.root)
    monkeypatch.setattr(dp_guards.Stepper, "step", original)
    assert train(config=cfg, workspace=ws).completed  # a new run may replace an unfinished one
    with pytest.raises(ConfigError, match="already holds a completed training run"):
        train(config=cfg, workspace=ws)


def test_ctrl_c_in_the_cli_exits_130(
    tiny_llama: Path,
    tmp_path: Path,
    run_cli,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from finetrail.training import dp_guards

    def step(self):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(dp_guards.Stepper, "step", step)
    ws = _ws(tmp_path)
    code, _, err = run_cli(
        "train", str(_config(tmp_path, tiny_llama)), "--workspace", str(ws.root), "--no-progress"
    )
    assert code == 130 and ("aborted" in err or "interrupted" in err)
    assert TrainingEvidence.read(ws.root / "evidence/training.json").status == "interrupted"


def test_early_stopping_on_validation_loss_restores_the_best_weights(
    tiny_llama: Path, tmp_path: Path
) -> None:
    # min_delta larger than any change: only the first evaluation counts as an improvement.
    cfg = _config(
        tmp_path,
        tiny_llama,
        privacy="none",
        optim={"steps": 20, "eval_every": 2, "early_stopping": {"patience": 2, "min_delta": 10.0}},
    )
    rec = train(config=cfg, workspace=_ws(tmp_path))
    es = rec.early_stopping
    assert es.enabled and es.stopped_early and es.restored_best and es.best_step == 2
    assert rec.dp.steps == 6 and rec.val_loss_steps == (2, 4, 6) and len(rec.val_loss) == 3
    assert es.best_val_loss == rec.val_loss[0]


def test_generic_mixing_ewc_registered_data_and_the_compute_test(
    tiny_llama: Path, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_llama, base)
    (base / "training_compute.json").write_text(json.dumps({"flops": 3.0e6, "tokens": 10}))
    data = tmp_path / "data"
    data.mkdir()
    generic = write_jsonl(data / "generic.jsonl", make_texts(30, seed=11))
    cfg = write_config(
        tmp_path / "train.yaml",
        base_config(
            base,
            data,
            data={"generic": str(generic), "generic_fraction": 0.2, "unregistered": "refuse"},
            optim={"ewc": {"strength": 5.0, "fisher_samples": 6}},
            privacy={"target_epsilon": 3.0, "noise_multiplier": None},
            cost={"price_per_device_hour": 2.0, "currency": "EUR"},
        ),
    )
    ws = _ws(tmp_path)
    for f in ("train.jsonl", "val.jsonl", "generic.jsonl"):
        sha = sha256_file(data / f)
        ws.write_bytes(
            f"evidence/datasets/{sha}.json", b"{}\n", event="dataset.registered", actor="t"
        )
    rec = train(config=cfg, workspace=ws)
    by_role = {d.role: d for d in rec.datasets}
    assert all(
        d.registered and d.record == f"evidence/datasets/{d.sha256}.json" for d in rec.datasets
    )
    k = round(0.2 / 0.8 * 48)
    assert by_role["generic"].records_used == k and rec.dp.sampled_records == 48 + k
    assert rec.dp.private_records == 48
    assert rec.dp.noise_multiplier_source == "target_epsilon" and rec.dp.target_epsilon == 3.0
    assert rec.dp.epsilon is not None and 2.9 <= rec.dp.epsilon <= 3.0  # calibrated by PRV
    assert rec.ewc.enabled and rec.ewc.fisher_dataset_sha256 == by_role["generic"].sha256
    assert rec.ewc.applied and "after Opacus clipped and noised" in rec.ewc.applied
    act = rec.eu_ai_act
    assert act.threshold_basis == "one_third_of_base_model_training_compute"
    assert act.modification_threshold_flops == pytest.approx(1.0e6)
    assert act.substantial_modification and act.modification_flops == rec.compute.flops > 1.0e6
    assert rec.base_model.training_flops_source == "training_compute.json in the base model folder"
    assert rec.cost.currency == "EUR"
    assert rec.cost.estimate == pytest.approx(rec.compute.device_hours * 2.0)


def test_the_loader_checks_every_digest(tiny_llama: Path, tmp_path: Path) -> None:
    from finetrail.training.loading import BaseModelMismatch, load_trained

    base = tmp_path / "base"
    shutil.copytree(tiny_llama, base)
    cfg = _config(tmp_path, base, optim={"steps": 2})
    ws = _ws(tmp_path)
    rec = train(config=cfg, workspace=ws)
    assert rec.adapter is not None
    adapter = ws.root / rec.adapter.path
    good = adapter.read_bytes()
    adapter.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(IntegrityError, match="sha256 differs from the evidence"):
        load_trained(ws.root)
    adapter.write_bytes(good)
    weights = base / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")
    # another base model is bad input (exit 2), refused unless allowed
    with pytest.raises(BaseModelMismatch, match=r"base model .* sha256 differs") as caught:
        load_trained(ws.root)
    assert caught.value.exit_code == 2


def test_fallback_thresholds_of_the_modification_test() -> None:
    from finetrail.governance.evidence.training import BaseModelFingerprint
    from finetrail.training.evidence import eu_ai_act_record

    fp = BaseModelFingerprint(
        path="b",
        model_type="llama",
        parameters=1,
        config_sha256="0" * 64,
        weights_sha256="0" * 64,
        tokenizer_sha256="0" * 64,
    )
    gpai = eu_ai_act_record(flops=1e22, base=fp)
    assert gpai.threshold_basis == "fallback_one_third_of_gpai_threshold"
    assert (
        gpai.modification_threshold_flops == pytest.approx(1e23 / 3)
        and not gpai.substantial_modification
    )
    sr = eu_ai_act_record(flops=4e24, base=fp.model_copy(update={"systemic_risk": True}))
    assert sr.threshold_basis == "fallback_one_third_of_systemic_risk_threshold"
    assert sr.substantial_modification and sr.ratio_to_threshold == pytest.approx(1.2)


def test_nproc_needs_privacy_settings(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="runs Opacus DPDDP and needs privacy settings"):
        train(config=_config(tmp_path, tiny_llama, privacy="none"), workspace=_ws(tmp_path))
