"""Saving the trained weights (safetensors) and adding them to the workspace as artifacts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from finetrail.governance.evidence.training import AdapterRef
from finetrail.governance.io import sha256_file

__all__ = ["ADAPTER_DIR", "add_to_workspace", "save_weights"]

ADAPTER_DIR = "artifacts/adapter"
PEFT_WEIGHTS = "adapter_model.safetensors"
FULL_WEIGHTS = "model.safetensors"
KEEP = (PEFT_WEIGHTS, "adapter_config.json", FULL_WEIGHTS, "config.json", "generation_config.json")


def save_weights(model: Any, method: str, out: Path) -> tuple[str, str]:
    """Write the trained weights to ``out``; returns (main weights file name, kind)."""
    from finetrail.training.dp_guards import release_for_saving

    release_for_saving(model)
    out.mkdir(parents=True, exist_ok=True)
    from finetrail.training.model import quiet_loading

    with quiet_loading():
        model.save_pretrained(str(out), safe_serialization=True)
    for p in out.iterdir():  # peft also writes a README model card; the dossier has its own
        if p.name not in KEEP:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    if method == "full":
        return FULL_WEIGHTS, "full_weights"
    return PEFT_WEIGHTS, "peft_adapter"


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
