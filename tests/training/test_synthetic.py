"""Synthetic data: deterministic from a seed, PII manifest consistent, planted disparity measurable."""

from __future__ import annotations

import json
import math
import re

import pytest

from finetrail.cli import main
from finetrail.training import _generic_corpus
from finetrail.training.synthetic import (
    ENTITIES,
    FILES,
    SUMMARY_FILE,
    domain_corpus,
    generic_corpus,
    measure_disparity,
    task_examples,
    write_synthetic,
)

SMALL = {"records": 200, "task_records": 100, "eval_records": 100, "public": 100}


def test_same_seed_gives_byte_identical_files(tmp_path):
    write_synthetic(out_dir=tmp_path / "a", seed=7, **SMALL)
    _generic_corpus.stdlib_docstrings.cache_clear()  # re-read the standard library too
    write_synthetic(out_dir=tmp_path / "b", seed=7, **SMALL)
    write_synthetic(out_dir=tmp_path / "c", seed=8, **SMALL)
    names = [*FILES.values(), SUMMARY_FILE]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    differing = [
        n
        for n in FILES.values()
        if n != "generic.jsonl"
        and (tmp_path / "a" / n).read_bytes() != (tmp_path / "c" / n).read_bytes()
    ]
    assert len(differing) == 4  # every seeded file changes with the seed


def test_parts_have_independent_seed_streams():
    # more task rows must not change the domain corpus, and the first task rows stay the same
    a = task_examples(seed=1, records=10, disparity=0.2)
    b = task_examples(seed=1, records=20, disparity=0.2)
    assert a == b[:10]
    assert domain_corpus(seed=1, records=5) == domain_corpus(seed=1, records=50)[:5]


@pytest.mark.parametrize("disparity", [0.0, 0.2, 0.5, -0.3])
def test_planted_disparity_is_measured_within_sampling_error(disparity):
    rows = task_examples(seed=11, records=4000, disparity=disparity)
    rates = measure_disparity(rows)
    se = math.sqrt(
        rates.p_yes_male * (1 - rates.p_yes_male) / rates.n_male
        + rates.p_yes_female * (1 - rates.p_yes_female) / rates.n_female
    )
    assert abs(rates.difference - disparity) < 4 * se, (rates, se)
    # the legitimate labels alone carry no gender gap
    legit = [r for r in rows if r.legitimate_label == "yes"]
    share_m = sum(r.gender == "male" for r in legit) / len(legit)
    share_all = sum(r.gender == "male" for r in rows) / len(rows)
    assert abs(share_m - share_all) < 0.05


def test_task_rows_carry_label_sensitive_columns_and_prompt(tmp_path):
    write_synthetic(out_dir=tmp_path, seed=2, **SMALL)
    rows = [json.loads(line) for line in (tmp_path / "task_eval.jsonl").read_text().splitlines()]
    assert len(rows) == 100
    for r in rows:
        assert set(r) == {"id", "prompt", "text", "label", "gender", "age_band", "region"}
        assert r["label"] in ("yes", "no")
        assert r["prompt"].startswith(r["text"]) and r["prompt"].endswith("Answer:")
        assert r["gender"] in ("female", "male") and r["age_band"] in ("18-29", "30-49", "50+")
        pronoun = "Her" if r["gender"] == "female" else "His"
        assert f" {pronoun} income is" in r["text"]


def test_pii_manifest_matches_text_and_stays_out_of_the_summary(tmp_path):
    write_synthetic(out_dir=tmp_path, seed=4, **SMALL)
    texts = [json.loads(x)["text"] for x in (tmp_path / "domain.jsonl").read_text().splitlines()]
    pii = [json.loads(x)["pii"] for x in (tmp_path / "domain_pii.jsonl").read_text().splitlines()]
    seen = set()
    for text, spans in zip(texts, pii, strict=True):
        assert 1 <= len(spans) <= 3
        for s in spans:
            assert text[s["start"] : s["end"]] == s["value"]
            assert text[: s["start"]].rstrip().endswith(s["lead_in"])
            seen.add(s["entity"])
        assert len(text) < 200  # one or two short sentences
    assert seen == set(ENTITIES)
    summary = (tmp_path / SUMMARY_FILE).read_text()
    assert not any(s["value"] in summary for spans in pii for s in spans)
    # identifiers look real: Luhn-valid cards, SSN shape, e-mail shape
    for s in (s for spans in pii for s in spans):
        if s["entity"] == "CREDIT_CARD":
            digits = [int(c) for c in s["value"]][::-1]
            total = sum(d if i % 2 == 0 else sum(divmod(2 * d, 10)) for i, d in enumerate(digits))
            assert total % 10 == 0, s["value"]
        if s["entity"] == "US_SSN":
            assert re.fullmatch(r"\d{3}-\d{2}-\d{4}", s["value"])
        if s["entity"] == "EMAIL_ADDRESS":
            assert re.fullmatch(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", s["value"])


def test_generic_corpus_has_no_domain_identifiers_and_no_contact_details():
    domain = domain_corpus(seed=0, records=1000)
    docs = generic_corpus(seed=0, public=2000)
    sources = {d.source.split(":")[0] for d in docs}
    assert sources == {"stdlib", "pydoc", "public"}
    assert sum(len(d.text) for d in docs) > 1_500_000
    blob = "\n".join(d.text for d in docs)
    identifiers = [s.value for r in domain for s in r.pii if s.entity != "PERSON"]
    assert len(identifiers) > 900
    assert not [v for v in identifiers if v in blob]
    email = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
    assert not [d.source for d in docs if d.source[:6] != "public" and email.search(d.text)]


def test_synth_command_writes_files_and_rejects_bad_disparity(tmp_path, capsys):
    out = tmp_path / "syn"
    rc = main(
        [
            "synth",
            str(out),
            "--seed",
            "5",
            "--records",
            "20",
            "--task-records",
            "30",
            "--eval-records",
            "30",
            "--public-records",
            "10",
            "--disparity",
            "0.3",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "planted +0.300" in text and "task_eval" in text
    assert all((out / name).is_file() for name in FILES.values())
    rc = main(["synth", str(tmp_path / "bad"), "--disparity", "1.5"])
    assert rc == 2
    assert "--disparity" in capsys.readouterr().err
