"""Registering datasets: formats, evidence fields, proofs, lineage, licences and bad input."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.governance.evidence.dataset import DatasetRecord
from finetrail.governance.evidence.registry import kind_by_name, record_class
from finetrail.governance.provenance import find_dataset, list_datasets, prove_record
from finetrail.governance.provenance.licenses import check_license
from finetrail.governance.provenance.proofcheck import check_proof, leaf_hash
from finetrail.governance.verify import verify_workspace

Register = Callable[..., int]


def only_record(ws: Path) -> DatasetRecord:
    (rec,) = list_datasets(workspace=ws)
    return rec


def workspace_state(ws: Path) -> tuple[int, list[str]]:
    """(ledger lines, files under evidence/ and artifacts/) - to show nothing was written."""
    lines = len((ws / "ledger.jsonl").read_bytes().splitlines())
    files = sorted(
        p.relative_to(ws).as_posix()
        for d in ("evidence", "artifacts")
        for p in (ws / d).rglob("*")
        if p.is_file()
    )
    return lines, files


def test_datasets_kind_is_registered() -> None:
    kind = kind_by_name("datasets")
    assert kind is not None and kind.many and kind.location == "evidence/datasets/*.json"
    assert record_class(kind) is DatasetRecord


def test_register_jsonl_writes_the_contract_fields(
    workspace: Path,
    register: Register,
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = jsonl_dataset(tmp_path / "tickets.jsonl", 40)
    rc = register(
        path,
        "tickets",
        "--split",
        "train=0.9",
        "--split",
        "validation=0.1",
        "--limitation",
        "English only",
        "--license",
        "cc-by-4.0",
    )
    assert rc == 0, capsys.readouterr().err
    rec = only_record(workspace)
    data = json.loads((workspace / f"evidence/datasets/{rec.sha256}.json").read_text())
    for key in (
        "name",
        "sha256",
        "merkle_root",
        "records",
        "license",
        "source",
        "collection",
        "legal_basis",
        "purpose",
        "derived_from",
        "transform",
        "pii",
    ):
        assert key in data
    assert rec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rec.records == 40 and rec.format == "jsonl" and rec.license == "CC-BY-4.0"
    assert rec.splits == {"train": 0.9, "validation": 0.1}
    assert rec.limitations == ("English only",)
    assert rec.pii is None  # not scanned: the gate cannot read pii.* and fails closed
    assert rec.fields["prompt"].types == ("string",) and rec.fields["id"].types == ("integer",)
    assert rec.fields["id"].present == 40
    chars = sum(
        len(r["prompt"]) + len(r["completion"])
        for r in map(json.loads, path.read_text().splitlines())
    )
    assert rec.tokens.count == -(-chars // 4)
    entries = [json.loads(line) for line in (workspace / "ledger.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in entries][-2:] == ["dataset.leaves", "dataset.registered"]
    assert entries[-1]["payload"]["merkle_root"] == rec.merkle_root
    report = verify_workspace(workspace)
    assert report.ok, report.render()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "text"])
def test_register_other_formats_and_prove_a_record(
    workspace: Path,
    register: Register,
    faker_texts: Callable[..., list[str]],
    tmp_path: Path,
    fmt: str,
) -> None:
    texts = faker_texts(25, seed=5)
    rows = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    if fmt == "csv":
        path = tmp_path / "d.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "text"])
            w.writerows([r["id"], r["text"]] for r in rows)
        record_bytes = json.dumps(
            rows[7], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "d.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        record_bytes = json.dumps(
            rows[7], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    else:
        path = tmp_path / "d.txt"
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
        record_bytes = texts[7].encode()
    assert register(path, f"set-{fmt}") == 0
    rec = only_record(workspace)
    assert rec.records == 25 and rec.format == fmt
    assert set(rec.fields) == ({"text"} if fmt == "text" else {"id", "text"})
    proof = prove_record(workspace=workspace, dataset=f"set-{fmt}", record_bytes=record_bytes)
    assert proof["leaf_index"] == 7 and proof["leaf_hash"] == leaf_hash(record_bytes).hex()
    assert check_proof(proof, root=rec.merkle_root, record=record_bytes) == (True, [])


def test_prove_cli_by_index_and_hash_and_check_proof(
    workspace: Path,
    register: Register,
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = jsonl_dataset(tmp_path / "t.jsonl", 30)
    assert register(path) == 0
    rec = only_record(workspace)
    line = path.read_bytes().splitlines()[12]
    capsys.readouterr()
    assert (
        main(
            [
                "data",
                "prove",
                str(workspace),
                rec.sha256[:10],
                "--record-hash",
                leaf_hash(line).hex(),
                "-o",
                str(tmp_path / "p.json"),
            ]
        )
        == 0
    )
    proof = json.loads((tmp_path / "p.json").read_text())
    assert proof["leaf_index"] == 12 and proof["tree_size"] == 30
    assert main(["data", "prove", str(workspace), "tickets", "--record", "12"]) == 0
    assert json.loads(capsys.readouterr().out) == proof
    (tmp_path / "rec.json").write_bytes(line + b"\n")
    assert (
        main(
            [
                "data",
                "check-proof",
                str(tmp_path / "p.json"),
                "--root",
                rec.merkle_root,
                "--record-file",
                str(tmp_path / "rec.json"),
            ]
        )
        == 0
    )
    assert "proof: VALID (record 12 of 30" in capsys.readouterr().out
    # A record that is not in the set cannot be proven in; a wrong root is refused.
    (tmp_path / "other.json").write_text('{"id": 999, "prompt": "never registered"}\n')
    assert (
        main(
            [
                "data",
                "prove",
                str(workspace),
                "tickets",
                "--record-file",
                str(tmp_path / "other.json"),
            ]
        )
        == 1
    )
    assert "the record is not in dataset 'tickets'" in capsys.readouterr().err
    assert main(["data", "check-proof", str(tmp_path / "p.json"), "--root", "ab" * 32]) == 1
    assert "proof: INVALID" in capsys.readouterr().err
    assert main(["data", "prove", str(workspace), "tickets", "--record", "30"]) == 2
    assert (
        "record 30 is out of range: the dataset has 30 records (0 to 29)" in capsys.readouterr().err
    )


def test_lineage_parents_transform_and_dag(
    workspace: Path,
    register: Register,
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = jsonl_dataset(tmp_path / "base.jsonl", 20)
    assert register(base, "base") == 0
    parent = only_record(workspace)
    lines = base.read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:15]) + "\n")
    before = workspace_state(workspace)
    # unknown parent, transform without parent, parent without transform: each refused
    assert (
        register(
            tmp_path / "train.jsonl", "train", "--derived-from", "f" * 64, "--transform", "split"
        )
        == 2
    )
    assert f"derived_from: no registered dataset matches '{'f' * 64}'" in capsys.readouterr().err
    assert register(tmp_path / "train.jsonl", "train", "--derived-from", "base") == 2
    assert "a derived dataset must name its transform" in capsys.readouterr().err
    assert workspace_state(workspace) == before
    assert (
        register(
            tmp_path / "train.jsonl",
            "train",
            "--derived-from",
            "base",
            "--transform",
            "split",
            "--transform-params",
            '{"fraction": 0.75, "seed": 1}',
        )
        == 0
    )
    child = find_dataset(workspace=workspace, ref="train")
    assert child.derived_from == (parent.sha256,)
    assert child.transform == "split" and child.transform_params == {"fraction": 0.75, "seed": 1}
    # The same file cannot come back as a descendant of itself (a cycle): it is refused.
    (tmp_path / "copy.jsonl").write_bytes(base.read_bytes())
    assert (
        register(tmp_path / "copy.jsonl", "again", "--derived-from", "train", "--transform", "copy")
        == 2
    )
    assert "already registered as 'base'" in capsys.readouterr().err
    assert verify_workspace(workspace).ok


def test_verify_reports_a_lineage_cycle(
    workspace: Path,
    register: Register,
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
) -> None:
    from finetrail.governance.workspace import Workspace

    assert register(jsonl_dataset(tmp_path / "a.jsonl", 5, seed=1), "a") == 0
    assert register(jsonl_dataset(tmp_path / "b.jsonl", 5, seed=2), "b") == 0
    a, b = (find_dataset(workspace=workspace, ref=n) for n in "ab")
    ws = Workspace.open(workspace)
    for rec, parent in ((a, b), (b, a)):  # written through the workspace: only lineage is wrong
        bad = rec.model_copy(update={"derived_from": (parent.sha256,), "transform": "loop"})
        ws.write_record(bad.rel_path, bad, event="dataset.registered", actor="mallory")
    report = verify_workspace(workspace)
    assert [f.code for f in report.errors] == ["lineage"]
    assert report.errors[0].message.startswith("lineage cycle: ")


def test_verify_reports_a_tampered_lineage_and_leaves(
    workspace: Path,
    register: Register,
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
) -> None:
    assert register(jsonl_dataset(tmp_path / "a.jsonl", 10), "a") == 0
    rec = only_record(workspace)
    leaves = workspace / rec.merkle.leaves_artifact
    data = bytearray(leaves.read_bytes())
    data[0] ^= 1
    leaves.write_bytes(bytes(data))
    report = verify_workspace(workspace)
    codes = {(f.code, f.location) for f in report.errors}
    assert ("modified", rec.merkle.leaves_artifact) in codes


@pytest.mark.parametrize(
    ("expr", "normalised"),
    [
        ("mit", "MIT"),
        ("Apache-2.0 OR mit", "Apache-2.0 OR MIT"),
        (
            "(MIT AND CC-BY-4.0) OR GPL-2.0-or-later WITH classpath-exception-2.0",
            "(MIT AND CC-BY-4.0) OR GPL-2.0-or-later WITH Classpath-exception-2.0",
        ),
        ("LicenseRef-internal-tickets", "LicenseRef-internal-tickets"),
        ("GPL-2.0+", "GPL-2.0+"),
    ],
)
def test_licence_expressions_are_normalised(expr: str, normalised: str) -> None:
    assert check_license(expr).expression == normalised


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("MITT", "unknown licence identifier 'MITT' (did you mean 'MIT'?)"),
        ("MIT OR", "the licence expression ends too early"),
        ("(MIT", "the licence expression ends too early"),
        ("MIT WITH Apache-2.0", "unknown licence exception 'Apache-2.0'"),
        (
            "Classpath-exception-2.0",
            "'Classpath-exception-2.0' is a licence exception; it goes after WITH",
        ),
        ("MIT MIT", "unexpected 'MIT' in the licence expression"),
    ],
)
def test_bad_licences_are_refused_with_a_reason(expr: str, message: str) -> None:
    from finetrail.errors import InputError

    with pytest.raises(InputError) as err:
        check_license(expr)
    assert err.value.what.startswith(message)
    assert err.value.field == "license"


def test_collects_every_problem_before_refusing(
    workspace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(
        [
            "data",
            "register",
            str(tmp_path / "missing.jsonl"),
            "-w",
            str(workspace),
            "--name",
            " ",
            "--source",
            "s",
            "--license",
            "Nope-1.0",
            "--collection",
            "c",
            "--legal-basis",
            "b",
            "--purpose",
            "p",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown licence identifier 'Nope-1.0'" in err
    assert "name is empty" in err
    assert "dataset file not found" in err
    assert "Traceback" not in err


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str, str]]:
    """name -> (file, error fragment, skip reason)."""
    (tmp / "utf8.jsonl").write_bytes(b'{"a": "ok"}\n{"a": "caf\xe9"}\n{"a": "fine"}\n')
    (tmp / "json.jsonl").write_text('{"a": 1}\n{"a": 2}\n{"a": 3,}\n{"a": 4}\n')
    (tmp / "array.jsonl").write_text('{"a": 1}\n[1, 2]\n')
    (tmp / "ragged.csv").write_text("id,text\n1,hello\n2,too,many\n3,fine\n")
    (tmp / "empty.jsonl").write_bytes(b"")
    (tmp / "blank.txt").write_text("\n\n  \n".replace("  ", ""))
    return {
        "non-utf8": (
            tmp / "utf8.jsonl",
            "line 2: not valid UTF-8 (byte 0xe9 at column 11)",
            "not_utf8",
        ),
        "malformed-json": (
            tmp / "json.jsonl",
            "line 3: malformed JSON (Expecting property name enclosed in double quotes, column 9)",
            "malformed_json",
        ),
        "not-object": (
            tmp / "array.jsonl",
            "line 2: expected a JSON object, found array",
            "not_object",
        ),
        "ragged-csv": (
            tmp / "ragged.csv",
            "line 3: the row has 3 fields, the header has 2",
            "ragged_row",
        ),
    }


@pytest.mark.parametrize("case", ["non-utf8", "malformed-json", "not-object", "ragged-csv"])
def test_bad_records_fail_cleanly_or_are_counted_when_skipped(
    workspace: Path,
    register: Register,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    path, message, reason = _bad_inputs(tmp_path)[case]
    before = workspace_state(workspace)
    assert register(path) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: line" in err and message in err
    assert "--skip-bad-records" in err and "Traceback" not in err
    assert workspace_state(workspace) == before  # nothing half-registered
    assert register(path, "tickets", "--skip-bad-records") == 0
    rec = only_record(workspace)
    assert rec.skipped.count == 1 and rec.skipped.reasons == {reason: 1}
    assert rec.skipped.first[0] == message
    assert verify_workspace(workspace).ok


@pytest.mark.parametrize("name", ["empty.jsonl", "blank.txt"])
def test_empty_files_are_refused(
    workspace: Path,
    register: Register,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    _bad_inputs(tmp_path)
    before = workspace_state(workspace)
    assert register(tmp_path / name) == 2
    assert "the dataset is empty: no records" in capsys.readouterr().err
    assert workspace_state(workspace) == before


def test_a_50_mb_single_record_is_refused_or_skipped(
    workspace: Path,
    register: Register,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as fh:
        fh.write(b'{"a": "small"}\n{"a": "')
        for _ in range(50):
            fh.write(b"x" * (1 << 20))
        fh.write(b'"}\n{"a": "after"}\n')
    before = workspace_state(workspace)
    assert register(path) == 2
    err = capsys.readouterr().err
    assert "line 2: a record of 52,428,809 bytes exceeds the limit of 8,388,608 bytes" in err
    assert workspace_state(workspace) == before
    assert register(path, "tickets", "--skip-bad-records") == 0
    rec = only_record(workspace)
    assert rec.records == 2 and rec.skipped.reasons == {"too_large": 1}


def test_unknown_format_and_duplicate_registration(
    workspace: Path,
    register: Register,
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "d.xyz").write_text("a\n")
    assert register(tmp_path / "d.xyz") == 2
    assert "cannot tell the format from the extension '.xyz'" in capsys.readouterr().err
    assert register(tmp_path / "d.xyz", "x", "--format", "text") == 0
    assert register(tmp_path / "d.xyz", "y", "--format", "text") == 2
    assert "this file is already registered as 'x'" in capsys.readouterr().err


def test_a_pii_summary_written_before_the_accuracy_fields_serialises_as_it_did() -> None:
    """Records written before ``accuracy``, ``residual_by_engine``, ``engine.ner`` and
    ``engine.configuration`` existed keep their exact bytes (and so their digests)."""
    from finetrail.governance.evidence.dataset import PiiSummary
    from finetrail.governance.io import canonical_json

    old = {
        "records_scanned": 3,
        "texts_scanned": 3,
        "records_with_pii": 1,
        "counts": {"EMAIL_ADDRESS": 1},
        "coverage": {"EMAIL_ADDRESS": "EmailRecognizer (Presidio pattern)"},
        "not_covered": ["LOCATION"],
        "score_threshold": 0.4,
        "masked_examples": [],
        "residual": {"EMAIL_ADDRESS": 0},
        "engine": {
            "analyzer": "presidio-analyzer 2.2.366",
            "nlp_engine": "no_op",
            "spacy_model": None,
            "language": "en",
            "name_list": None,
            "prefilter": True,
            "fields": None,
        },
    }
    summary = PiiSummary.model_validate(old)
    assert summary.accuracy is None and summary.engine.ner is None
    assert canonical_json(summary.model_dump(mode="json")) == canonical_json(old)
