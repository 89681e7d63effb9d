"""`finetrail report --check`: a rendered dossier is checked statement by statement against the
evidence; each honest change of evidence changes the outputs that speak of it, and the check of
the earlier dossier fails naming the statement."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finetrail.governance.evidence.dataset import DatasetRecord
from finetrail.governance.evidence.training import TrainingEvidence
from finetrail.governance.workspace import Workspace
from tests.support.evidence import EVENTS, exposure_evidence
from tests.support.sample_release import ACTOR, build_fixed, report

RAW = "support-tickets"
MASKED = "support-tickets-masked"


def _dataset(ws: Workspace, name: str) -> tuple[str, DatasetRecord]:
    for p in sorted((ws.root / "evidence" / "datasets").glob("*.json")):
        rec = DatasetRecord.model_validate_json(p.read_text())
        if rec.name == name:
            return p.relative_to(ws.root).as_posix(), rec
    raise AssertionError(name)


def _rewrite(ws: Workspace, rel: str, record: Any) -> None:
    ws.write_record(rel, record, event=EVENTS[record.record_type][1], actor=ACTOR)


def scan_removed(ws: Workspace) -> None:
    rel, rec = _dataset(ws, RAW)
    _rewrite(ws, rel, rec.model_copy(update={"pii": None}))


def dp_off(ws: Workspace) -> None:
    rel = "evidence/training.json"
    t = TrainingEvidence.model_validate_json((ws.root / rel).read_text())
    dp = t.dp.model_copy(update={"enabled": False, "epsilon": None, "epsilon_rdp": None})
    _rewrite(ws, rel, t.model_copy(update={"dp": dp}))


def lineage_cut(ws: Workspace) -> None:
    rel, rec = _dataset(ws, MASKED)
    _rewrite(ws, rel, rec.model_copy(update={"derived_from": (), "transform": None}))


def probe_rerun(ws: Workspace) -> None:
    rel = "evidence/probes/exposure.json"
    old = json.loads((ws.root / rel).read_text())
    _rewrite(
        ws, rel, exposure_evidence(adapter_sha256=old["subject"]["adapter_sha256"], max_bits=9.5)
    )


def _spdx_ds(out: Path, name: str) -> dict[str, Any]:
    graph = json.loads((out / "spdx.json").read_text())["@graph"]
    return next(n for n in graph if n.get("type") == "dataset_DatasetPackage" and n["name"] == name)


def _trained_on(out: Path) -> list[str]:
    graph = json.loads((out / "spdx.json").read_text())["@graph"]
    names = {n["spdxId"]: n.get("name") for n in graph if "spdxId" in n}
    rel = [n for n in graph if n.get("relationshipType") == "trainedOn"]
    return sorted(names[x] for r in rel for x in r["to"])


def _bom_ds(out: Path, name: str) -> dict[str, Any]:
    bom = json.loads((out / "bom.cdx.json").read_text())
    comp: dict[str, Any] = next(c for c in bom["components"] if c["name"] == name)
    return comp


def _tags(out: Path) -> list[str]:
    import yaml

    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    return list(meta["tags"])


def _verdict(out: Path) -> str:
    import re

    m = re.search(r'data-verdict="([^"]*)"', (out / "index.html").read_text())
    assert m
    return m.group(1)


def _approvals(out: Path) -> str:
    import re

    m = re.search(r'data-approvals="([^"]*)"', (out / "index.html").read_text())
    assert m
    return m.group(1)


Reader = Callable[[Path], Any]

# mutation, the statement --check must name, (reader of the rendered output, before, after)
CASES: list[tuple[str, Callable[[Workspace], None], str, list[tuple[Reader, Any, Any]]]] = [
    (
        "scan removed",
        scan_removed,
        f"dataset {RAW} ",
        [
            (
                lambda o: _spdx_ds(o, RAW)["dataset_hasSensitivePersonalInformation"],
                "yes",
                "noAssertion",
            ),
            (
                lambda o: _bom_ds(o, RAW)["data"][0]["classification"],
                "personal data",
                "unknown: not scanned for personal data",
            ),
            # the sanitised set has a scan of its own: it stays "no"
            (lambda o: _spdx_ds(o, MASKED)["dataset_hasSensitivePersonalInformation"], "no", "no"),
        ],
    ),
    (
        "DP off",
        dp_off,
        "tags",
        [
            (lambda o: "differential-privacy" in _tags(o), True, False),
            (lambda o: "dp-sgd" in _tags(o), True, False),
            (
                lambda o: any(
                    p["name"] == "finetrail:dp.epsilon"
                    for p in _bom_ds(o, "support-assistant-adapter")["properties"]
                ),
                True,
                False,
            ),
        ],
    ),
    (
        "dataset removed from lineage",
        lineage_cut,
        "trainedOn",
        [
            (_trained_on, sorted([MASKED, RAW]), [MASKED]),
        ],
    ),
    (
        "approval stale, gate stale",
        probe_rerun,
        "verdict",
        [
            (_approvals, "1", "0"),
            (_verdict, "passed", "stale"),
        ],
    ),
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("claims") / "ws"
    build_fixed(root)
    code, _, err = report(["report", str(root)])
    assert code == 0, err
    return root


def test_the_check_passes_on_the_dossier_just_rendered(rendered: Path) -> None:
    code, out, err = report(["report", str(rendered), "--check"])
    assert code == 0, out + err
    assert "every statement agrees with the evidence" in out


@pytest.mark.parametrize(
    ("label", "mutate", "statement", "reads"), CASES, ids=[c[0] for c in CASES]
)
def test_each_mutation_changes_its_outputs_and_fails_the_check(
    rendered: Path,
    tmp_path: Path,
    label: str,
    mutate: Callable[[Workspace], None],
    statement: str,
    reads: list[tuple[Reader, Any, Any]],
) -> None:
    root = tmp_path / "ws"
    shutil.copytree(rendered, root)
    before = root / "dossier"
    for read, want, _ in reads:
        assert read(before) == want, label
    mutate(Workspace.open(root))

    code, out, err = report(["report", str(root), "--check", "--json"])
    assert code == 1, out + err
    found = json.loads(out)["disagreements"]
    assert any(statement in d["statement"] for d in found), found

    after = tmp_path / "after"
    code, _, err = report(["report", str(root), "--out", str(after)])
    assert code == 0, err
    for read, _, want in reads:
        assert read(after) == want, label
    code, out, err = report(["report", str(root), "--out", str(after), "--check"])
    assert code == 0, out + err


def test_a_forged_statement_in_the_dossier_is_named(rendered: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(rendered, root)
    spdx = root / "dossier" / "spdx.json"
    key = '"dataset_hasSensitivePersonalInformation": '
    assert key + '"yes"' in spdx.read_text()
    spdx.write_text(spdx.read_text().replace(key + '"yes"', key + '"no"'))
    bom = root / "dossier" / "bom.cdx.json"
    data = json.loads(bom.read_text())
    for p in data["metadata"]["component"]["properties"]:
        if p["name"] == "finetrail:verdict":
            p["value"] = "blocked"
    bom.write_text(json.dumps(data))
    card = root / "dossier" / "README.md"
    card.write_text(
        card.read_text().replace("**Model type:** LoRA adapter", "**Model type:** full fine-tune")
    )
    code, out, _ = report(["report", str(root), "--check", "--json"])
    assert code == 1
    named = {(d["file"], d["statement"]) for d in json.loads(out)["disagreements"]}
    assert ("bom.cdx.json", "verdict") in named
    assert ("README.md", "model type") in named
    assert f"dataset {RAW} " in " ".join(s for f, s in named if f == "spdx.json")


def test_a_missing_dossier_is_bad_input(tmp_path: Path, rendered: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(rendered, root)
    shutil.rmtree(root / "dossier")
    code, _, err = report(["report", str(root), "--check"])
    assert code == 2
    assert "no rendered dossier" in err and "Traceback" not in err
