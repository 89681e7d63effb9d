"""Portable artefacts: the adapter names its base model by name (never a local path), loads from
any folder given the base model, and the base model is identified by its digests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from finetrail.errors import InputError, IntegrityError
from finetrail.governance.workspace import Workspace
from finetrail.training import train
from finetrail.training.config import parse_config
from finetrail.training.loading import BaseModelMismatch
from finetrail.training.model import base_model_name, fingerprint_base_model
from tests.support.tiny_training import base_config, tiny_model, write_config


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model("llama", tmp_path_factory)


def _cfg(base: Path, tmp_path: Path, **sections: Any) -> Any:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return parse_config(base_config(base, data, **sections), source="test")


@pytest.mark.parametrize(
    ("given", "stated", "want"),
    [
        ("acme/support-7b", "Qwen/Qwen2.5-0.5B", ("acme/support-7b", "config: base_model.name")),
        (None, "Qwen/Qwen2.5-0.5B", ("Qwen/Qwen2.5-0.5B", "config.json _name_or_path")),
        (None, "gpt2", ("gpt2", "config.json _name_or_path")),
        (None, "/home/alice/models/base", ("base-folder", "base model folder name")),
        (None, "./models/base", ("base-folder", "base model folder name")),
        (None, "C:\\models\\base", ("base-folder", "base model folder name")),
        (None, "", ("base-folder", "base model folder name")),
        (None, None, ("base-folder", "base model folder name")),
    ],
)
def test_the_base_models_name_is_never_a_local_path(
    tmp_path: Path, given: str | None, stated: str | None, want: tuple[str, str]
) -> None:
    base = tmp_path / "base-folder"
    cfg = _cfg(base, tmp_path, base_model={"name": given} if given else {})
    model_cfg = {"model_type": "llama"} | ({"_name_or_path": stated} if stated is not None else {})
    assert base_model_name(cfg, model_cfg) == want


def test_pickled_checkpoints_are_refused(tiny_llama: Path, tmp_path: Path) -> None:
    base = tmp_path / "pickled"
    shutil.copytree(tiny_llama, base)
    (base / "model.safetensors").rename(base / "pytorch_model.bin")
    with pytest.raises(InputError, match=r"no safetensors weights \(only pickled checkpoints"):
        fingerprint_base_model(_cfg(base, tmp_path))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_trained_workspace_loads_from_another_place(
    tiny_llama: Path, tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from finetrail.training.loading import load_trained

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be fetched by name
    base = tmp_path / "machine-a" / "base"
    shutil.copytree(tiny_llama, base)
    methods = {"lora": {"name": "lora", "rank": 4, "target_modules": "all-linear"}}
    cfg = write_config(
        tmp_path / "train.yaml",
        base_config(
            base,
            tmp_path,
            method=methods.get(method, {"name": method}),
            base_model={"name": "acme/tiny-llama"},
            optim={"steps": 2},
        ),
    )
    ws = Workspace.init(tmp_path / "machine-a" / "ws", model="m", version="1", owner="alice")
    rec = train(config=cfg, workspace=ws)
    assert rec.base_model.name == "acme/tiny-llama"
    assert rec.base_model.name_source == "config: base_model.name"
    assert set(rec.base_model.weight_files) == {"model.safetensors"}
    assert rec.base_model.tokenizer_files and rec.base_model.config_sha256
    assert rec.adapter is not None and rec.adapter.format == "safetensors"
    adapter_dir = ws.root / Path(rec.adapter.path).parent
    assert all(p.suffix in {".json", ".safetensors"} for p in adapter_dir.iterdir())
    for p in adapter_dir.glob("*.json"):  # no file of the adapter names the training machine
        assert str(tmp_path) not in p.read_text(encoding="utf-8"), p.name
    if method == "lora":
        adapter_cfg = json.loads((adapter_dir / "adapter_config.json").read_text("utf-8"))
        assert adapter_cfg["base_model_name_or_path"] == "acme/tiny-llama"

    original = load_trained(ws.root, device="cpu")
    ids = original.tokenizer(["Refund for order 123"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want_logits = original.model(input_ids=ids).logits
        want_gen = original.model.generate(
            input_ids=ids, max_new_tokens=6, do_sample=False, pad_token_id=0
        )

    # another machine: both folders elsewhere, the originals gone
    other = tmp_path / "machine-b"
    shutil.copytree(ws.root, other / "copied-ws")
    shutil.copytree(base, other / "models" / "tiny")
    shutil.rmtree(tmp_path / "machine-a")
    with pytest.raises(InputError, match=r"the base model \(acme/tiny-llama\) is not at"):
        load_trained(other / "copied-ws", device="cpu")
    moved = load_trained(other / "copied-ws", device="cpu", base_model_path=other / "models/tiny")
    with torch.no_grad():
        assert torch.equal(moved.model(input_ids=ids).logits, want_logits)
        gen = moved.model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(gen, want_gen)

    # a different base model at that path is caught by digest, whatever its name
    (other / "models/tiny/config.json").write_text(
        (other / "models/tiny/config.json").read_text("utf-8") + " ", "utf-8"
    )
    with pytest.raises(BaseModelMismatch, match=r"config.json: sha256 differs") as caught:
        load_trained(other / "copied-ws", device="cpu", base_model_path=other / "models/tiny")
    assert caught.value.exit_code == 2
    allowed = load_trained(
        other / "copied-ws",
        device="cpu",
        base_model_path=other / "models/tiny",
        allow_base_mismatch=True,
    )
    assert allowed.base_source == "argument"
    assert allowed.base_mismatches == (
        f"base model {other / 'models/tiny'}/config.json: sha256 differs from "
        "training.base_model.config",
    )
    # the adapter's own files are integrity, whatever the base
    adapter_file = other / "copied-ws" / rec.adapter.path
    adapter_file.write_bytes(adapter_file.read_bytes() + b" ")
    with pytest.raises(IntegrityError, match=r"the adapter does not match the training evidence"):
        load_trained(
            other / "copied-ws", base_model_path=other / "models/tiny", allow_base_mismatch=True
        )
