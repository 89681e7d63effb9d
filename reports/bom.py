"""CycloneDX 1.6 ML-BOM of a release, built with ``cyclonedx-python-lib``.

Components: the released model (metadata), the adapter and the base model
(``machine-learning-model``), each dataset (``data``) and the model card document (``file``), all
with SHA-256 hashes; dependencies tie them together. The library does not model CycloneDX's
``modelCard`` and ``data`` objects yet, so those two are added to the library's JSON output and the
result is checked with the library's strict 1.6 JSON validator before it is written.

Every bom-ref is derived from content (names and digests), never random: the same evidence gives
the same BOM (the serial number is a UUID5 of the manifest digest).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from finetrail import __version__
from finetrail.errors import CheckFailed
from finetrail.reports.loader import base_model_label, get, num
from finetrail.reports.model import ReportModel, fmt
from finetrail.reports.release import LicenceView

NAMESPACE = uuid.UUID("6f1c1f7e-3a57-4f43-9b1e-6d2f3e1e9a10")
RELEASE_REF = "release"
ADAPTER_REF = "model-adapter"
BASE_REF = "model-base"
CARD_REF = "doc-model-card"


def _dataset_ref(sha: str) -> str:
    return f"data-{sha[:16]}"


def build_bom(m: ReportModel, *, model_card_sha256: str | None) -> dict[str, Any]:
    """The BOM as a JSON value (validated); raises CheckFailed if the validator rejects it."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.contact import OrganizationalEntity
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output.json import JsonV1Dot6

    ev = m.ev
    t = ev.training

    def sha256(value: Any) -> list[HashType]:
        if isinstance(value, str) and len(value) == 64:
            return [HashType(alg=HashAlgorithm.SHA_256, content=value)]
        return []

    def props(items: dict[str, Any]) -> list[Property]:
        return [
            Property(name=f"finetrail:{k}", value=fmt(v))
            for k, v in sorted(items.items())
            if v is not None
        ]

    ws = ev.workspace
    provider = str(ws.get("provider") or "")
    release = Component(
        name=str(ws.get("model")),
        version=str(ws.get("version")),
        bom_ref=RELEASE_REF,
        type=ComponentType.MACHINE_LEARNING_MODEL,
        description=str(ws.get("intended_purpose") or ws.get("description") or "") or None,
        supplier=OrganizationalEntity(name=provider) if provider else None,
        properties=props(
            {
                "manifest_digest": ev.manifest_digest,
                "owner": ws.get("owner"),
                "verdict": m.verdict.status,
            }
        ),
    )
    components: list[Component] = []
    deps: dict[str, set[str]] = {RELEASE_REF: set()}

    if t is not None:
        adapter = Component(
            name=f"{ws.get('model')}-adapter",
            version=str(ws.get("version")),
            bom_ref=ADAPTER_REF,
            type=ComponentType.MACHINE_LEARNING_MODEL,
            hashes=sha256(get(t, "adapter.sha256")),
            description=m.release.method_label,
            properties=props(
                {
                    "method": get(t, "method"),
                    "trainable_parameters": get(t, "trainable_parameters"),
                    "dp.enabled": get(t, "dp.enabled"),
                    "dp.epsilon": num(get(t, "dp.epsilon")),
                    "dp.delta": num(get(t, "dp.delta")),
                    "dp.accountant": get(t, "dp.accountant"),
                    "compute.flops": num(get(t, "compute.flops")),
                    "mlflow.run_id": get(t, "mlflow.run_id"),
                }
            ),
        )
        base = Component(
            name=base_model_label(t),
            bom_ref=BASE_REF,
            type=ComponentType.MACHINE_LEARNING_MODEL,
            hashes=sha256(get(t, "base_model.weights_sha256")),
            description="third-party pre-trained model the adapter modifies",
            properties=props(
                {
                    "config_sha256": get(t, "base_model.config_sha256"),
                    "tokenizer_sha256": get(t, "base_model.tokenizer_sha256"),
                }
            ),
        )
        components += [adapter, base]
        deps[RELEASE_REF] |= {ADAPTER_REF, BASE_REF}
        deps[ADAPTER_REF] = {BASE_REF}
        deps[BASE_REF] = set()

    rel = m.release
    for d in rel.datasets:
        rec = d.record or {}
        components.append(
            Component(
                name=d.name,
                bom_ref=_dataset_ref(d.sha256),
                type=ComponentType.DATA,
                hashes=sha256(d.sha256),
                licenses=_licences(d.licence),
                description=str(rec.get("purpose") or "") or None,
                properties=props(
                    {
                        "registered": d.registered,
                        "records": rec.get("records"),
                        "merkle_root": rec.get("merkle_root"),
                        "role": d.role_text,
                        "trained_on": d.trained_on,
                        "source": rec.get("source"),
                        "legal_basis": rec.get("legal_basis"),
                        "pii.status": d.pii.state,
                        "pii.basis": d.pii.basis,
                        "pii.records_with_pii": get(rec, "pii.records_with_pii"),
                        "license.recorded": None if d.licence.spdx else d.licence.text,
                    }
                ),
            )
        )
        deps[_dataset_ref(d.sha256)] = {_dataset_ref(p) for p in d.parents}
        if t is not None and d.read_by_training:
            deps[ADAPTER_REF].add(_dataset_ref(d.sha256))
    known = {_dataset_ref(d.sha256) for d in rel.datasets}
    for ref in list(deps):  # a parent with no record here is not a component: no dangling ref
        deps[ref] = {x for x in deps[ref] if x in known or not x.startswith("data-")}
    if model_card_sha256:
        components.append(
            Component(
                name="README.md",
                bom_ref=CARD_REF,
                type=ComponentType.FILE,
                description="Hugging Face model card rendered by finetrail",
                hashes=sha256(model_card_sha256),
            )
        )
        deps[RELEASE_REF].add(CARD_REF)
        deps[CARD_REF] = set()

    created = datetime.fromisoformat(m.generated)
    bom = Bom(
        components=components,
        serial_number=uuid.uuid5(NAMESPACE, f"{ev.manifest_digest}:{m.generated}"),
        metadata=BomMetaData(component=release, timestamp=created, tools=ToolRepository()),
    )
    by_ref = {c.bom_ref.value: c for c in [release, *components]}
    for ref, targets in sorted(deps.items()):
        bom.register_dependency(by_ref[ref], [by_ref[x] for x in sorted(targets)])

    data: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    data["metadata"]["tools"] = {
        "components": [{"type": "application", "name": "finetrail", "version": __version__}]
    }
    _add_model_card(m, data)
    _add_data_objects(m, data)
    validate_bom(data)
    return data


def _ci(value: Any) -> tuple[Any, Any]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return value[0], value[1]
    return None, None


def _add_model_card(m: ReportModel, data: dict[str, Any]) -> None:
    ev = m.ev
    metrics: list[dict[str, Any]] = []

    def metric(kind: str, value: Any, slice_: str, lo: Any = None, hi: Any = None) -> None:
        if num(value) is None:
            return
        item: dict[str, Any] = {"type": kind, "value": fmt(num(value)), "slice": slice_}
        if num(lo) is not None and num(hi) is not None:
            item["confidenceInterval"] = {"lowerBound": fmt(num(lo)), "upperBound": fmt(num(hi))}
        metrics.append(item)

    rel = m.release
    eval_slice = (
        f"evaluation data {rel.name(rel.evaluated_on)}" if rel.evaluated_on else "evaluation data"
    )
    train_names = ", ".join(d.name for d in rel.with_role("train")) or "training data"
    metric(
        "accuracy",
        get(ev.bias, "task.accuracy"),
        eval_slice,
        *(_ci(get(ev.bias, "task.accuracy_ci"))),
    )
    metric("f1", get(ev.bias, "task.f1"), eval_slice, *(_ci(get(ev.bias, "task.f1_ci"))))
    for name, d in sorted((get(ev.bias, "disparities") or {}).items()):
        metric(
            name,
            get(d, "value"),
            f"{eval_slice}, across groups",
            get(d, "ci_low"),
            get(d, "ci_high"),
        )
    metric("membership_inference_auc", get(ev.probes.get("membership"), "max_auc"), train_names)
    metric("canary_exposure_max_bits", get(ev.probes.get("exposure"), "max_bits"), "canaries")
    metric(
        "dp_audit_epsilon_lower_bound",
        get(ev.probes.get("dp_audit"), "empirical_epsilon_lower_bound"),
        "canaries",
    )
    card: dict[str, Any] = {
        "bom-ref": "model-card-release",
        "modelParameters": {
            "approach": {"type": "self-supervised"},
            "task": "text-generation",
            "datasets": [{"ref": _dataset_ref(d.sha256)} for d in rel.trained_on],
            "inputs": [{"format": "text"}],
            "outputs": [{"format": "text"}],
        },
        "considerations": {
            "ethicalConsiderations": [
                {
                    "name": "privacy of people in the training data",
                    "mitigationStrategy": m.dp_statement,
                }
            ],
            "useCases": [str(ev.workspace.get("intended_purpose") or "needs input")],
        },
    }
    if metrics:
        card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    if ev.training is None or not rel.trained_on:
        card["modelParameters"].pop("datasets")
    for comp in [data["metadata"]["component"]]:
        comp["modelCard"] = card


CLASSIFICATION: dict[str, str] = {
    "present": "personal data",
    "absent": "no personal data found by the scan",
    "unknown": "unknown: not scanned for personal data",
}


def _add_data_objects(m: ReportModel, data: dict[str, Any]) -> None:
    by_ref = {c["bom-ref"]: c for c in data.get("components", [])}
    provider = str(m.ev.workspace.get("provider") or m.ev.workspace.get("owner"))
    for d in m.release.datasets:
        comp = by_ref[_dataset_ref(d.sha256)]
        rec = d.record or {}
        entry: dict[str, Any] = {
            "type": "dataset",
            "name": d.name,
            "classification": CLASSIFICATION[d.pii.state],
            "description": d.pii.text
            + (f"; transform: {rec.get('transform')}" if rec.get("transform") else ""),
        }
        if d.registered:
            entry["governance"] = {"owners": [{"organization": {"name": provider}}]}
        if d.pii.entities:
            entry["sensitiveData"] = list(d.pii.entities)
        comp["data"] = [entry]


def _licences(lic: LicenceView) -> list[Any] | None:
    """CycloneDX licences: ``license.id`` for one SPDX id, ``expression`` for a compound SPDX
    expression, ``license.name`` for free text, nothing when none is recorded."""
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression

    if lic.spdx is not None:
        from cyclonedx.spdx import is_supported_id

        if is_supported_id(lic.spdx):
            return [DisjunctiveLicense(id=lic.spdx)]
        return [LicenseExpression(lic.spdx)]
    if lic.text:
        return [DisjunctiveLicense(name=lic.text)]
    return None


def validate_bom(data: dict[str, Any]) -> None:
    """Strict CycloneDX 1.6 JSON validation plus unique, resolvable bom-refs."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(data), all_errors=True)
    problems = [str(e) for e in (errors or [])] if errors is not None else []
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("bom-ref"), str):
                refs.append(node["bom-ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    dupes = sorted({r for r in refs if refs.count(r) > 1})
    if dupes:
        problems.append(f"duplicate bom-refs: {dupes}")
    known = set(refs)
    used = [dep["ref"] for dep in data.get("dependencies", [])]
    used += [x for dep in data.get("dependencies", []) for x in dep.get("dependsOn", [])]
    card = data["metadata"]["component"].get("modelCard", {})
    used += [x["ref"] for x in card.get("modelParameters", {}).get("datasets", []) if "ref" in x]
    dangling = sorted(set(used) - known)
    if dangling:
        problems.append(f"bom-refs that resolve to nothing: {dangling}")
    if problems:
        raise CheckFailed(
            "the CycloneDX ML-BOM failed validation",
            why="; ".join(problems)[:2000],
            fix="report this as a finetrail bug",
        )
