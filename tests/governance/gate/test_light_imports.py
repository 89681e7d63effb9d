"""`gate`, `verify`, `policy lint`, `review` and `keys` import no torch, transformers, mlflow or presidio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.trust import trust_for
from tests.support.workspaces import add_reviewers, build_workspace, make_key

HEAVY = (
    "torch",
    "transformers",
    "mlflow",
    "presidio_analyzer",
    "presidio_anonymizer",
    "peft",
    "opacus",
)

SCRIPT = """
import json, sys
from finetrail.cli import main
heavy = {heavy!r}
report = []
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    report.append({{"argv": argv[:2], "code": code,
                   "heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy)}})
print("REPORT" + json.dumps(report))
"""


def test_commands_stay_light(tmp_path: Path, use_contract_kinds: object) -> None:
    # training evidence that names a registered model in the workspace's own store: the gate
    # plans the registry step and imports no mlflow (`registry promote` does the tagging)
    uri = f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}"
    root = build_workspace(
        tmp_path / "ws",
        override={
            "training": {
                "mlflow.registered_model": "support-assistant",
                "mlflow.model_version": "1",
                "mlflow.tracking_uri": uri,
                "mlflow.run_id": None,  # no run artifacts in this store
            }
        },
    ).root
    keys = add_reviewers(root, tmp_path / "keys")
    signing = make_key(tmp_path / "keys", "ci-gate")[0]
    trust = str(trust_for(tmp_path / "keys", tmp_path / "trust.yaml"))
    commands = [
        ["verify", str(root)],
        ["policy", "lint", "eu-ai-act-high-risk", "nist-ai-rmf", "development"],
        [
            "review",
            "approve",
            str(root),
            "--reviewer",
            "bob",
            "--role",
            "model-risk",
            "--key",
            str(keys["bob"]),
            "--note",
            "ok",
        ],
        ["review", "status", str(root), "--policy", "eu-ai-act-high-risk"],
        [
            "gate",
            str(root),
            "--policy",
            "eu-ai-act-high-risk",
            "--signing-key",
            str(signing),
            "--trust",
            trust,
            "--junit",
            str(tmp_path / "j.xml"),
            "--sarif",
            str(tmp_path / "s.sarif"),
        ],
        ["gate", str(root), "--policy", "development", "--json", "--dry-run"],
        ["keys", "generate", "--reviewer", "erin", "--out", str(tmp_path / "keys")],
        ["verify", str(root), "--trust", trust],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(heavy=HEAVY), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("REPORT")), None)
    assert line is not None, proc.stdout + proc.stderr
    report = json.loads(line.removeprefix("REPORT"))
    assert [r["code"] for r in report] == [0, 0, 0, 1, 0, 0, 0, 0], proc.stdout + proc.stderr
    for r in report:
        assert r["heavy"] == [], r
    assert len(report) == len(commands)


@pytest.mark.slow
def test_registry_promote_imports_mlflow_and_the_gate_does_not(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    """The counter-check: the gate plans (no mlflow); `registry promote` imports mlflow."""
    uri = f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}"  # the workspace's own store
    root = build_workspace(
        tmp_path / "ws",
        override={
            "training": {
                "mlflow.registered_model": "nope",
                "mlflow.model_version": "1",
                "mlflow.tracking_uri": uri,
                "mlflow.run_id": None,  # no run artifacts in this store
            }
        },
    ).root
    signing = make_key(tmp_path / "keys", "ci-gate")[0]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT.format(heavy=HEAVY),
            json.dumps(
                [
                    ["gate", str(root), "--policy", "development", "--signing-key", str(signing)],
                    ["registry", "promote", str(root)],
                ]
            ),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("REPORT"))[6:])
    assert report[0]["code"] == 0 and report[0]["heavy"] == [], proc.stdout + proc.stderr
    assert "`finetrail registry promote " in proc.stdout
    assert "would tag nope version 1" in proc.stdout
    assert report[1]["code"] == 2  # the model is not registered: bad input
    assert "mlflow" in report[1]["heavy"]
    assert "registry update failed for nope version 1" in proc.stderr
