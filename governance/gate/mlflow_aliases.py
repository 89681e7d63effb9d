"""MLflow model registry: the tags and ``candidate``/``approved`` aliases a gate decision implies.

The gate never talks to the registry (it stays light: no mlflow import). It computes a
:class:`RegistryPlan` from the training evidence and its decision and prints it;
``finetrail registry promote WORKSPACE`` (:mod:`.promote`) applies the plan of the latest
recorded, signed decision, and only that command imports mlflow (:func:`apply_plan`).

The plan names a registered model only when the training evidence does
(``training.mlflow.registered_model`` and ``training.mlflow.model_version``). The store is
``--tracking-uri`` (or ``$MLFLOW_TRACKING_URI``), else ``training.mlflow.tracking_uri`` when it
belongs to this workspace, else the workspace's ``mlflow.db``. A recorded local store outside the
workspace (the workspace was copied or moved: training recorded the ORIGINAL's absolute URI) is
refused (:class:`RegistryRefused`): the copy must not tag the original's models.

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
PROMOTE_COMMAND = "finetrail registry promote"

__all__ = [
    "APPROVED",
    "CANDIDATE",
    "TAG_PREFIX",
    "RegistryPlan",
    "RegistryRefused",
    "RegistryTarget",
    "RegistryUpdate",
    "apply_plan",
    "plan_for",
    "registry_target",
]


@dataclass(frozen=True)
class RegistryTarget:
    name: str
    version: str
    tracking_uri: str
    source: str = "workspace"  # "explicit", "recorded" or "workspace" (TrackingUri.source)


@dataclass(frozen=True)
class RegistryPlan:
    """What a decision implies for the registry: tags on the version, aliases to set on it, and
    aliases to take off it (if they point at it)."""

    target: RegistryTarget
    tags: dict[str, str]
    aliases_set: tuple[str, ...]
    aliases_cleared: tuple[str, ...]

    def render(self, workspace: str | None = None) -> str:
        t = self.target
        sets = ", ".join(self.aliases_set) or "none"
        clears = ", ".join(self.aliases_cleared) or "none"
        tags = ", ".join(f"{k}={v}" for k, v in sorted(self.tags.items()))
        how = f"`{PROMOTE_COMMAND} {workspace or 'WORKSPACE'}`"
        return (
            f"registry: not tagged by the gate; {how} would tag {t.name} version {t.version} "
            f"in {t.tracking_uri} ({t.source} store): aliases set: {sets}; "
            f"removed if on this version: {clears}; tags: {tags}"
        )


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


class RegistryRefused(InputError):
    """The recorded store is not this workspace's: nothing may be written to it."""


def registry_target(
    root: Path, training: dict[str, Any] | None, tracking_uri: str | None = None
) -> RegistryTarget | None:
    """The registered model version the training evidence names and the store it lives in;
    ``None`` when no registered model is named. Reads nothing but its arguments."""
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
            path=str(root / "evidence/training.json"),
            field="training.mlflow.model_version",
            fix="record the registered model version with the training evidence",
        )
    recorded = section.get("tracking_uri")
    resolved = resolve_tracking_uri(
        root, explicit=tracking_uri, recorded=recorded if isinstance(recorded, str) else None
    )
    if resolved.refused is not None:
        raise RegistryRefused(
            "the training evidence records an MLflow store outside this workspace",
            path=str(root / "evidence/training.json"),
            field="training.mlflow.tracking_uri",
            why=f"{resolved.refused} is not under {root.resolve()} (the workspace was copied or "
            "moved; that store belongs to the original, and the registry step only writes to "
            "the store of the workspace it judges)",
            fix="pass --tracking-uri (or set MLFLOW_TRACKING_URI) to name the store to tag",
        )
    return RegistryTarget(str(name), str(version), str(resolved.uri), resolved.source)


def plan_for(
    target: RegistryTarget, decision: GateDecision, decision_rel: str | None
) -> RegistryPlan:
    """The tags and aliases ``decision`` implies for ``target`` (no I/O)."""
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
    want: list[str] = []
    if decision.passed:
        want.append(CANDIDATE)
        if decision.approved:
            want.append(APPROVED)
    clear = tuple(a for a in (CANDIDATE, APPROVED) if a not in want)
    return RegistryPlan(target, tags, tuple(want), clear)


def apply_plan(plan: RegistryPlan) -> RegistryUpdate:
    """Tag the version and move its aliases (imports mlflow: only ``registry promote`` calls)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    target = plan.target
    client = MlflowClient(tracking_uri=target.tracking_uri, registry_uri=target.tracking_uri)
    set_, removed = [], []
    try:
        client.get_model_version(target.name, target.version)
        for k, v in plan.tags.items():
            client.set_model_version_tag(target.name, target.version, k, v)
        model = client.get_registered_model(target.name)
        current = dict(model.aliases or {})
        for alias in plan.aliases_set:
            client.set_registered_model_alias(target.name, alias, target.version)
            set_.append(alias)
        for alias in plan.aliases_cleared:
            if str(current.get(alias)) == target.version:
                client.delete_registered_model_alias(target.name, alias)
                removed.append(alias)
    except MlflowException as exc:
        raise InputError(
            f"registry update failed for {target.name} version {target.version}: {exc.message}",
            fix=f"check the tracking URI {target.tracking_uri}",
        ) from exc
    return RegistryUpdate(target, plan.tags, tuple(set_), tuple(removed))
