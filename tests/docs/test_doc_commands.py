"""The documentation's commands, run as written: every block marked runnable in README.md and
docs/*.md (``<!-- doctest: run -->``, see tests/support/doc_blocks.py), in order per file, in a
fresh folder with this environment's ``finetrail`` first on PATH, as one terminal session (what
a block exports, the next one sees). Nothing is downloaded: the
documents build their stand-in model and data with ``finetrail base-model build`` and
``finetrail synth``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.doc_blocks import Block, doc_files, extract

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BLOCK_TIMEOUT_S = 1200
# settings a developer's shell may hold that would change what the documents' commands do
SCRUBBED = (
    "FINETRAIL_DEV_UNSIGNED",  # set by tests/conftest.py; a newcomer's shell has neither
    "FINETRAIL_LEDGER_KEY",
    "FINETRAIL_ACTOR",
    "FINETRAIL_KEYRING",
    "FINETRAIL_TRUST",
    "FINETRAIL_SIGNING_KEY",
    "MLFLOW_TRACKING_URI",
)

RUNNABLE = [p for p in doc_files(ROOT) if any(b.kind == "run" for b in extract(p))]


def test_the_own_model_sequences_are_runnable() -> None:
    names = {p.name for p in RUNNABLE}
    assert {"README.md", "own-model.md"} <= names, names


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(block: Block, cwd: Path, env: dict[str, str]) -> None:
    if block.kind == "write":
        assert block.target is not None
        target = cwd / block.target
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text, encoding="utf-8")
        return
    # one terminal session: what a block exports, the next block sees
    exports = cwd / ".doctest-exports"
    script = f"[ -f {exports} ] && . {exports}\ntrap 'export -p > {exports}' EXIT\n{block.text}"
    try:
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{block.where()}: still running after {BLOCK_TIMEOUT_S} s:\n{block.text}\n{exc}"
        )
    if proc.returncode != block.exit_code:
        output = (proc.stdout + proc.stderr)[-6000:]
        pytest.fail(
            f"{block.where()}: exit {proc.returncode}, the document says {block.exit_code}\n"
            f"--- block\n{block.text}--- output (last 6000 characters)\n{output}",
            pytrace=False,
        )


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda p: p.name)
def test_documented_commands_run_as_written(doc: Path, tmp_path: Path) -> None:
    assert (BIN / "finetrail").is_file(), f"no finetrail in {BIN}"
    env = _env()
    for block in extract(doc):
        _run(block, tmp_path, env)
