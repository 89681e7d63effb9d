"""The labelled PII evaluation set: integrity, independence from the demo data, and the scorer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from finetrail.governance.pii.evaluate import (
    EntityScore,
    LabelledText,
    Span,
    eval_set_digest,
    format_table,
    load_eval_set,
    score,
    wilson_interval,
)

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "make_pii_eval_set.py"
PACKAGED = REPO / "governance" / "pii" / "data" / "pii_eval.jsonl"
ENTITIES = (
    "CREDIT_CARD",
    "EMAIL_ADDRESS",
    "IBAN_CODE",
    "IP_ADDRESS",
    "PERSON",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "URL",
    "US_SSN",
)


@pytest.fixture(scope="module")
def records() -> list[LabelledText]:
    return load_eval_set()


def _luhn_ok(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _fold(s: str) -> str:
    table = str.maketrans({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ø": "o", "Ø": "O", "ı": "i"})
    decomposed = unicodedata.normalize("NFKD", s.translate(table))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _values(records: list[LabelledText], entity: str) -> list[str]:
    return [r.text[s.start : s.end] for r in records for s in r.spans if s.entity == entity]


# --- the packaged file -------------------------------------------------------------------------


def test_packaged_file_loads(records: list[LabelledText]) -> None:
    assert 600 <= len(records) <= 1000
    assert len({r.id for r in records}) == len(records)
    assert len({r.text for r in records}) == len(records)
    assert PACKAGED.stat().st_size < 600_000
    assert eval_set_digest() == eval_set_digest(PACKAGED)
    assert re.fullmatch(r"[0-9a-f]{64}", eval_set_digest())
    assert load_eval_set(PACKAGED) == records


def test_file_is_canonical_jsonl() -> None:
    raw = PACKAGED.read_bytes()
    assert raw.endswith(b"\n")
    raw.decode("utf-8")
    for line in raw.decode("utf-8").splitlines():
        row = json.loads(line)
        assert sorted(row) == ["id", "source", "spans", "text"]
        assert line == json.dumps(row, sort_keys=True, ensure_ascii=False)


def test_spans_in_range_and_non_overlapping(records: list[LabelledText]) -> None:
    for r in records:
        last_end = 0
        for s in sorted(r.spans, key=lambda s: (s.start, s.end)):
            assert 0 <= s.start < s.end <= len(r.text), r.id
            assert s.start >= last_end, f"{r.id}: overlapping spans"
            value = r.text[s.start : s.end]
            assert value == value.strip(), f"{r.id}: span has surrounding whitespace"
            last_end = s.end
        assert set(s.entity for s in r.spans) <= set(ENTITIES), r.id


def test_every_entity_has_40_spans(records: list[LabelledText]) -> None:
    counts = Counter(s.entity for r in records for s in r.spans)
    for entity in ENTITIES:
        assert counts[entity] >= 40, (entity, counts[entity])
    assert "DATE_TIME" not in counts


def test_hard_negative_records_present(records: list[LabelledText]) -> None:
    negatives = [r for r in records if not r.spans]
    assert len(negatives) >= 50
    assert sum(1 for r in records if r.source == "negatives") == len(negatives)


def test_credit_cards_pass_luhn(records: list[LabelledText]) -> None:
    cards = _values(records, "CREDIT_CARD")
    assert cards
    for value in cards:
        assert re.fullmatch(r"\d[\d -]*\d", value), value
        assert 14 <= sum(c.isdigit() for c in value) <= 19, value
        assert _luhn_ok(value), value
    # the IIN ranges the brief asks for are all present
    prefixes = [re.sub(r"\D", "", v) for v in cards]
    for label, test in {
        "visa": lambda d: d.startswith("4"),
        "mastercard 51-55": lambda d: 51 <= int(d[:2]) <= 55,
        "mastercard 2221-2720": lambda d: 2221 <= int(d[:4]) <= 2720,
        "amex": lambda d: d[:2] in ("34", "37") and len(d) == 15,
        "diners": lambda d: len(d) == 14,
        "jcb": lambda d: 3528 <= int(d[:4]) <= 3589,
        "unionpay": lambda d: d.startswith("62"),
    }.items():
        assert any(test(d) for d in prefixes), label


def test_ibans_pass_mod97(records: list[LabelledText]) -> None:
    ibans = _values(records, "IBAN_CODE")
    assert len({v[:2] for v in ibans}) >= 8
    for value in ibans:
        assert _iban_ok(value), value


def test_ssns_are_valid(records: list[LabelledText]) -> None:
    for value in _values(records, "US_SSN"):
        m = re.fullmatch(r"(\d{3})([- ]?)(\d{2})\2(\d{4})", value)
        assert m, value
        area, group, serial = int(m.group(1)), int(m.group(3)), int(m.group(4))
        assert 0 < area < 900 and area != 666 and group > 0 and serial > 0, value


def test_phone_numbers_are_valid_numbers(records: list[LabelledText]) -> None:
    phonenumbers = pytest.importorskip("phonenumbers")
    regions = ("US", "GB", "DE", "FR", "IN", "BR")
    for value in _values(records, "PHONE_NUMBER"):
        assert any(
            phonenumbers.is_valid_number(phonenumbers.parse(value, region)) for region in regions
        ), value


# --- independence from the demo generator ------------------------------------------------------


def test_person_names_not_in_faker_en_us(records: list[LabelledText]) -> None:
    from faker.providers.person.en_US import Provider

    lists = (
        "first_names",
        "first_names_male",
        "first_names_female",
        "first_names_nonbinary",
        "last_names",
        "last_names_male",
        "last_names_female",
        "last_names_nonbinary",
    )
    faker_names = {_fold(n) for attr in lists for n in getattr(Provider, attr, ())}
    assert len(faker_names) > 1000
    persons = _values(records, "PERSON")
    assert len(persons) >= 40
    for value in persons:
        for token in re.split(r"[\s,\-]+", value):
            assert _fold(token) not in faker_names, (value, token)


def test_no_text_or_value_from_the_demo_generator(records: list[LabelledText]) -> None:
    from finetrail.training.synthetic import domain_corpus, public_records

    demo = [rec for seed in (0, 1, 2) for rec in domain_corpus(seed=seed, records=200)]
    public = {t for seed in (0, 1) for t in public_records(seed=seed, records=200)}
    texts = {r.text for r in records}
    assert not texts & {rec.text for rec in demo}
    assert not texts & public
    joined = "\n".join(texts)
    for rec in demo:
        for span in rec.pii:
            assert span.value not in joined, span.value
        # the templates' literal text between values (long pieces) is not reused either
        cuts = [0, *(p for s in rec.pii for p in (s.start, s.end)), len(rec.text)]
        for a, b in zip(cuts[::2], cuts[1::2], strict=True):
            piece = rec.text[a:b].strip()
            if len(piece) >= 25:
                assert piece not in joined, piece


def test_generator_is_deterministic(tmp_path: Path) -> None:
    out = tmp_path / "pii_eval.jsonl"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], check=True, capture_output=True
    )
    assert out.read_bytes() == PACKAGED.read_bytes()


# --- the scorer --------------------------------------------------------------------------------

TEXT = "Call Ngozi Eze on 020 7946 0321 or mail ngozi@example.org."
GOLD = LabelledText(
    "t1",
    TEXT,
    (
        Span(5, 14, "PERSON"),
        Span(18, 31, "PHONE_NUMBER"),
        Span(40, 57, "EMAIL_ADDRESS"),
    ),
    "test",
)
EMPTY = LabelledText("t2", "Order 4417820093 shipped.", (), "test")


def _perfect(text: str) -> list[tuple[str, int, int]]:
    by_text = {r.text: r for r in (GOLD, EMPTY)}
    return [(s.entity, s.start, s.end) for s in by_text[text].spans]


def test_perfect_detector() -> None:
    scores = score([GOLD, EMPTY], _perfect)
    assert set(scores) == {"PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS"}
    for s in scores.values():
        assert (s.tp, s.fp, s.fn, s.n) == (1, 0, 0, 1)
        assert s.precision == 1.0 and s.recall == 1.0
        assert s.recall_ci is not None and s.recall_ci[1] == 1.0 and s.recall_ci[0] < 1.0


def test_empty_detector() -> None:
    scores = score([GOLD, EMPTY], lambda text: [])
    for s in scores.values():
        assert (s.tp, s.fp, s.fn, s.n) == (0, 0, 1, 1)
        assert s.recall == 0.0
        assert s.precision is None and s.precision_ci is None


def test_one_false_positive() -> None:
    def detect(text: str) -> list[tuple[str, int, int]]:
        found = _perfect(text)
        if text == EMPTY.text:
            found.append(("PHONE_NUMBER", 6, 16))  # the order number
        return found

    scores = score([GOLD, EMPTY], detect)
    phone = scores["PHONE_NUMBER"]
    assert (phone.tp, phone.fp, phone.fn) == (1, 1, 0)
    assert phone.precision == 0.5 and phone.recall == 1.0
    assert scores["PERSON"].precision == 1.0


def test_overlap_threshold_is_half_the_gold_span() -> None:
    # gold PERSON is [5, 14), 9 characters: 5 overlapping characters match, 4 do not
    at_half = score([GOLD], lambda t: [("PERSON", 9, 20)], entities=["PERSON"])["PERSON"]
    assert (at_half.tp, at_half.fp, at_half.fn) == (1, 0, 0)
    below = score([GOLD], lambda t: [("PERSON", 10, 20)], entities=["PERSON"])["PERSON"]
    assert (below.tp, below.fp, below.fn) == (0, 1, 1)
    # a longer detection covering the whole gold span matches
    wide = score([GOLD], lambda t: [("PERSON", 0, 31)], entities=["PERSON"])["PERSON"]
    assert wide.tp == 1


def test_each_gold_span_matched_once() -> None:
    twice = score([GOLD], lambda t: [("PERSON", 5, 14), ("PERSON", 5, 10)], entities=["PERSON"])
    assert (twice["PERSON"].tp, twice["PERSON"].fp, twice["PERSON"].fn) == (1, 1, 0)


def test_matching_is_maximal_not_greedy() -> None:
    rec = LabelledText("t3", "ab cd", (Span(0, 2, "X"), Span(3, 5, "X")), "test")
    # [0, 5) may match either span, [1, 2) only the first ("b" is half of "ab"): a greedy pass
    # in start order gives [0, 5) the first span and starves [1, 2); the maximum matching gives 2
    found = [("X", 0, 5), ("X", 1, 2)]
    s = score([rec], lambda t: found)["X"]
    assert (s.tp, s.fp, s.fn) == (2, 0, 0)


def test_wrong_entity_is_not_a_match_and_aliases_map_names() -> None:
    def detect(text: str) -> list[tuple[str, int, int]]:
        return [("LOCATION", 5, 14)]

    plain = score([GOLD], detect)
    assert plain["PERSON"].tp == 0 and "LOCATION" not in plain
    mapped = score([GOLD], detect, aliases={"LOCATION": "PERSON"})
    assert mapped["PERSON"].tp == 1


def test_entities_filter_and_bad_offsets() -> None:
    assert set(score([GOLD], _perfect, entities=["URL"])) == {"URL"}
    assert score([GOLD], _perfect, entities=["URL"])["URL"].n == 0
    with pytest.raises(ValueError):
        score([GOLD], lambda t: [("PERSON", 5, 500)])
    with pytest.raises(ValueError):
        Span(3, 3, "PERSON")


def test_wilson_interval() -> None:
    assert wilson_interval(0, 0) is None
    lo, hi = wilson_interval(8, 10) or (0.0, 0.0)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = wilson_interval(0, 20) or (1.0, 1.0)
    assert lo == 0.0 and 0.16 < hi < 0.17


def test_format_table() -> None:
    table = format_table(
        {
            "regex": {"PERSON": EntityScore(tp=3, fp=1, fn=1), "URL": EntityScore(0, 0, 2)},
            "presidio": {"PERSON": EntityScore(4, 0, 0)},
        }
    )
    lines = table.splitlines()
    assert lines[0].startswith("| engine | entity | n |")
    assert len(lines) == 5
    assert lines[2].startswith("| regex | PERSON | 4 | 3 | 1 | 1 | 0.750 [")
    assert "| regex | URL | 2 | 0 | 0 | 2 | — | 0.000 [" in table
    assert lines[4].startswith("| presidio | PERSON | 4 |")


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "text": "abc", "spans": [{"start": 1, "end": 9, "entity": "X"}], "source": "s"}\n'
    )
    with pytest.raises(ValueError, match="line 1"):
        load_eval_set(bad)
    bad.write_text('{"id": "a", "text": "abc", "spans": [], "source": "s"}\n' * 2)
    with pytest.raises(ValueError, match="duplicate"):
        load_eval_set(bad)
