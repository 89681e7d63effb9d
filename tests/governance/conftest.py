"""Fixtures for the provenance tests: a workspace, and records made with Faker in the test."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from faker import Faker

from finetrail.cli import main


def make_texts(n: int, *, seed: int = 11, pii_share: float = 0.4) -> list[str]:
    """Short support messages; about ``pii_share`` of them carry PII of one or two kinds."""
    fk = Faker("en_US")
    Faker.seed(seed)
    rnd = random.Random(seed)
    pii: list[Callable[[], str]] = [
        lambda: f"Hi, I'm {fk.name()}. Email me at {fk.email()} or call {fk.phone_number()}.",
        lambda: f"My card {fk.credit_card_number()} was charged on {fk.date()}.",
        lambda: f"SSN {fk.ssn()} is on the account. {fk.sentence()}",
        lambda: f"Login from {fk.ipv4()} at {fk.url()} was blocked. {fk.sentence()}",
        lambda: f"Refund to IBAN {fk.iban()} please.",
        lambda: (
            f"Dr. {fk.last_name()} met {fk.first_name()} {fk.last_name()} on {fk.day_of_week()}."
        ),
        lambda: f"Ship to {fk.address().replace(chr(10), ', ')}.",
    ]
    plain: list[Callable[[], str]] = [
        lambda: fk.paragraph(nb_sentences=2),
        lambda: fk.sentence(),
        lambda: f"Order {rnd.randint(100, 99999)} is late. {fk.sentence()}",
    ]
    return [
        rnd.choice(pii)() if rnd.random() < pii_share else rnd.choice(plain)() for _ in range(n)
    ]


def write_jsonl(path: Path, n: int, *, seed: int = 11, pii_share: float = 0.4) -> Path:
    fk = Faker("en_US")
    Faker.seed(seed + 1)
    with open(path, "w", encoding="utf-8") as fh:
        for i, text in enumerate(make_texts(n, seed=seed, pii_share=pii_share)):
            fh.write(json.dumps({"id": i, "prompt": text, "completion": fk.sentence()}) + "\n")
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    assert main(["init", str(ws), "--model", "m", "--version", "1", "--owner", "alice"]) == 0
    return ws


META = [
    "--source",
    "https://data.acme.test/tickets",
    "--license",
    "CC-BY-4.0",
    "--collection",
    "support tickets exported 2024-05",
    "--legal-basis",
    "GDPR Art. 6(1)(f)",
    "--purpose",
    "fine-tune a support assistant",
]


@pytest.fixture
def register(workspace: Path) -> Callable[..., int]:
    """Run ``finetrail data register WS PATH --name NAME ...`` in-process."""

    def run(path: Path | str, name: str = "tickets", *extra: str) -> int:
        return main(
            [
                "data",
                "register",
                str(workspace),
                str(path),
                "--name",
                name,
                *META,
                *extra,
            ]
        )

    return run


@pytest.fixture
def faker_texts() -> Callable[..., list[str]]:
    return make_texts


@pytest.fixture
def jsonl_dataset() -> Callable[..., Path]:
    return write_jsonl
