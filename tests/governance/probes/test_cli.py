"""``finetrail probe`` against a trained workspace: evidence written, ledger events, verify clean,
subject digests, the DP claim read from training evidence, MLflow metrics, and bad input.

The training layer's loader (``finetrail.training.loading.load_trained``) is replaced by one that
returns the models trained in this test session; everything else is the real pipeline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from finetrail.cli import main
from finetrail.governance.evidence.probes import (
    DPAuditEvidence,
    ExposureEvidence,
    ExtractionEvidence,
    MembershipEvidence,
)
from finetrail.governance.evidence.registry import probe_location
from finetrail.governance.io import canonical_json, sha256_bytes
from finetrail.governance.probes.canaries import (
    FileLineage,
    Lineage,
    build_canary_set,
    commit_canaries,
    jsonl_bytes,
)
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace

pytestmark = pytest.mark.slow

FAST = "exposure:\n  samples: 200\nextraction:\n  max_prompts: 30\nmembership:\n  max_examples: 100\n  bootstrap: 50\n"


def training_evidence(
    adapter: str, *, dp: dict[str, Any] | None = None, run_id: str | None = None
) -> bytes:
    return canonical_json(
        {
            "record_type": "training",
            "completed": True,
            "method": "full",
            "adapter": {"sha256": adapter, "path": "artifacts/adapter"},
            "base_model": {"weights_sha256": "b" * 64, "config_sha256": "c" * 64},
            "dp": dp or {"enabled": False, "epsilon": None, "delta": None},
            "mlflow": {"run_id": run_id},
        }
    )


@pytest.fixture()
def workspace(
    tmp_path: Path, tinylm: SimpleNamespace, study: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> SimpleNamespace:
    root = tmp_path / "ws"
    ws = Workspace.init(root, model="support-assistant", version="1.0", owner="team")
    source = tmp_path / "private.jsonl"
    source.write_bytes(jsonl_bytes(study.records))
    train = tmp_path / "train.jsonl"
    train.write_bytes(jsonl_bytes(study.augmented))
    held = tmp_path / "heldout.jsonl"
    held.write_bytes(jsonl_bytes([{"text": t} for t in study.heldout]))
    lineage = Lineage(
        source=FileLineage(path=str(source), sha256=sha256_bytes(source.read_bytes()), records=300),
        output=FileLineage(
            path=str(train), sha256=sha256_bytes(train.read_bytes()), records=len(study.augmented)
        ),
        text_field="text",
        examples_added=len(study.augmented) - 300,
    )
    cs = build_canary_set(study.canaries, repetitions=(1, 4, 16), lineage=lineage)
    commit_canaries(ws, cs, actor="alice")
    config = tmp_path / "probe.yaml"
    config.write_text(FAST, encoding="utf-8")

    loading = ModuleType("finetrail.training.loading")
    calls: list[Path] = []

    def load_trained(path: Path) -> SimpleNamespace:
        calls.append(Path(path))
        return SimpleNamespace(
            model=study.control, base_model=tinylm.base, tokenizer=tinylm.tokenizer, device="cpu"
        )

    loading.load_trained = load_trained  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "finetrail.training.loading", loading)
    return SimpleNamespace(
        root=root,
        ws=ws,
        train=train,
        held=held,
        config=config,
        calls=calls,
        canaries=cs,
        tmp=tmp_path,
    )


def write_training(w: SimpleNamespace, **kw: Any) -> None:
    w.ws.write_bytes(
        "evidence/training.json",
        training_evidence("a" * 64, **kw),
        event="training.completed",
        actor="trainer",
    )


def test_probe_writes_all_evidence(
    workspace: SimpleNamespace, tinylm: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    w = workspace
    write_training(w, dp={"enabled": True, "epsilon": 0.01, "delta": 1e-5, "accountant": "prv"})
    with tinylm.one_thread():
        rc = main(
            ["probe", str(w.root), "--heldout-data", str(w.held), "--config", str(w.config)]
            + ["--progress"]  # stderr is not a terminal here: force the bar to check it
        )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert w.calls == [w.root]
    for line in (
        "exposure: max",
        "extraction:",
        "membership: max AUC",
        "dp_audit: empirical epsilon",
    ):
        assert line in out.out
    assert "exposure" in out.err and "100%" in out.err  # the progress bar, on stderr only
    assert "100%" not in out.out
    classes = {
        "exposure": ExposureEvidence,
        "extraction": ExtractionEvidence,
        "membership": MembershipEvidence,
        "dp_audit": DPAuditEvidence,
    }
    training_digest = sha256_bytes(w.root.joinpath("evidence/training.json").read_bytes())
    canaries_digest = sha256_bytes(w.root.joinpath("artifacts/canaries.json").read_bytes())
    records = {}
    for name, cls in classes.items():
        record = cls.read(w.root / probe_location(name))
        assert record.subject.adapter_sha256 == "a" * 64
        assert record.subject.base_weights_sha256 == "b" * 64
        assert record.subject.training_evidence_sha256 == training_digest
        assert record.subject.canaries_sha256 == canaries_digest
        records[name] = record
    events = [e.kind for e in w.ws.ledger.entries()]
    assert [k for k in events if k.startswith("probes.")] == [f"probes.{n}" for n in classes]
    assert verify_workspace(w.root).ok
    audit = records["dp_audit"]
    assert audit.claimed_epsilon == 0.01 and audit.accountant == "prv"
    # the non-private control cannot be 0.01-DP: the audit contradicts the (false) claim
    assert audit.empirical_epsilon_lower_bound > 0.01
    assert audit.verdict == "contradicted"
    secrets = {c.secret for c in w.canaries.canaries}
    stored = "".join(p.read_text(encoding="utf-8") for p in (w.root / "evidence/probes").iterdir())
    assert not any(s in stored for s in secrets)  # canary secrets never reach evidence


def test_probe_only_and_mlflow(
    workspace: SimpleNamespace,
    tinylm: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import mlflow

    w = workspace
    uri = f"sqlite:///{w.tmp / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("probe-test")).info.run_id
    write_training(w, run_id=run_id)
    with tinylm.one_thread():
        rc = main(
            [
                "probe",
                str(w.root),
                "--only",
                "exposure,dp-audit",
                "--no-progress",
                "--config",
                str(w.config),
                "--json",
            ]
        )
    out = capsys.readouterr()
    assert rc == 0, out.err
    printed = json.loads(out.out)
    assert set(printed) == {"exposure", "dp_audit"}
    assert printed["dp_audit"]["verdict"] == "no_claim"
    assert not (w.root / probe_location("membership")).exists()
    metrics = client.get_run(run_id).data.metrics
    assert metrics["probes.exposure.max_bits"] == pytest.approx(printed["exposure"]["max_bits"])
    assert metrics["probes.dp_audit.empirical_epsilon_lower_bound"] == pytest.approx(
        printed["dp_audit"]["empirical_epsilon_lower_bound"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "bogus"], "unknown probe(s): bogus"),
        (["--only", "mia"], "cannot run probe 'mia': no held-out data given"),
    ],
)
def test_probe_bad_requests_exit_2(
    workspace: SimpleNamespace, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    write_training(workspace)
    rc = main(["probe", str(workspace.root), "--no-progress", *args])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_probe_refuses_untrained_or_changed_data(
    workspace: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    w = workspace
    assert main(["probe", str(w.root), "--no-progress"]) == 2
    assert "no training evidence in the workspace" in capsys.readouterr().err
    write_training(w)
    w.train.write_text(
        w.train.read_text(encoding="utf-8") + '{"text": "one more"}\n', encoding="utf-8"
    )
    assert main(["probe", str(w.root), "--no-progress"]) == 2
    assert "differs from the augmented set committed" in capsys.readouterr().err
    bad = w.tmp / "bad.yaml"
    bad.write_text("exposure:\n  samples: 3\n  colour: red\n", encoding="utf-8")
    assert main(["probe", str(w.root), "--config", str(bad), "--train-data", str(w.held)]) == 2
    err = capsys.readouterr().err
    assert "exposure.colour: unknown field" in err and "exposure.samples" in err


def test_probe_refuses_canaries_committed_after_training(
    tmp_path: Path, workspace: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace.init(tmp_path / "late", model="m", version="1", owner="t")
    ws.write_bytes(
        "evidence/training.json", training_evidence("a" * 64), event="training.completed", actor="t"
    )
    ws.write_bytes(
        "artifacts/canaries.json",
        workspace.canaries.canonical_bytes(),
        event="canaries.committed",
        actor="t",
    )
    assert main(["probe", str(tmp_path / "late"), "--no-progress"]) == 1
    assert "not committed to the ledger before training" in capsys.readouterr().err
