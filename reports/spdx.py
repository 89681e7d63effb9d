"""SPDX 3.0.1 document of a release with the AI and Dataset profiles (``spdx-python-model``).

Elements: the provider (Organization), finetrail (Tool), the adapter and the base model
(``ai_AIPackage``), each dataset (``dataset_DatasetPackage``) with its SHA-256, and relationships
(``trainedOn``, ``testedOn``, ``descendantOf``). The bindings check every property's type and
cardinality (from the SPDX 3.0.1 SHACL model) when the document is serialised; :func:`check_spdx`
reads the JSON-LD back and checks ids are unique and every reference resolves.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

from finetrail import __version__
from finetrail.errors import CheckFailed
from finetrail.reports.loader import get, num
from finetrail.reports.model import ReportModel, fmt

CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"


def build_spdx(m: ReportModel) -> dict[str, Any]:
    """The SPDX 3.0.1 JSON-LD document as a JSON value (checked)."""
    from spdx_python_model import v3_0_1 as s

    ev = m.ev
    t = ev.training
    ws = ev.workspace
    base_id = f"urn:finetrail:{(ev.manifest_digest or 'no-manifest')[:32]}"

    def sid(local: str) -> str:
        return f"{base_id}:{local}"

    created = datetime.fromisoformat(m.generated)
    org = s.Organization(_id=sid("provider"), name=str(ws.get("provider") or ws.get("owner")))
    tool = s.Tool(_id=sid("tool-finetrail"), name=f"finetrail {__version__}")
    ci = s.CreationInfo(specVersion="3.0.1", created=created, createdBy=[org], createdUsing=[tool])
    org.creationInfo = ci
    tool.creationInfo = ci

    def sha256(value: Any) -> list[Any]:
        if isinstance(value, str) and len(value) == 64:
            return [s.Hash(algorithm=s.HashAlgorithm.sha256, hashValue=value)]
        return []

    def entries(items: dict[str, Any]) -> list[Any]:
        return [
            s.DictionaryEntry(key=k, value=fmt(v))
            for k, v in sorted(items.items())
            if v is not None
        ]

    elements: list[Any] = [org, tool]
    roots: list[Any] = []
    datasets: dict[str, Any] = {}
    for d in ev.datasets:
        sha = str(d.get("sha256"))
        has_pii = bool(get(d, "pii.records_with_pii"))
        pkg = s.dataset_DatasetPackage(
            _id=sid(f"dataset-{sha[:16]}"),
            creationInfo=ci,
            name=str(d.get("name")),
            verifiedUsing=sha256(sha),
            suppliedBy=org,
            software_primaryPurpose=s.software_SoftwarePurpose.data,
            dataset_datasetType=[s.dataset_DatasetType.text],
            dataset_hasSensitivePersonalInformation=s.PresenceType.yes
            if has_pii
            else s.PresenceType.no,
            dataset_intendedUse=str(d.get("purpose") or "") or None,
            dataset_dataCollectionProcess="; ".join(
                str(x) for x in (d.get("source"), d.get("collection")) if x
            )
            or None,
            dataset_dataPreprocessing=[str(d["transform"])] if d.get("transform") else [],
            dataset_anonymizationMethodUsed=[str(d["transform"])]
            if has_pii and d.get("transform")
            else [],
            comment=f"{fmt(d.get('records'))} records; licence {d.get('license') or 'not recorded'}",
        )
        datasets[sha] = pkg
        elements.append(pkg)

    rels: list[Any] = []

    def rel(kind: Any, frm: Any, to: list[Any], local: str) -> None:
        if to:
            rels.append(
                s.Relationship(
                    _id=sid(f"rel-{local}"),
                    creationInfo=ci,
                    from_=frm,
                    to=to,
                    relationshipType=kind,
                )
            )

    for sha, pkg in datasets.items():
        d = next(x for x in ev.datasets if str(x.get("sha256")) == sha)
        parents = [datasets[str(p)] for p in d.get("derived_from") or [] if str(p) in datasets]
        rel(s.RelationshipType.descendantOf, pkg, parents, f"derived-{sha[:16]}")

    if t is not None:
        base = s.ai_AIPackage(
            _id=sid("model-base"),
            creationInfo=ci,
            name=str(get(t, "base_model.name") or "base-model"),
            verifiedUsing=sha256(get(t, "base_model.weights_sha256")),
            software_primaryPurpose=s.software_SoftwarePurpose.model,
            comment="third-party pre-trained model the adapter modifies",
        )
        dp_enabled = bool(get(t, "dp.enabled"))
        adapter = s.ai_AIPackage(
            _id=sid("model-adapter"),
            creationInfo=ci,
            name=f"{ws.get('model')}-adapter",
            software_packageVersion=str(ws.get("version")),
            suppliedBy=org,
            releaseTime=created,
            verifiedUsing=sha256(get(t, "adapter.sha256")),
            software_primaryPurpose=s.software_SoftwarePurpose.model,
            ai_typeOfModel=[f"{get(t, 'method')} adapter for a causal language model"],
            ai_informationAboutApplication=str(ws.get("intended_purpose") or "") or None,
            ai_informationAboutTraining=m.dp_statement,
            ai_hyperparameter=entries(
                {
                    k: get(t, f"dp.{k}")
                    for k in (
                        "noise_multiplier",
                        "sample_rate",
                        "steps",
                        "max_grad_norm",
                        "clipping_mode",
                    )
                }
                | {"method": get(t, "method"), "dp.enabled": dp_enabled}
            ),
            ai_metric=entries(
                {
                    "dp.epsilon": num(get(t, "dp.epsilon")),
                    "dp.delta": num(get(t, "dp.delta")),
                    "membership_inference_auc": num(get(ev.probes.get("membership"), "max_auc")),
                    "canary_exposure_max_bits": num(get(ev.probes.get("exposure"), "max_bits")),
                    "dp_audit_epsilon_lower_bound": num(
                        get(ev.probes.get("dp_audit"), "empirical_epsilon_lower_bound")
                    ),
                    "task_accuracy": num(get(ev.bias, "task.accuracy")),
                }
            ),
            ai_useSensitivePersonalInformation=(
                s.PresenceType.yes
                if any(get(d, "pii.records_with_pii") for d in ev.datasets)
                else s.PresenceType.no
            ),
            ai_limitation="Figures are measurements on the recorded evaluation data; see the dossier.",
        )
        elements += [base, adapter]
        roots.append(adapter)
        rel(s.RelationshipType.descendantOf, adapter, [base], "adapter-base")
        train = [
            datasets[sha]
            for sha, role in sorted(m.dataset_roles.items())
            if sha in datasets and role == "train"
        ]
        test = [
            datasets[sha]
            for sha, role in sorted(m.dataset_roles.items())
            if sha in datasets and role in ("eval", "test", "validation")
        ]
        rel(s.RelationshipType.trainedOn, adapter, train, "trained-on")
        rel(s.RelationshipType.testedOn, adapter, test, "tested-on")
    elements += rels
    doc = s.SpdxDocument(
        _id=sid("document"),
        creationInfo=ci,
        name=f"{ws.get('model')} {ws.get('version')} (finetrail dossier)",
        profileConformance=[
            s.ProfileIdentifierType.core,
            s.ProfileIdentifierType.software,
            s.ProfileIdentifierType.ai,
            s.ProfileIdentifierType.dataset,
        ],
        element=elements,
        rootElement=roots or [e for e in elements if e is not org and e is not tool][:1] or [org],
        comment=f"manifest digest {ev.manifest_digest}",
    )
    objset = s.SHACLObjectSet()
    for obj in [doc, *elements]:
        objset.add(obj)
    buf = io.BytesIO()
    try:
        s.JSONLDSerializer().write(objset, buf)
    except (ValueError, TypeError) as exc:
        raise CheckFailed(
            "the SPDX 3.0.1 document failed the model's checks",
            why=str(exc),
            fix="report this as a finetrail bug",
        ) from exc
    data: dict[str, Any] = json.loads(buf.getvalue())
    check_spdx(data)
    return data


def check_spdx(data: dict[str, Any]) -> None:
    """Read the document back with the bindings; ids unique; every reference resolves."""
    from spdx_python_model import v3_0_1 as s

    problems = []
    if data.get("@context") != CONTEXT:
        problems.append(f"@context is {data.get('@context')!r}, expected {CONTEXT}")
    graph = data.get("@graph", [])
    ids = [n.get("spdxId") or n.get("@id") for n in graph if isinstance(n, dict)]
    ids = [i for i in ids if i]
    if len(ids) != len(set(ids)):
        problems.append("duplicate spdxId values")
    known = set(ids)

    def refs(node: Any) -> list[str]:
        out = []
        if isinstance(node, dict):
            for k, v in node.items():
                if k in (
                    "from",
                    "to",
                    "createdBy",
                    "createdUsing",
                    "suppliedBy",
                    "element",
                    "rootElement",
                    "creationInfo",
                ):
                    out += [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]
                out += refs(v)
        elif isinstance(node, list):
            for v in node:
                out += refs(v)
        return out

    dangling = sorted({r for r in refs(graph) if r not in known})
    if dangling:
        problems.append(f"references that resolve to nothing: {dangling}")
    try:
        objset = s.SHACLObjectSet()
        s.JSONLDDeserializer().read(io.BytesIO(json.dumps(data).encode()), objset)
        if not any(isinstance(o, s.SpdxDocument) for o in objset.objects):
            problems.append("no SpdxDocument in the graph")
    except Exception as exc:  # the bindings raise plain exceptions on malformed documents
        problems.append(f"the SPDX 3.0.1 bindings cannot read it back: {exc}")
    if problems:
        raise CheckFailed(
            "the SPDX 3.0.1 document failed validation",
            why="; ".join(problems)[:2000],
            fix="report this as a finetrail bug",
        )
