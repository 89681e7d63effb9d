"""`verify`, `gate` (registry configured), `--help` and the package import stay light: no torch, transformers, mlflow, presidio."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = (
    "torch",
    "transformers",
    "mlflow",
    "presidio_analyzer",
    "presidio_anonymizer",
    "peft",
    "opacus",
)


def _modules_after(code: str) -> set[str]:
    script = textwrap.dedent(code) + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    import json

    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import finetrail, finetrail.governance, finetrail.reports, finetrail.training",
        "from finetrail.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    ],
)
def test_imports_are_light(code: str) -> None:
    loaded = _modules_after(code)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_verify_command_is_light(sample_workspace) -> None:  # type: ignore[no-untyped-def]
    root: Path = sample_workspace.root
    loaded = _modules_after(
        f"from finetrail.cli import main\nrc = main(['verify', {str(root)!r}])\nassert rc == 0, rc"
    )
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_gate_with_a_registry_configured_is_light(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    """The training evidence names a registered model in the workspace's own MLflow store: the
    gate prints what `registry promote` would tag and imports no mlflow (nor anything heavy)."""
    from tests.support.workspaces import build_workspace

    root = tmp_path / "ws"
    build_workspace(
        root,
        override={
            "training": {
                "mlflow.registered_model": "support-assistant",
                "mlflow.model_version": "3",
                "mlflow.tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                "mlflow.run_id": None,  # no run artifacts in this store
            }
        },
    )
    loaded = _modules_after(
        "import contextlib, io\n"
        "from finetrail.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        f"    rc = main(['gate', {str(root)!r}, '--policy', 'development'])\n"
        "assert rc == 0, (rc, buf.getvalue())\n"
        "assert 'would tag support-assistant version 3' in buf.getvalue(), buf.getvalue()\n"
    )
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert not (root / "mlflow.db").exists()  # nothing written to the store
