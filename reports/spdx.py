"""SPDX 3.0.1 document of a release with the AI and Dataset profiles (``spdx-python-model``).

Elements: the provider (Organization), finetrail (Tool), the adapter and the base model
(``ai_AIPackage``), each dataset (``dataset_DatasetPackage``) with its SHA-256, and relationships
(``trainedOn``, ``testedOn``, ``descendantOf``). The bindings check every property's type and
cardinality (from the SPDX 3.0.1 SHACL model) when the document is serialised; :func:`check_spdx`
validates the JSON-LD against the official SPDX 3.0.1 JSON schema, reads it back with the
bindings, and checks ids are unique and every reference resolves.

The official schema (``https://spdx.org/schema/3.0.1/spdx-json-schema.json``) is not fetched: it is
read from the copy that ``lib4sbom`` ships as package data and accepted only if its SHA-256 is the
published file's (:data:`SPDX_SCHEMA_SHA256`), so a changed or substituted copy fails closed.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from finetrail import __version__
from finetrail.errors import CheckFailed, DependencyMissing
from finetrail.reports.loader import base_model_label, get, num
from finetrail.reports.model import ReportModel, fmt
from finetrail.reports.release import (
    REGISTER_COMMAND,
    SANITISING_TRANSFORMS,
    LicenceView,
)

CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
SPDX_SCHEMA_URL = "https://spdx.org/schema/3.0.1/spdx-json-schema.json"
# SHA-256 of the file published at SPDX_SCHEMA_URL (265,678 bytes, JSON Schema draft 2020-12).
SPDX_SCHEMA_SHA256 = "582c64e809d5b3ef9bd0c4de13a32391b47b0284a3e8d199569fb96f649234b1"
# Where a maintained package ships that file: (distribution, resource inside it).
SPDX_SCHEMA_SOURCE = ("lib4sbom", "schemas/spdx/3.0-schema.json")


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
    org = s.Organization(
        _id=sid("provider"),
        name=str(
            ws.get("provider") or ws.get("owner") or "not recorded (finetrail init --provider)"
        ),
    )
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
    licences: dict[str, Any] = {}
    presence = {
        "present": s.PresenceType.yes,
        "absent": s.PresenceType.no,
        "unknown": s.PresenceType.noAssertion,
    }
    rel_view = m.release
    for dv in rel_view.datasets:
        sha = dv.sha256
        d = dv.record or {}
        pkg = s.dataset_DatasetPackage(
            _id=sid(f"dataset-{sha[:16]}"),
            creationInfo=ci,
            name=dv.name,
            verifiedUsing=sha256(sha),
            software_primaryPurpose=s.software_SoftwarePurpose.data,
            dataset_datasetType=[s.dataset_DatasetType.text],
            dataset_hasSensitivePersonalInformation=presence[dv.pii.state],
            dataset_dataPreprocessing=[str(d["transform"])] if d.get("transform") else [],
            dataset_anonymizationMethodUsed=[str(d["transform"])]
            if d.get("transform") in SANITISING_TRANSFORMS
            else [],
            comment=(
                f"{fmt(d.get('records'))} records; personal data: {dv.pii.text}; "
                f"role: {dv.role_text}"
                if dv.registered
                else f"no dataset record in this workspace ({REGISTER_COMMAND}); "
                f"role: {dv.role_text}"
            ),
        )
        if dv.registered:
            pkg.suppliedBy = org
            if d.get("purpose"):
                pkg.dataset_intendedUse = str(d["purpose"])
            collection = "; ".join(str(x) for x in (d.get("source"), d.get("collection")) if x)
            if collection:
                pkg.dataset_dataCollectionProcess = collection
        datasets[sha] = pkg
        elements.append(pkg)
        lic = _licence_element(s, sid, ci, dv.licence, sha)
        if lic is not None:
            elements.append(lic)
            licences[sha] = lic

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
        view = rel_view.dataset(sha)
        parents = [datasets[p] for p in (view.parents if view else ()) if p in datasets]
        rel(s.RelationshipType.descendantOf, pkg, parents, f"derived-{sha[:16]}")
        if sha in licences:
            rel(s.RelationshipType.hasDeclaredLicense, pkg, [licences[sha]], f"licence-{sha[:16]}")

    if t is not None:
        base = s.ai_AIPackage(
            _id=sid("model-base"),
            creationInfo=ci,
            name=base_model_label(t),
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
            ai_typeOfModel=[f"{rel_view.method_label} of a causal language model"],
            # never None (the SPDX model refuses it): an unstated purpose is said to be so
            ai_informationAboutApplication=str(ws.get("intended_purpose") or "")
            or "not recorded (finetrail init --purpose)",
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
            ai_useSensitivePersonalInformation=presence[rel_view.uses_personal_data],
            ai_limitation="Figures are measurements on the recorded evaluation data; see the dossier.",
        )
        elements += [base, adapter]
        roots.append(adapter)
        rel(s.RelationshipType.descendantOf, adapter, [base], "adapter-base")
        train = [datasets[d.sha256] for d in rel_view.trained_on if d.sha256 in datasets]
        test = [
            datasets[d.sha256]
            for d in rel_view.with_role("eval", "validation")
            if d.sha256 in datasets and not d.trained_on
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


def _licence_element(s: Any, sid: Any, ci: Any, lic: LicenceView, sha: str) -> Any:
    """The declared licence: an SPDX license expression, or a custom licence carrying the
    recorded text; None when none is recorded (the relationship is then absent: no assertion)."""
    if lic.spdx is not None:
        return s.simplelicensing_LicenseExpression(
            _id=sid(f"licence-{sha[:16]}"),
            creationInfo=ci,
            simplelicensing_licenseExpression=lic.spdx,
        )
    if lic.text:
        return s.expandedlicensing_CustomLicense(
            _id=sid(f"licence-{sha[:16]}"),
            creationInfo=ci,
            name=lic.text,
            simplelicensing_licenseText=lic.text,
        )
    return None


@lru_cache(maxsize=1)
def official_schema() -> dict[str, Any]:
    """The published SPDX 3.0.1 JSON schema, read from ``lib4sbom``'s package data.

    Raises :class:`DependencyMissing` when it is not installed and :class:`CheckFailed` when the
    installed copy is not byte-for-byte the published file.
    """
    from importlib import metadata, resources

    dist, resource = SPDX_SCHEMA_SOURCE
    try:
        raw = resources.files(dist).joinpath(resource).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DependencyMissing(
            "the official SPDX 3.0.1 JSON schema is not installed",
            why=f"{dist} (which ships {SPDX_SCHEMA_URL} as {resource}) is not importable: {exc}",
            fix="pip install 'finetrail[reports]'",
        ) from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SPDX_SCHEMA_SHA256:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "unknown version"
        raise CheckFailed(
            "the installed SPDX 3.0.1 JSON schema is not the published file",
            why=(
                f"{dist} {version} ships {resource} with SHA-256 {digest}; "
                f"{SPDX_SCHEMA_URL} has {SPDX_SCHEMA_SHA256}"
            ),
            fix="reinstall with pip install -c constraints.txt 'finetrail[reports]'",
        )
    schema: dict[str, Any] = json.loads(raw)
    return schema


def schema_problems(data: Any, *, limit: int = 5) -> list[str]:
    """Where ``data`` breaks the official SPDX 3.0.1 JSON schema (at most ``limit``), by JSON path."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(official_schema())
    out = []
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    for err in errors[:limit]:
        best = jsonschema.exceptions.best_match([err])
        message = best.message if len(best.message) <= 300 else best.message[:300] + "..."
        out.append(f"{best.json_path}: {message}")
    if len(errors) > limit:
        out.append(f"and {len(errors) - limit} more")
    return out


def check_spdx(data: dict[str, Any]) -> None:
    """Validate against the official JSON schema; read it back with the bindings; ids unique;
    every reference resolves."""
    from spdx_python_model import v3_0_1 as s

    problems = [f"schema: {p}" for p in schema_problems(data)]
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
