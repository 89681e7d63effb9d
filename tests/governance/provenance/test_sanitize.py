"""Sanitising: presidio-anonymizer operators, a new derived dataset, a re-scan with residuals."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.governance.provenance import find_dataset, list_datasets
from finetrail.governance.provenance.api import key_id
from finetrail.governance.verify import verify_workspace


def sanitize(ws: Path, *args: str) -> int:
    return main(["data", "sanitize", str(ws), "tickets", "--workers", "1", *args])


@pytest.fixture
def registered(workspace: Path, register: Callable[..., int], tmp_path: Path) -> Path:
    rows = [
        {
            "prompt": "Hi, I'm Maria Lopez, mail maria.lopez@example.org or call 212-555-0199.",
            "n": 1,
        },
        {"prompt": "Nothing personal in this one.", "n": 2},
        {
            "prompt": "Card 4111 1111 1111 1111, and John Smith again: john.smith@example.net",
            "n": 3,
        },
    ]
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert register(path, "tickets", "--scan", "--workers", "1") == 0
    return path


def test_replace_writes_a_derived_dataset_and_rescans_it(
    workspace: Path,
    registered: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "clean.jsonl"
    assert sanitize(workspace, "--input", str(registered), "--output", str(out)) == 0
    printed = capsys.readouterr().out
    parent = find_dataset(workspace=workspace, ref="tickets")
    assert parent.pii is not None
    before = ", ".join(f"{k}={v}" for k, v in parent.pii.counts.items())
    assert f"found in the input: {before}" in printed
    assert {"CREDIT_CARD", "EMAIL_ADDRESS", "PERSON"} <= set(parent.pii.counts)
    text = out.read_text()
    for raw in (
        "Maria Lopez",
        "maria.lopez@example.org",
        "212-555-0199",
        "4111 1111 1111 1111",
        "John Smith",
    ):
        assert raw not in text
    lines = text.splitlines()
    assert json.loads(lines[0])["prompt"].startswith(
        "Hi, I'm <PERSON>, mail <EMAIL_ADDRESS> or call <"
    )
    assert (
        lines[1].encode() == registered.read_bytes().splitlines()[1]
    )  # untouched record, same bytes
    assert json.loads(lines[2]) == {
        "prompt": "Card <CREDIT_CARD>, and <PERSON> again: <EMAIL_ADDRESS>",
        "n": 3,
    }
    child = find_dataset(workspace=workspace, ref="tickets (sanitised: replace)")
    assert child.derived_from == (parent.sha256,) and child.transform == "pii-sanitize"
    assert child.transform_params["operator"] == "replace"
    assert child.license == parent.license and child.legal_basis == parent.legal_basis
    assert child.pii is not None and child.pii.counts == {}
    assert child.pii.residual == dict.fromkeys(parent.pii.counts, 0)
    # the unchanged record has the same Merkle leaf in both datasets
    leaves_p = (workspace / parent.merkle.leaves_artifact).read_bytes()
    leaves_c = (workspace / child.merkle.leaves_artifact).read_bytes()
    assert leaves_p[32:64] == leaves_c[32:64] and leaves_p[:32] != leaves_c[:32]
    assert verify_workspace(workspace).ok


def test_keyed_hash_from_env_is_stable_and_names_the_key_not_the_secret(
    workspace: Path,
    registered: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s3cret-key-0123456789abcdef"
    monkeypatch.setenv("PII_KEY", secret)
    out = tmp_path / "hashed.jsonl"
    assert (
        sanitize(
            workspace,
            "--input",
            str(registered),
            "--output",
            str(out),
            "--operator",
            "hash",
            "--key-env",
            "PII_KEY",
            "--entity",
            "EMAIL_ADDRESS",
            "--entity",
            "PERSON",
        )
        == 0
    )
    text = out.read_text()
    assert "maria.lopez@example.org" not in text and "Maria Lopez" not in text
    assert "212-555-0199" in text  # phone numbers were not targeted
    child = find_dataset(workspace=workspace, ref="tickets (sanitised: hash)")
    assert child.transform_params["key_id"] == key_id(secret.encode())
    assert child.transform_params["entities"] == ["EMAIL_ADDRESS", "PERSON"]
    assert child.pii is not None and child.pii.residual is not None
    assert set(child.pii.residual) == {"EMAIL_ADDRESS", "PERSON"}
    assert child.pii.residual["EMAIL_ADDRESS"] == 0
    assert child.pii.counts.get("PHONE_NUMBER") == 1  # the re-scan still sees what was left
    for p in workspace.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes()
    # the same key gives the same token for the same value (joins stay possible)
    from presidio_anonymizer.operators import Hash

    token = Hash().operate("Maria Lopez", {"hash_type": "sha256", "salt": secret.encode()})
    assert token in text


def test_mask_operator_on_csv(
    workspace: Path, register: Callable[..., int], tmp_path: Path
) -> None:
    path = tmp_path / "t.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        w.writerow(["1", "Call 212-555-0199, John Smith"])
        w.writerow(["2", "no pii"])
    assert register(path, "tickets") == 0  # registered without a scan; sanitize scans anyway
    out = tmp_path / "masked.csv"
    assert (
        sanitize(workspace, "--input", str(path), "--output", str(out), "--operator", "mask") == 0
    )
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows == [["id", "text"], ["1", "Call ************, **********"], ["2", "no pii"]]


def test_refusals_leave_no_output_and_no_record(
    workspace: Path,
    registered: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "o.jsonl"
    assert (
        sanitize(workspace, "--input", str(registered), "--output", str(out), "--operator", "hash")
        == 2
    )
    assert "--operator hash needs a key" in capsys.readouterr().err
    (tmp_path / "k").write_text("short")
    assert (
        sanitize(
            workspace,
            "--input",
            str(registered),
            "--output",
            str(out),
            "--operator",
            "hash",
            "--key-file",
            str(tmp_path / "k"),
        )
        == 2
    )
    assert "the hash operator needs a key of at least 16 bytes" in capsys.readouterr().err
    other = tmp_path / "other.jsonl"
    other.write_text(registered.read_text() + '{"prompt": "extra"}\n')
    assert sanitize(workspace, "--input", str(other), "--output", str(out)) == 2
    assert "the input is not the registered dataset 'tickets'" in capsys.readouterr().err
    assert (
        sanitize(
            workspace, "--input", str(registered), "--output", str(out), "--entity", "IBAN_CODE"
        )
        == 2
    )
    assert "nothing to sanitise" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".o.jsonl.*"))
    assert len(list_datasets(workspace=workspace)) == 1


def test_parquet_keeps_its_schema(
    workspace: Path, register: Callable[..., int], tmp_path: Path
) -> None:
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"id": 1, "when": datetime.datetime(2024, 1, 1), "text": "Mail ana.silva@example.org now"},
        {"id": 2, "when": datetime.datetime(2024, 1, 2), "text": "nothing here"},
    ]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert register(path, "tickets") == 0
    out = tmp_path / "clean.parquet"
    assert sanitize(workspace, "--input", str(path), "--output", str(out)) == 0
    table = pq.read_table(out)
    assert table.schema == pq.read_table(path).schema
    assert table.to_pylist() == [{**rows[0], "text": "Mail <EMAIL_ADDRESS> now"}, rows[1]]
