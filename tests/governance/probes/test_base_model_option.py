"""``finetrail probe --base-model PATH``: the probes take the base model's folder explicitly; one
whose digests differ from the training evidence is refused (exit 2, no traceback) unless
``--allow-base-mismatch``; every record states which base model was used. Real pipeline: a tiny
model trained by ``finetrail train`` and loaded by ``load_trained``."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from finetrail.cli import main
from finetrail.governance.evidence.probes import ExposureEvidence
from finetrail.governance.evidence.registry import probe_location
from finetrail.governance.workspace import Workspace
from finetrail.training import train
from tests.support.tiny_training import (
    base_config,
    make_texts,
    tiny_model,
    write_config,
    write_jsonl,
)

FAST = "exposure:\n  samples: 50\n  max_exact_candidates: 1000\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("probe-base")
    base = tmp / "base"
    shutil.copytree(tiny_model("llama", tmp_path_factory), base)
    ws = Workspace.init(tmp / "ws", model="m", version="1", owner="alice")
    source = write_jsonl(tmp / "source.jsonl", make_texts(40, seed=1))
    planted = tmp / "planted.jsonl"
    args = ["canaries", "plant", str(ws.root), "--data", str(source), "--out", str(planted)]
    assert main([*args, "--m", "4", "--repetitions", "1", "--seed", "3", "--actor", "a"]) == 0
    cfg = base_config(base, tmp, optim={"steps": 2})
    cfg["data"]["train"] = str(planted)
    train(config=write_config(tmp / "train.yaml", cfg), workspace=ws)
    config = tmp / "probe.yaml"
    config.write_text(FAST, encoding="utf-8")
    return SimpleNamespace(root=ws.root, base=base, config=config, tmp=tmp)


def _probe(t: SimpleNamespace, *extra: str) -> int:
    args = ["probe", str(t.root), "--only", "exposure", "--config", str(t.config)]
    return main([*args, "--no-progress", "--actor", "a", *extra])


def _record(t: SimpleNamespace) -> ExposureEvidence:
    return ExposureEvidence.read(t.root / probe_location("exposure"))


def test_the_record_states_the_base_model_used(
    trained: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _probe(trained) == 0
    base = _record(trained).subject.base_model
    assert base is not None
    assert (base.source, base.path, base.matches_training) == (
        "training_evidence",
        str(trained.base),
        True,
    )
    assert _record(trained).calibration == "base_model_reference"

    elsewhere = trained.tmp / "models" / "same-base"
    shutil.copytree(trained.base, elsewhere)
    capsys.readouterr()
    assert _probe(trained, "--base-model", str(elsewhere)) == 0
    out = capsys.readouterr().out
    assert f"base model: {elsewhere} (digests match the training evidence)" in out
    base = _record(trained).subject.base_model
    assert base is not None and base.name == "base"
    assert (base.source, base.path, base.matches_training, base.mismatches) == (
        "argument",
        str(elsewhere),
        True,
        (),
    )


def test_a_base_model_that_is_not_the_trained_one_is_refused(
    trained: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    other = trained.tmp / "models" / "other-base"
    shutil.copytree(trained.base, other)
    config = json.loads((other / "config.json").read_text("utf-8"))
    config["rms_norm_eps"] = 1e-5  # another model, same architecture and weights
    (other / "config.json").write_text(json.dumps(config), "utf-8")
    before = (trained.root / probe_location("exposure")).read_bytes()
    capsys.readouterr()

    assert _probe(trained, "--base-model", str(other)) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: {other}: field 'training.base_model': the base model at {other} is not the one "
        f"training used: base model {other}/config.json: sha256 differs from "
        "training.base_model.config\n"
    )
    assert "--allow-base-mismatch" in err and "Traceback" not in err
    assert (trained.root / probe_location("exposure")).read_bytes() == before  # nothing written

    assert _probe(trained, "--base-model", str(other), "--allow-base-mismatch") == 0
    err = capsys.readouterr().err
    assert f"warning: base model {other} differs from the one training used" in err
    base = _record(trained).subject.base_model
    assert base is not None
    assert (base.source, base.matches_training) == ("argument", False)
    assert base.mismatches == (
        f"base model {other}/config.json: sha256 differs from training.base_model.config",
    )


def test_a_missing_base_model_folder_exits_2(
    trained: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = trained.tmp / "nowhere"
    assert _probe(trained, "--base-model", str(missing)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}: the base model (base) is not at {missing}\n")
