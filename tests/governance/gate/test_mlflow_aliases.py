"""MLflow registry step: the gate plans it, `registry promote` tags the version and moves its aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.errors import InputError
from finetrail.governance.gate.api import run_gate
from finetrail.governance.gate.promote import promote
from finetrail.governance.policy.load import shipped_policies
from tests.support.trust import trust_for
from tests.support.workspaces import add_reviewers, approve, build_workspace

EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")


@pytest.mark.slow
def test_gate_tags_version_and_moves_aliases(tmp_path: Path, use_contract_kinds: object) -> None:
    from mlflow import MlflowClient

    from finetrail.governance import keys as ed25519

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

    # the store lies outside the workspace: the gate plans nothing for it and says why;
    # `registry promote` refuses it (a copied workspace must not tag the original's store)
    refused = run_gate(workspace=root, policy=EU, record=False)
    assert refused.registry is None and refused.registry_skipped is not None
    assert "outside this workspace" in refused.registry_skipped
    keydir = tmp_path / "keys"
    trust = trust_for(keydir, tmp_path / "trust.yaml", reviewers={})
    key = str(keydir / "ci-gate.key")
    run_gate(workspace=root, policy=EU, trust_file=trust, signing_key=key)
    with pytest.raises(InputError, match="records an MLflow store outside this workspace"):
        promote(workspace=root)
    assert main(["registry", "promote", str(root)]) == 2
    assert (
        "finetrail.gate.result" not in client.get_model_version("support-assistant", version).tags
    )
    root = build_workspace(tmp_path / "ws2", override={"training": mlflow_ref}).root

    with ed25519.signing_with(ed25519.load_private_key(key)):  # the gate's ledger entries
        result = run_gate(
            workspace=root, policy=EU, tracking_uri=uri, trust_file=trust, signing_key=key
        )
    # passes, no approvals yet; the gate tags nothing, it prints the plan
    assert result.decision.passed and not result.decision.approved
    assert result.registry is not None and result.registry.aliases_set == ("candidate",)
    assert (
        "finetrail.gate.result" not in client.get_model_version("support-assistant", version).tags
    )
    pushed = promote(workspace=root, tracking_uri=uri, trust_file=trust)
    assert pushed.ok and pushed.update is not None
    assert pushed.update.aliases_set == ("candidate",)
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
    with ed25519.signing_with(ed25519.load_private_key(key)):  # the gate's ledger entries
        result = run_gate(
            workspace=root, policy=EU, tracking_uri=uri, trust_file=trust, signing_key=key
        )
    assert result.decision.approved
    pushed = promote(workspace=root, tracking_uri=uri, trust_file=trust)
    assert pushed.update is not None and pushed.update.aliases_set == ("candidate", "approved")
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
    # promoted before the gate runs again: the decision is stale, both aliases leave
    stale = promote(workspace=root, tracking_uri=uri, trust_file=trust)
    assert not stale.ok and "changed since gate decision" in stale.refused[0]
    assert stale.update is not None and set(stale.update.aliases_removed) == {
        "candidate",
        "approved",
    }
    assert (
        client.get_model_version("support-assistant", version).tags["finetrail.gate.result"]
        == "refused"
    )
    with ed25519.signing_with(ed25519.load_private_key(key)):  # the gate's ledger entries
        result = run_gate(
            workspace=root, policy=EU, tracking_uri=uri, trust_file=trust, signing_key=key
        )
    assert not result.decision.passed
    assert result.registry is not None and result.registry.aliases_set == ()
    pushed = promote(workspace=root, tracking_uri=uri, trust_file=trust)
    assert pushed.ok and pushed.update is not None and pushed.update.aliases_set == ()
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
    with pytest.raises(InputError, match="names no registered model"):
        promote(workspace=root)


def test_promote_refuses_an_unsigned_decision_and_a_missing_one(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    uri = f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}"
    ref = {
        "mlflow.registered_model": "m",
        "mlflow.model_version": "1",
        "mlflow.tracking_uri": uri,
        "mlflow.run_id": None,  # no run artifacts in this store
    }
    root = build_workspace(tmp_path / "ws", override={"training": ref}).root
    with pytest.raises(InputError, match="no gate decision recorded"):
        promote(workspace=root, dry_run=True)
    run_gate(workspace=root, policy="development")
    with pytest.raises(InputError, match="the latest gate decision is unsigned") as err:
        promote(workspace=root, dry_run=True)
    assert err.value.path == str(root / "evidence/gate/0001.json")
    assert not (root / "mlflow.db").exists()  # nothing was written to any store


def test_gate_no_registry_flag_is_a_deprecated_no_op(
    tmp_path: Path, use_contract_kinds: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_workspace(tmp_path / "ws").root
    assert main(["gate", str(root), "--policy", "development", "--no-registry"]) == 0
    assert "--no-registry is deprecated and has no effect" in capsys.readouterr().err


def test_registered_model_without_version_is_bad_input(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    root = build_workspace(
        tmp_path / "ws", override={"training": {"mlflow.registered_model": "support-assistant"}}
    ).root
    with pytest.raises(InputError, match="names a registered model but no model version"):
        run_gate(workspace=root, policy=EU)
    assert not (root / "evidence/gate").exists()  # nothing recorded
