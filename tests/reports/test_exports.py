"""Machine-readable exports: CycloneDX 1.6 ML-BOM and SPDX 3.0.1 (AI and Dataset profiles)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from finetrail.errors import CheckFailed, DependencyMissing
from tests.support.sample_release import build_fixed, report


@pytest.fixture(scope="module")
def dossier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exports") / "ws"
    build_fixed(root)
    code, _, err = report(["report", str(root), "--format", "md,cyclonedx,spdx"])
    assert code == 0, err
    return root / "dossier"


def test_bom_passes_the_strict_cyclonedx_16_validator(dossier: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = (dossier / "bom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6"
    types = sorted(c["type"] for c in bom["components"])
    assert types == [
        "data",
        "data",
        "data",
        "file",
        "machine-learning-model",
        "machine-learning-model",
    ]  # raw tickets, their sanitised derivative, the fairness evaluation set
    for c in bom["components"]:
        assert [h["alg"] for h in c["hashes"]] == ["SHA-256"], c["name"]
    card = bom["metadata"]["component"]["modelCard"]
    metrics = {m["type"]: m for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics["demographic_parity_difference"]["confidenceInterval"] == {
        "lowerBound": "0.01",
        "upperBound": "0.08",
    }
    readme = (dossier / "README.md").read_bytes()
    import hashlib

    card_comp = next(c for c in bom["components"] if c["type"] == "file")
    assert card_comp["hashes"][0]["content"] == hashlib.sha256(readme).hexdigest()


def test_every_bom_ref_is_unique_and_resolves(dossier: Path) -> None:
    bom = json.loads((dossier / "bom.cdx.json").read_text())
    refs = [bom["metadata"]["component"]["bom-ref"]] + [c["bom-ref"] for c in bom["components"]]
    refs.append(bom["metadata"]["component"]["modelCard"]["bom-ref"])
    assert len(refs) == len(set(refs))
    used = {d["ref"] for d in bom["dependencies"]} | {
        x for d in bom["dependencies"] for x in d.get("dependsOn", [])
    }
    used |= {
        d["ref"] for d in bom["metadata"]["component"]["modelCard"]["modelParameters"]["datasets"]
    }
    assert used <= set(refs)
    adapter = next(d for d in bom["dependencies"] if d["ref"] == "model-adapter")
    # the adapter depends on the base model and on exactly the data training read for training
    # (the sanitised set); the raw parent is reached through the dataset's own dependency, and
    # the evaluation set is not a dependency of the weights
    by_name = {c["name"]: c["bom-ref"] for c in bom["components"]}
    assert sorted(adapter["dependsOn"]) == sorted(["model-base", by_name["support-tickets-masked"]])
    clean = next(d for d in bom["dependencies"] if d["ref"] == by_name["support-tickets-masked"])
    assert clean["dependsOn"] == [by_name["support-tickets"]]


def test_bom_validation_rejects_a_broken_bom(dossier: Path) -> None:
    from finetrail.reports.bom import validate_bom

    good = json.loads((dossier / "bom.cdx.json").read_text())
    validate_bom(good)
    dangling = copy.deepcopy(good)
    dangling["dependencies"][0]["dependsOn"] = ["no-such-ref"]
    with pytest.raises(CheckFailed, match="resolve to nothing"):
        validate_bom(dangling)
    bad_schema = copy.deepcopy(good)
    bad_schema["components"][0]["type"] = "dataset-ish"
    with pytest.raises(CheckFailed, match="failed validation"):
        validate_bom(bad_schema)


def test_spdx_document_reads_back_with_the_spdx_3_0_1_model(dossier: Path) -> None:
    from spdx_python_model import v3_0_1 as s

    from finetrail.reports.spdx import check_spdx

    data = json.loads((dossier / "spdx.json").read_text())
    check_spdx(data)
    assert data["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
    import io

    objset = s.SHACLObjectSet()
    s.JSONLDDeserializer().read(io.BytesIO(json.dumps(data).encode()), objset)
    ai = [o for o in objset.objects if isinstance(o, s.ai_AIPackage)]
    ds = [o for o in objset.objects if isinstance(o, s.dataset_DatasetPackage)]
    assert len(ai) == 2 and len(ds) == 3
    assert all(o.verifiedUsing[0].algorithm == s.HashAlgorithm.sha256 for o in ai + ds)
    doc = next(o for o in objset.objects if isinstance(o, s.SpdxDocument))
    assert set(doc.profileConformance) >= {
        s.ProfileIdentifierType.ai,
        s.ProfileIdentifierType.dataset,
    }
    kinds = {str(o.relationshipType) for o in objset.objects if isinstance(o, s.Relationship)}
    assert {s.RelationshipType.trainedOn, s.RelationshipType.testedOn} <= kinds


def test_spdx_check_rejects_dangling_references(dossier: Path) -> None:
    from finetrail.reports.spdx import check_spdx

    data = json.loads((dossier / "spdx.json").read_text())
    rel = next(n for n in data["@graph"] if n.get("type") == "Relationship")
    rel["to"] = ["urn:finetrail:nowhere"]
    with pytest.raises(CheckFailed, match="resolve to nothing"):
        check_spdx(data)


def test_spdx_against_the_official_json_schema(dossier: Path) -> None:
    """The published SPDX 3.0.1 schema (draft 2020-12) accepts the document, with no errors."""
    import hashlib
    import importlib.resources

    import jsonschema

    from finetrail.reports import spdx

    dist, resource = spdx.SPDX_SCHEMA_SOURCE
    raw = importlib.resources.files(dist).joinpath(resource).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == spdx.SPDX_SCHEMA_SHA256
    schema = json.loads(raw)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    data = json.loads((dossier / "spdx.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert errors == []


def _spdx_node(data: dict, kind: str) -> dict:
    return next(n for n in data["@graph"] if n.get("type") == kind)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: _spdx_node(d, "ai_AIPackage").update(ai_madeUpField="x"), "ai_madeUpField"),
        (lambda d: _spdx_node(d, "CreationInfo").pop("specVersion"), "'specVersion' is a required"),
        (
            lambda d: _spdx_node(d, "Relationship").update(relationshipType="learnedFrom"),
            "'learnedFrom' is not one of",
        ),
        (
            lambda d: _spdx_node(d, "ai_AIPackage").update(ai_energyConsumption="lots"),
            "ai_energyConsumption",
        ),
        (
            lambda d: d.update({"@context": "https://spdx.org/rdf/3.0.0/spdx-context.jsonld"}),
            "$['@context']",
        ),
    ],
    ids=["unknown-property", "missing-required", "bad-enum", "wrong-type", "wrong-context"],
)
def test_spdx_schema_check_rejects_invalid_documents(dossier: Path, change, named: str) -> None:
    from finetrail.reports.spdx import check_spdx, schema_problems

    data = json.loads((dossier / "spdx.json").read_text())
    assert schema_problems(data) == []
    change(data)
    problems = schema_problems(data)
    assert problems and any(named in p for p in problems), problems
    with pytest.raises(CheckFailed, match="failed validation") as info:
        check_spdx(data)
    assert "schema: $" in str(info.value.why)


def test_spdx_schema_copy_that_is_not_the_published_file_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.resources

    from finetrail.reports import spdx

    dist, resource = spdx.SPDX_SCHEMA_SOURCE
    raw = importlib.resources.files(dist).joinpath(resource).read_bytes()
    pkg = tmp_path / "fake_schema_pkg"
    (pkg / Path(resource).parent).mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    # One space fewer: the same schema to a JSON parser, but no longer the published bytes.
    (pkg / resource).write_bytes(raw.replace(b"  ", b" ", 1))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(spdx, "SPDX_SCHEMA_SOURCE", ("fake_schema_pkg", resource))
    spdx.official_schema.cache_clear()
    try:
        with pytest.raises(CheckFailed, match="not the published file") as info:
            spdx.official_schema()
        assert spdx.SPDX_SCHEMA_SHA256 in str(info.value.why)
        monkeypatch.setattr(spdx, "SPDX_SCHEMA_SOURCE", ("no_such_schema_pkg", resource))
        spdx.official_schema.cache_clear()
        with pytest.raises(DependencyMissing, match="not installed"):
            spdx.official_schema()
    finally:
        spdx.official_schema.cache_clear()
