"""MLflow registry step: tags and aliases on the registered model version the training evidence names."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetrail.governance.gate.api import run_gate
from finetrail.governance.policy.load import shipped_policies
from tests.support.trust import trust_for
from tests.support.workspaces import add_reviewers, approve, build_workspace

EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")


@pytest.mark.slow
def test_gate_tags_version_and_moves_aliases(tmp_path: Path, use_contract_kinds: object) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("support-assistant")
    (tmp_path / "adapter").mkdir()
    version = str(
        client.create_model_version("support-assistant", source=str(tmp_path / "adapter")).version
    )
    mlflow_ref = {
        "mlflow.registered_model": "support-assistant",
        "mlflow.model_version": version,
        "mlflow.tracking_uri": uri,
    }
    root = build_workspace(tmp_path / "ws", override={"training": mlflow_ref}).root

    # the store lies outside the workspace: recorded, it is refused (a copied workspace must not
    # tag the original's store); named explicitly (--tracking-uri), it is used
    refused = run_gate(workspace=root, policy=EU, record=False)
    assert refused.registry is None
    result = run_gate(workspace=root, policy=EU)
    assert result.registry is None and result.registry_skipped is not None
    assert "outside this workspace" in result.registry_skipped
    assert (
        "finetrail.gate.result" not in client.get_model_version("support-assistant", version).tags
    )
    root = build_workspace(tmp_path / "ws2", override={"training": mlflow_ref}).root

    keydir = tmp_path / "keys"
    trust = trust_for(keydir, tmp_path / "trust.yaml", reviewers={})
    key = str(keydir / "ci-gate.key")
    result = run_gate(
        workspace=root, policy=EU, tracking_uri=uri, trust_file=trust, signing_key=key
    )
    # passes, no approvals yet
    assert result.decision.passed and not result.decision.approved
    assert result.registry is not None and result.registry.aliases_set == ("candidate",)
    mv = client.get_model_version("support-assistant", version)
    assert mv.tags["finetrail.gate.result"] == "passed"
    assert mv.tags["finetrail.gate.approved"] == "false"
    assert mv.tags["finetrail.gate.policy_id"] == "eu-ai-act-high-risk"
    assert mv.tags["finetrail.gate.policy_sha256"] == result.decision.policy_sha256
    assert mv.tags["finetrail.gate.decision"] == "evidence/gate/0001.json"
    aliases = client.get_registered_model("support-assistant").aliases
    assert str(aliases["candidate"]) == version and "approved" not in aliases

    keys = add_reviewers(root, keydir)
    approve(root, keys, (("bob", "model-risk"), ("carol", "privacy")))
    trust = trust_for(keydir, tmp_path / "trust-reviewers.yaml")
    result = run_gate(
        workspace=root, policy=EU, tracking_uri=uri, trust_file=trust, signing_key=key
    )
    assert result.decision.approved
    assert result.registry is not None and result.registry.aliases_set == ("candidate", "approved")
    assert str(client.get_registered_model("support-assistant").aliases["approved"]) == version

    # the evidence changes and fails: both aliases leave this version (fail closed)
    from finetrail.governance.evidence import registry
    from finetrail.governance.evidence.base import EvidenceRecord
    from finetrail.governance.workspace import Workspace

    ws = Workspace.open(root)
    cls = registry.record_class(registry.kind_by_name("probes.membership"))  # type: ignore[arg-type]
    rec: EvidenceRecord = cls.read(root / "evidence/probes/membership.json")
    ws.write_record(
        "evidence/probes/membership.json",
        rec.model_copy(update={"max_auc": 0.9}),
        event="probes.membership.recorded",
        actor="alice",
    )
    result = run_gate(
        workspace=root, policy=EU, tracking_uri=uri, trust_file=trust, signing_key=key
    )
    assert not result.decision.passed
    assert result.registry is not None and set(result.registry.aliases_removed) == {
        "candidate",
        "approved",
    }
    assert (
        client.get_model_version("support-assistant", version).tags["finetrail.gate.result"]
        == "failed"
    )
    assert not client.get_registered_model("support-assistant").aliases


def test_no_registry_step_without_a_registered_model(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    root = build_workspace(tmp_path / "ws").root
    result = run_gate(workspace=root, policy=EU)
    assert result.registry is None
    assert not (root / "mlflow.db").exists()


def test_registered_model_without_version_is_bad_input(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    from finetrail.errors import InputError

    root = build_workspace(
        tmp_path / "ws", override={"training": {"mlflow.registered_model": "support-assistant"}}
    ).root
    with pytest.raises(InputError, match="names a registered model but no model version"):
        run_gate(workspace=root, policy=EU)
    assert not (root / "evidence/gate").exists()  # nothing recorded
