"""Saving the trained weights (safetensors) and adding them to the workspace as artifacts.

The saved folder is portable: ``adapter_config.json`` names the base model by
``base_model.name`` (a Hub id or a user-given name, never the training machine's path), and a
full fine-tune's ``config.json`` carries no ``_name_or_path``; the loader is given the base
model's folder and checks it against the digests in the evidence.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from finetrail.governance.evidence.training import AdapterRef
from finetrail.governance.io import sha256_file

__all__ = ["ADAPTER_DIR", "add_to_workspace", "check_shards", "name_base_model", "save_weights"]

ADAPTER_DIR = "artifacts/adapter"
PEFT_WEIGHTS = "adapter_model.safetensors"
FULL_WEIGHTS = "model.safetensors"
FULL_INDEX = "model.safetensors.index.json"  # a sharded full fine-tune: names every shard
KEEP = (
    PEFT_WEIGHTS,
    "adapter_config.json",
    FULL_WEIGHTS,
    FULL_INDEX,
    "config.json",
    "generation_config.json",
)
SHARD = re.compile(r"^model-[0-9]{5}-of-[0-9]{5}\.safetensors$")


def save_weights(
    model: Any, method: str, out: Path, *, base_model_name: str, max_shard_size: str | None = None
) -> tuple[str, str]:
    """Write the trained weights to ``out``; returns (main weights file name, kind).

    A full fine-tune larger than ``max_shard_size`` is written as shards plus
    ``model.safetensors.index.json`` (the main file then); the evidence's ``adapter.files``
    records every file's digest, shards included, and :func:`check_shards` refuses an index
    naming a shard that was not written."""
    from finetrail.training.dp_guards import release_for_saving

    release_for_saving(model)
    out.mkdir(parents=True, exist_ok=True)
    from finetrail.training.model import quiet_loading

    kwargs: dict[str, Any] = {"safe_serialization": True}
    if method == "full" and max_shard_size is not None:
        kwargs["max_shard_size"] = max_shard_size
    with quiet_loading():
        model.save_pretrained(str(out), **kwargs)
    for p in out.iterdir():  # peft also writes a README model card; the dossier has its own
        if p.name not in KEEP and not SHARD.match(p.name):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    name_base_model(out, base_model_name)
    if method == "full":
        if (out / FULL_INDEX).is_file():
            check_shards(out)
            return FULL_INDEX, "full_weights"
        return FULL_WEIGHTS, "full_weights"
    return PEFT_WEIGHTS, "peft_adapter"


def check_shards(folder: Path) -> list[str]:
    """The shards a sharded checkpoint's index names; every one must be in ``folder``."""
    from finetrail.errors import IntegrityError

    index = json.loads((folder / FULL_INDEX).read_text(encoding="utf-8"))
    shards = sorted(set(index.get("weight_map", {}).values()))
    missing = [s for s in shards if not (folder / s).is_file() or not SHARD.match(s)]
    if not shards or missing:
        raise IntegrityError(
            f"the sharded checkpoint's index names shards that were not written: {missing}",
            path=str(folder / FULL_INDEX),
            fix="report this with the transformers version",
        )
    return shards


def name_base_model(folder: Path, name: str) -> None:
    """Replace the local path peft and transformers record with the base model's name."""
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file():
        data = json.loads(adapter_config.read_text(encoding="utf-8"))
        data["base_model_name_or_path"] = name
        adapter_config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", "utf-8")
    model_config = folder / "config.json"
    if model_config.is_file():
        data = json.loads(model_config.read_text(encoding="utf-8"))
        if "_name_or_path" in data:
            data["_name_or_path"] = name
            model_config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", "utf-8")


def add_to_workspace(ws: Any, folder: Path, main: str, kind: str, *, actor: str) -> AdapterRef:
    """Copy ``folder`` under ``artifacts/adapter/`` (ledger events, manifest) and describe it."""
    ws.add_artifact(
        folder, ADAPTER_DIR, event="artifact.added", actor=actor, extra={"role": "adapter"}
    )
    files = {
        f"{ADAPTER_DIR}/{p.name}": sha256_file(ws.root / ADAPTER_DIR / p.name)
        for p in sorted(folder.iterdir())
        if p.is_file()
    }
    rel = f"{ADAPTER_DIR}/{main}"
    return AdapterRef.model_validate(
        {"sha256": files[rel], "path": rel, "kind": kind, "files": files}
    )
