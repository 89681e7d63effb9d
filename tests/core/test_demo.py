"""`finetrail demo --quick`: the whole pipeline end to end, as CI runs it.

One run (module-scoped) feeds every test here: the pipeline's outputs, their integrity, that every
evidence file round-trips through its registered record class, and that no raw PII value of the
training data reaches any rendered file.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.governance.evidence.registry import EVIDENCE_KINDS, record_class
from finetrail.governance.verify import verify_workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--quick", "--out", str(out)])
    text = buf.getvalue()
    assert code == 0, text[-5000:]
    return out, text


def _workspaces(out: Path) -> list[Path]:
    return sorted((out / "dossiers" / "support-assistant").iterdir())


def test_demo_builds_two_verified_releases_with_dossiers(demo: tuple[Path, str]) -> None:
    out, text = demo
    workspaces = _workspaces(out)
    assert [w.name for w in workspaces] == ["1.0.0-control", "1.0.0-dp"]
    for ws in workspaces:
        assert verify_workspace(ws).ok
        for name in (
            "index.html",
            "annex_iv.md",
            "nist_ai_rmf.md",
            "README.md",
            "bom.cdx.json",
            "spdx.json",
            "coverage.json",
        ):
            assert (ws / "dossier" / name).is_file(), name
        assert list((ws / "evidence" / "gate").glob("*.dsse.json"))
        assert str(ws / "dossier" / "index.html") in text
    assert (workspaces[1] / "dossier" / "diff.md").is_file()
    assert "mlflow ui --backend-store-uri sqlite:///" in text
    assert "memorised identifiers" in text and "gate (eu-ai-act-high-risk)" in text


def test_dp_release_states_its_guarantee_and_the_control_states_none(
    demo: tuple[Path, str],
) -> None:
    out, _ = demo
    control, dp = (
        json.loads((w / "evidence" / "training.json").read_text()) for w in _workspaces(out)
    )
    assert control["dp"]["enabled"] is False and control["dp"]["epsilon"] is None
    assert dp["dp"]["enabled"] is True
    assert 0 < dp["dp"]["epsilon"] <= 1.0 + 1e-6
    assert dp["dp"]["accountant"] == "prv"
    audit = json.loads((_workspaces(out)[1] / "evidence" / "probes" / "dp_audit.json").read_text())
    assert audit["verdict"] == "consistent"
    assert audit["empirical_epsilon_lower_bound"] <= dp["dp"]["epsilon"]
    # The configured base-model name travels from the training config to the evidence and the card.
    assert control["base_model"]["name"] == dp["base_model"]["name"] == "finetrail-demo-tiny-gpt2"
    card = (_workspaces(out)[1] / "dossier" / "README.md").read_text()
    assert "**Finetuned from model:** finetrail-demo-tiny-gpt2 (weights sha256" in card


def test_every_evidence_file_round_trips_through_its_record_class(demo: tuple[Path, str]) -> None:
    out, _ = demo
    seen: set[str] = set()
    for ws in _workspaces(out):
        files = [
            p for p in ws.rglob("*.json") if "dossier" not in p.parts and "mlflow" not in str(p)
        ]
        for kind in EVIDENCE_KINDS:
            cls = record_class(kind)
            for path in files:
                rel = path.relative_to(ws).as_posix()
                if not fnmatch.fnmatch(rel, kind.location):
                    continue
                raw = path.read_bytes()
                record = cls.read(path)
                assert record.canonical_bytes() == raw, rel
                assert cls.parse(json.loads(raw)) == record
                seen.add(kind.name)
    assert seen >= {
        "workspace",
        "datasets",
        "training",
        "bias",
        "gate",
        "probes.exposure",
        "probes.extraction",
        "probes.membership",
        "probes.dp_audit",
    }


def test_no_raw_training_pii_reaches_any_rendered_file_or_evidence(demo: tuple[Path, str]) -> None:
    out, _ = demo
    values = {
        item["value"]
        for line in (out / "data" / "domain_pii.jsonl").read_text().splitlines()
        for item in json.loads(line)["pii"]
        if len(item["value"]) >= 6
    }
    assert len(values) > 50
    # A snippet cut short still leaks: "billing address 3406 Riley L…" gives away the house number
    # and street. The first 10 characters of each longer value must not appear either.
    values |= {v[:10] for v in values if len(v) >= 14}
    for ws in _workspaces(out):
        targets = [*ws.joinpath("dossier").rglob("*"), *ws.joinpath("evidence").rglob("*.json")]
        for path in targets:
            if not path.is_file():
                continue
            text = path.read_text("utf-8", errors="replace")
            leaked = [v for v in values if v in text]
            assert not leaked, f"{path}: {leaked[:3]}"
