"""MLflow model registry: tag the gated model version and move its ``candidate``/``approved`` aliases.

Runs only when the training evidence names a registered model (``training.mlflow.registered_model``
and ``training.mlflow.model_version``); mlflow is imported here, lazily, and nowhere else in the
gate. The tracking URI is ``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else
``training.mlflow.tracking_uri``, else the workspace's ``mlflow.db``.

On a pass the version gets ``candidate``; ``approved`` moves to it only when the policy's required
reviews are also in place. A failing gate removes either alias from this version (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetrail.errors import InputError
from finetrail.governance.evidence.gate import GateDecision
from finetrail.governance.workspace import tracking_uri as resolve_tracking_uri

CANDIDATE = "candidate"
APPROVED = "approved"
TAG_PREFIX = "finetrail.gate."


@dataclass(frozen=True)
class RegistryTarget:
    name: str
    version: str
    tracking_uri: str


@dataclass(frozen=True)
class RegistryUpdate:
    target: RegistryTarget
    tags: dict[str, str]
    aliases_set: tuple[str, ...]
    aliases_removed: tuple[str, ...]

    def render(self) -> str:
        t = self.target
        moved = ", ".join(self.aliases_set) or "none"
        removed = ", ".join(self.aliases_removed)
        return f"registry: tagged {t.name} version {t.version}; aliases set: {moved}" + (
            f"; removed: {removed}" if removed else ""
        )


class RegistryRefused(Exception):
    """The registry step is skipped: the recorded store is not this workspace's."""


def registry_target(
    root: Path, training: dict[str, Any] | None, tracking_uri: str | None = None
) -> RegistryTarget | None:
    section = (training or {}).get("mlflow")
    if not isinstance(section, dict):
        return None
    name = section.get("registered_model")
    if not name:
        return None
    version = section.get("model_version")
    if version is None or str(version).strip() == "":
        raise InputError(
            "training evidence names a registered model but no model version",
            field="training.mlflow.model_version",
            fix="record the registered model version with the training evidence",
        )
    recorded = section.get("tracking_uri")
    resolved = resolve_tracking_uri(
        root, explicit=tracking_uri, recorded=recorded if isinstance(recorded, str) else None
    )
    if resolved.refused is not None:
        # a copied or moved workspace: the store it recorded belongs to the original
        raise RegistryRefused(
            f"not tagged: the training evidence records the MLflow store {resolved.refused}, "
            "outside this workspace (a copy or a move?); pass --tracking-uri to tag that store"
        )
    uri = resolved.uri
    return RegistryTarget(str(name), str(version), str(uri))


def update_registry(
    target: RegistryTarget, decision: GateDecision, decision_rel: str | None
) -> RegistryUpdate:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=target.tracking_uri, registry_uri=target.tracking_uri)
    tags = {
        f"{TAG_PREFIX}result": "passed" if decision.passed else "failed",
        f"{TAG_PREFIX}approved": str(decision.approved).lower(),
        f"{TAG_PREFIX}policy_id": decision.policy_id,
        f"{TAG_PREFIX}policy_version": decision.policy_version,
        f"{TAG_PREFIX}policy_sha256": decision.policy_sha256,
        f"{TAG_PREFIX}time": decision.time.isoformat(),
    }
    if decision_rel:
        tags[f"{TAG_PREFIX}decision"] = decision_rel
    want = set()
    if decision.passed:
        want.add(CANDIDATE)
        if decision.approved:
            want.add(APPROVED)
    set_, removed = [], []
    try:
        client.get_model_version(target.name, target.version)
        for k, v in tags.items():
            client.set_model_version_tag(target.name, target.version, k, v)
        model = client.get_registered_model(target.name)
        current = dict(model.aliases or {})
        for alias in (CANDIDATE, APPROVED):
            if alias in want:
                client.set_registered_model_alias(target.name, alias, target.version)
                set_.append(alias)
            elif str(current.get(alias)) == target.version:
                client.delete_registered_model_alias(target.name, alias)
                removed.append(alias)
    except MlflowException as exc:
        raise InputError(
            f"registry update failed for {target.name} version {target.version}: {exc.message}",
            fix=f"check the tracking URI {target.tracking_uri}",
        ) from exc
    return RegistryUpdate(target, tags, tuple(set_), tuple(removed))
