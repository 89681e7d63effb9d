"""A release trained with a planted mechanism bug (`finetrail train --plant-mechanism-bug`, the
demonstration of issue #16) states the planned epsilon like an honest one, and fails the EU
high-risk gate on the mechanism audit; the honest twin passes those rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetrail.governance.workspace import Workspace
from tests.support.tiny_training import base_config, tiny_model, write_config

pytestmark = pytest.mark.slow

MECHANISM_RULES = {"dp-mechanism-verified", "dp-mechanism-not-rejected"}


def _gate_failures(ws: Path, run_cli, tmp_path: Path) -> set[str]:  # type: ignore[no-untyped-def]
    from tests.support.trust import gate_only_trust

    gate_only_trust(tmp_path / f"trust-{ws.name}")
    trust = tmp_path / f"trust-{ws.name}" / "trust.yaml"
    code, out, err = run_cli(
        "gate", str(ws), "--policy", "eu-ai-act-high-risk", "--json", "--trust", str(trust),
        "--dry-run",
    )  # fmt: skip
    assert code in (0, 1), err[-2000:]
    decision = json.loads(out)
    return {o["rule"] for o in decision["outcomes"] if o["outcome"] != "pass"}


@pytest.mark.parametrize("bug", [None, "clipping_disabled"])
def test_planted_bug_fails_the_release_on_the_mechanism_audit(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    run_cli,
    bug: str | None,  # type: ignore[no-untyped-def]
) -> None:
    base = tiny_model("llama", tmp_path_factory)
    data = tmp_path / "data"
    data.mkdir()
    cfg = write_config(
        tmp_path / "t.yaml",
        base_config(base, data, optim={"steps": 4}, privacy={"clipping": "hooks"}),
    )
    ws = Workspace.init(tmp_path / f"ws-{bug}", model="m", version="1", owner="alice")
    args = ["train", str(ws.root), str(cfg), "--no-progress"]
    if bug:
        args += ["--plant-mechanism-bug", bug]
    code, _out, err = run_cli(*args)
    mechanism = json.loads((ws.root / "evidence" / "mechanism.json").read_text())
    training = json.loads((ws.root / "evidence" / "training.json").read_text())
    assert training["dp"]["epsilon"] is not None  # the planned claim is stated either way
    failed = _gate_failures(ws.root, run_cli, tmp_path)
    if bug is None:
        assert code == 0, err[-2000:]
        assert mechanism["verdict"] == "verified"
        assert not failed & MECHANISM_RULES
    else:
        assert mechanism["verdict"] == "rejected", mechanism["reasons"]
        assert "dp-mechanism-not-rejected" in failed
        event = [e for e in Workspace.open(ws.root).ledger.entries() if e.kind.startswith("train")]
        assert event[-1].payload.get("planted_mechanism_bug") == bug
