"""Canary formats, drawing, planting into a workspace and committing before training."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.errors import InputError
from finetrail.governance.io import sha256_bytes
from finetrail.governance.probes.canaries import (
    CANARIES_ARTIFACT,
    CanarySet,
    augment,
    build_canary_set,
    draw_canaries,
    inclusion_digest,
    load_canaries,
    plant_file,
    read_jsonl,
)
from finetrail.governance.probes.formats import EMAIL, FORMATS, PIN6, SSN, format_by_name
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace


@pytest.mark.parametrize(("fmt", "space"), [(PIN6, 10**6), (SSN, 10**9), (EMAIL, 26**12)])
def test_format_space_and_index_round_trip(fmt, space) -> None:  # type: ignore[no-untyped-def]
    assert fmt.space_size == space
    assert fmt.space_bits == pytest.approx(math.log2(space))
    rng = random.Random(0)
    for _ in range(50):
        secret = fmt.random_secret(rng)
        assert fmt.matches(secret)
        assert fmt.secret_at(fmt.index_of(secret)) == secret
        assert fmt.find(fmt.render(secret)) == [secret]
    assert fmt.secret_at(0) == "".join(slot[0] for slot in fmt.slots)
    assert fmt.index_of(fmt.secret_at(space - 1)) == space - 1


def test_unknown_format_names_the_choices() -> None:
    with pytest.raises(InputError, match="unknown canary format 'iban'") as info:
        format_by_name("iban")
    assert all(f.name in info.value.fix for f in FORMATS)  # type: ignore[operator]


def test_draw_assigns_formats_repetitions_and_fair_coins() -> None:
    cans = draw_canaries(formats=[PIN6, SSN], m=600, repetitions=(1, 4, 16), seed=3)
    assert [c.format for c in cans[:4]] == ["pin6", "ssn", "pin6", "ssn"]
    assert [c.repetitions for c in cans[:6]] == [1, 1, 4, 4, 16, 16]
    assert len({c.secret for c in cans}) == 600
    share = sum(c.included for c in cans) / 600
    assert 0.44 < share < 0.56  # Binomial(600, 1/2): 4 standard deviations
    assert all(c.copies == (c.repetitions if c.included else 0) for c in cans)
    assert draw_canaries(formats=[PIN6], m=5, seed=3) == draw_canaries(formats=[PIN6], m=5, seed=3)


def test_draw_avoids_secrets_present_in_the_data() -> None:
    taken = [f"{i:06d}" for i in range(0, 10**6, 7)]
    text = " ".join(taken[:5000])
    cans = draw_canaries(formats=[PIN6], m=50, seed=1, avoid=[text])
    assert not any(c.secret in text for c in cans)


def test_augment_inserts_exactly_the_included_copies() -> None:
    cans = draw_canaries(formats=[PIN6], m=30, seed=2)
    records = [{"text": f"record {i}", "label": i} for i in range(100)]
    out = augment(records, cans, text_field="text", seed=0)
    assert len(out) == 100 + sum(c.copies for c in cans)
    texts = [r["text"] for r in out]
    for c in cans:
        assert texts.count(c.text) == c.copies
    assert [r for r in out if "label" in r] == records  # originals kept, in order


def test_canary_set_digests_are_checked_on_parse() -> None:
    cans = draw_canaries(formats=[PIN6], m=6, seed=4)
    cs = build_canary_set(cans, repetitions=(1, 4, 16))
    data = cs.to_json_dict()
    assert CanarySet.parse(data) == cs
    flipped = [dict(c) for c in data["canaries"]]
    flipped[0]["included"] = not flipped[0]["included"]
    with pytest.raises(InputError, match="inclusion_sha256 does not match"):
        CanarySet.parse({**data, "canaries": flipped}, source="canaries.json")
    assert inclusion_digest(cans) == sha256_bytes(
        "".join("1" if c.included else "0" for c in cans).encode()
    )


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    Workspace.init(tmp_path / "ws", model="m", version="1", owner="team")
    return tmp_path / "ws"


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(
        "".join(json.dumps({"text": f"ticket {i} about a refund"}) + "\n" for i in range(40)),
        encoding="utf-8",
    )
    return path


def test_plant_commits_before_training(workspace: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "augmented.jsonl"
    cs = plant_file(workspace, data=dataset, out=out, m=12, seed=7, actor="alice")
    records = read_jsonl(out, text_field="text")
    assert len(records) == 40 + sum(c.copies for c in cs.canaries)
    assert cs.lineage is not None
    assert cs.lineage.output.sha256 == sha256_bytes(out.read_bytes())
    assert cs.lineage.source.sha256 == sha256_bytes(dataset.read_bytes())
    ws = Workspace.open(workspace)
    assert load_canaries(ws) == cs
    event = [e for e in ws.ledger.entries() if e.kind == "canaries.committed"]
    assert len(event) == 1
    payload = event[0].payload
    assert payload["path"] == CANARIES_ARTIFACT
    assert payload["canaries_sha256"] == cs.canaries_sha256
    assert payload["inclusion_sha256"] == cs.inclusion_sha256
    assert payload["augmented_sha256"] == cs.lineage.output.sha256
    assert verify_workspace(workspace).ok


def test_plant_refuses_after_training_and_twice(
    workspace: Path, dataset: Path, tmp_path: Path
) -> None:
    plant_file(workspace, data=dataset, out=tmp_path / "a.jsonl", m=4, seed=1, actor="a")
    with pytest.raises(InputError, match="already holds a committed canary set"):
        plant_file(workspace, data=dataset, out=tmp_path / "b.jsonl", m=4, seed=1, actor="a")
    Workspace.init(tmp_path / "ws2", model="m", version="1", owner="t")
    ws2 = Workspace.open(tmp_path / "ws2")
    ws2.write_bytes("evidence/training.json", b"{}\n", event="training.completed", actor="t")
    with pytest.raises(InputError, match="must be committed before training"):
        plant_file(tmp_path / "ws2", data=dataset, out=tmp_path / "c.jsonl", m=4, actor="a")
    assert not (tmp_path / "c.jsonl").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the dataset is empty"),
        ('{"text": "ok"}\n{oops\n', "line 2: malformed JSON"),
        ('{"text": 3}\n', "line 1: field 'text' missing or not a string"),
        ("[1, 2]\n", "line 1: expected an object"),
    ],
)
def test_bad_datasets_name_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        read_jsonl(path, text_field="text")
    assert info.value.path == str(path)


def test_cli_plant_and_show(
    workspace: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "aug.jsonl"
    rc = main(
        [
            "canaries",
            "plant",
            str(workspace),
            "--data",
            str(dataset),
            "--out",
            str(out),
            "--m",
            "9",
            "--formats",
            "pin6,ssn",
            "--repetitions",
            "1,4",
            "--seed",
            "5",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "committed artifacts/canaries.json" in printed
    rc = main(["canaries", "show", str(workspace)])
    shown = capsys.readouterr().out
    assert rc == 0
    assert "canaries: 9" in shown and "inclusion_sha256" in shown
    cs = load_canaries(Workspace.open(workspace))
    assert cs is not None
    assert not any(c.secret in printed + shown for c in cs.canaries)  # secrets never printed


def test_cli_plant_bad_input_exits_2(
    workspace: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "canaries",
            "plant",
            str(workspace),
            "--data",
            str(dataset),
            "--out",
            str(tmp_path / "x.jsonl"),
            "--repetitions",
            "1,x",
        ]
    )
    assert rc == 2
    assert "field '--repetitions'" in capsys.readouterr().err
    rc = main(
        [
            "canaries",
            "plant",
            str(workspace),
            "--data",
            str(tmp_path / "missing.jsonl"),
            "--out",
            str(tmp_path / "x.jsonl"),
        ]
    )
    assert rc == 2
    assert "file not found" in capsys.readouterr().err
    rc = main(["canaries", "show", str(workspace)])
    assert rc == 2
    assert "no canary set committed" in capsys.readouterr().err
