"""`finetrail demo --quick`: the whole pipeline end to end, as CI runs it.

One run (module-scoped, with ``--plant-bug normalisation_actual_batch`` and ``--progress``) feeds every
demo test here: the pipeline's outputs, their integrity, that every evidence file round-trips
through its registered record class, that no raw PII value of the training data reaches any
rendered file, that the black-box audit has power on the control, and that the release trained
with a planted mechanism bug is refused by the gate on the mechanism rule. The option tests at
the end do not run the demo.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.governance.evidence.registry import EVIDENCE_KINDS, record_class
from finetrail.governance.ledger import Ledger
from finetrail.governance.verify import verify_workspace

slow = pytest.mark.slow

PLANTED = "normalisation_actual_batch"
MECHANISM_RULES = {"dp-mechanism-verified", "dp-mechanism-not-rejected"}
_STDERR: dict[str, str] = {}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo")
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        code = main(["demo", "--quick", "--out", str(out), "--plant-bug", PLANTED, "--progress"])
    text = buf.getvalue()
    _STDERR["text"] = err.getvalue()
    assert code == 0, text[-5000:] + err.getvalue()[-3000:]
    return out, text


def _workspaces(out: Path) -> list[Path]:
    """The control and the honest DP release."""
    return [out / "dossiers" / "support-assistant" / n for n in ("1.0.0-control", "1.0.0-dp")]


def _all_workspaces(out: Path) -> list[Path]:
    return sorted((out / "dossiers" / "support-assistant").iterdir())


def _broken(out: Path) -> Path:
    return out / "dossiers" / "support-assistant" / "1.0.0-dp-planted-bug"


def _evidence(ws: Path, rel: str) -> dict[str, object]:
    data = json.loads((ws / "evidence" / rel).read_text())
    assert isinstance(data, dict)
    return data


def _last_gate(ws: Path) -> dict[str, object]:
    return json.loads(sorted((ws / "evidence" / "gate").glob("*[0-9].json"))[-1].read_text())


@slow
def test_demo_builds_three_verified_releases_with_dossiers(demo: tuple[Path, str]) -> None:
    out, text = demo
    workspaces = _all_workspaces(out)
    assert [w.name for w in workspaces] == ["1.0.0-control", "1.0.0-dp", "1.0.0-dp-planted-bug"]
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
    assert (_workspaces(out)[1] / "dossier" / "diff.md").is_file()
    assert "mlflow ui --backend-store-uri sqlite:///" in text
    assert "memorised identifiers" in text and "gate (eu-ai-act-high-risk)" in text


@slow
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
    # 60 single-copy canaries: a ceiling (2.52) above the claim, so the audit could contradict it
    assert audit["ceiling"] > dp["dp"]["epsilon"]
    assert audit["verdict"] == "consistent"
    mechanism = json.loads((_workspaces(out)[1] / "evidence" / "mechanism.json").read_text())
    assert mechanism["ran"] is True and mechanism["verdict"] == "verified", mechanism["reasons"]
    assert audit["empirical_epsilon_lower_bound"] <= dp["dp"]["epsilon"]
    # The configured base-model name travels from the training config to the evidence and the card.
    assert control["base_model"]["name"] == dp["base_model"]["name"] == "finetrail-demo-tiny-llama"
    card = (_workspaces(out)[1] / "dossier" / "README.md").read_text()
    assert "**Finetuned from model:** finetrail-demo-tiny-llama (weights sha256" in card


@slow
def test_every_evidence_file_round_trips_through_its_record_class(demo: tuple[Path, str]) -> None:
    out, _ = demo
    seen: set[str] = set()
    for ws in _all_workspaces(out):
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


@slow
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
    for ws in _all_workspaces(out):
        targets = [*ws.joinpath("dossier").rglob("*"), *ws.joinpath("evidence").rglob("*.json")]
        for path in targets:
            if not path.is_file():
                continue
            text = path.read_text("utf-8", errors="replace")
            leaked = [v for v in values if v in text]
            assert not leaked, f"{path}: {leaked[:3]}"


def _training_data(ws: Path) -> dict[str, object]:
    from finetrail.governance.evidence.store import EvidenceSet
    from finetrail.governance.gate.evaluate import training_data_summary

    summary = training_data_summary(EvidenceSet(ws))
    assert summary is not None
    return summary.to_json_dict()


@slow
def test_dp_release_trains_on_sanitised_data_and_the_control_on_raw(
    demo: tuple[Path, str],
) -> None:
    out, _ = demo
    control, dp = (_training_data(w) for w in _workspaces(out))

    def names(summary: dict[str, object], key: str) -> set[str]:
        items = summary[key]
        assert isinstance(items, list)
        return {str(d["name"]) for d in items}

    assert names(dp, "read_for_training") == {"finetune+canaries", "generic-corpus-sanitised"}
    assert names(dp, "trained_on") == {
        "finetune+canaries",
        "finetune-mix",
        "support-notes-sanitised",
        "credit-task-train-sanitised",
        "generic-corpus-sanitised",
        "support-notes",
        "credit-task-train",
        "generic-corpus",
    }
    assert {d["pii_state"] for d in dp["read_for_training"]} == {"absent"}  # type: ignore[union-attr]
    assert dp["uses_personal_data"] == "absent"
    assert names(control, "read_for_training") == {"finetune+canaries", "generic-corpus"}
    assert "support-notes-sanitised" not in names(control, "trained_on")
    assert control["uses_personal_data"] == "present"
    # the evaluation set is registered and is not training data
    for ws in _workspaces(out):
        bias = json.loads((ws / "evidence" / "bias.json").read_text())
        datasets = {
            json.loads(p.read_text())["sha256"]: json.loads(p.read_text())["name"]
            for p in (ws / "evidence" / "datasets").glob("*.json")
        }
        assert datasets[bias["subject"]["eval_sha256"]].startswith("credit-task-eval")


@slow
def test_the_gate_judges_what_each_release_trained_on(demo: tuple[Path, str]) -> None:
    out, _ = demo
    control, dp = (
        json.loads(sorted((w / "evidence" / "gate").glob("*[0-9].json"))[-1].read_text())
        for w in _workspaces(out)
    )

    def outcome(d: dict[str, object], rule: str) -> str:
        outcomes = d["outcomes"]
        assert isinstance(outcomes, list)
        return str(next(o for o in outcomes if o["rule"] == rule)["outcome"])

    assert outcome(dp, "training-data-pii-clean") == "pass"
    assert outcome(control, "training-data-pii-clean") == "fail"
    assert outcome(dp, "pii-residual-zero") == "pass"
    # a model that answers every applicant alike never passes on its fairness figures
    for d in (control, dp):
        bias_passed = outcome(d, "bias-demographic-parity") == "pass"
        constant = outcome(d, "task-predictions-not-constant") == "fail"
        if constant:
            assert not d["passed"]
        assert bias_passed or not d["passed"]


@slow
def test_every_dossier_statement_checks_against_its_evidence(demo: tuple[Path, str]) -> None:
    """`report --check` re-derives the named statements of both releases from their evidence."""
    out, _ = demo
    control, dp = _workspaces(out)
    assert main(["report", str(control), "--check"]) == 0
    # the DP dossier was rendered with the compliance diff against the control
    assert main(["report", str(dp), "--check", "--compare", str(control)]) == 0
    assert main(["report", str(dp), "--check"]) == 1  # without it, the diff section disagrees


@slow
def test_spdx_and_bom_state_personal_data_as_the_lineage_shows(demo: tuple[Path, str]) -> None:
    out, _ = demo
    control, dp = _workspaces(out)
    for ws, uses in ((control, "yes"), (dp, "no")):
        spdx = json.loads((ws / "dossier" / "spdx.json").read_text())
        flags = [
            e.get("ai_useSensitivePersonalInformation")
            for e in spdx["@graph"]
            if e.get("type") == "ai_AIPackage" and str(e.get("name")).endswith("-adapter")
        ]
        assert flags == [uses], (ws.name, flags)
        datasets = {
            e["name"]: e.get("dataset_hasSensitivePersonalInformation")
            for e in spdx["@graph"]
            if e.get("type") == "dataset_DatasetPackage"
        }
        assert datasets.get("support-notes") == "yes", datasets
        if ws is dp:
            assert datasets.get("support-notes-sanitised") == "no", datasets


@slow
def test_every_ledger_entry_is_signed_by_its_roles_key_and_verifies_under_the_trust_file(
    demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo signs everything: each step with the key of the role it acts as, named in the
    demo's trust file; ``verify --trust`` reports no unsigned entry and no signing warning."""
    from finetrail.governance import clock
    from finetrail.governance.ledger import Ledger
    from finetrail.governance.trust import entry_problems, load_trust

    # the module-scoped demo ran on the real clock (before the tests' pinned one): judge its
    # signatures' windows at the real time too
    monkeypatch.delenv("FINETRAIL_FIXED_TIME", raising=False)
    monkeypatch.setattr(clock, "RELEASE_CLOCK", clock._system_time)

    out, _ = demo
    trust_file = out / "trust.yaml"
    trust = load_trust(trust_file)
    for ws in _all_workspaces(out):
        entries = Ledger(ws / "ledger.jsonl").entries()
        assert entries
        unsigned = [e.kind for e in entries if not (e.signature and e.signer)]
        assert not unsigned, f"{ws.name}: unsigned entries {unsigned}"
        wrong = {e.kind: entry_problems(trust, e, now=None) for e in entries}
        assert not any(wrong.values()), {k: v for k, v in wrong.items() if v}
        report = verify_workspace(ws, trust=trust_file)
        assert report.ok, [f.render() for f in report.findings]
        signing = [f for f in report.findings if f.code in ("unsigned", "untrusted", "wrong-role")]
        assert not signing, [f.render() for f in signing]
        assert main(["verify", str(ws), "--trust", str(trust_file)]) == 0


@slow
def test_the_controls_black_box_bound_is_positive_and_printed_beside_its_ceiling(
    demo: tuple[Path, str],
) -> None:
    """The canary plan has power: on the non-private control, which memorises, the one-run audit's
    per-example bound is above 0 (it stays at or below the ceiling its 60 single-copy canaries
    allow), and the summary prints the bound with that ceiling."""
    out, text = demo
    control, dp = _workspaces(out)
    audit = _evidence(control, "probes/dp_audit.json")
    bound, ceiling = audit["empirical_epsilon_lower_bound"], audit["ceiling"]
    assert isinstance(bound, float) and isinstance(ceiling, float)
    assert audit["single_copy_canaries"] == 60
    assert 0 < bound <= ceiling, audit
    assert audit["verdict"] == "no_claim"
    # the demo's fixed score (docs/memorisation.md, "The score"), named in the evidence
    assert audit["parameters"]["calibrated"] is False
    assert audit["score"] == "log-likelihood of the secret under the fine-tuned model"
    row = next(line for line in text.splitlines() if line.startswith("empirical epsilon"))
    assert f"{bound:.3f} (ceiling {ceiling:.2f}, 60 single-copy canaries)" in row
    # the DP release's bound, from the same plan, stays at or below its claim
    dp_audit = _evidence(dp, "probes/dp_audit.json")
    dp_row = f"{dp_audit['empirical_epsilon_lower_bound']:.3f} (ceiling {ceiling:.2f}"
    assert row.count("(ceiling") >= 2 and dp_row in row


@slow
def test_the_honest_dp_release_passes_the_mechanism_rules(demo: tuple[Path, str]) -> None:
    out, text = demo
    _, dp = _workspaces(out)
    assert _evidence(dp, "mechanism.json")["verdict"] == "verified"
    outcomes = {o["rule"]: o["outcome"] for o in _last_gate(dp)["outcomes"]}  # type: ignore[attr-defined]
    assert {outcomes[r] for r in MECHANISM_RULES} == {"pass"}
    row = next(line for line in text.splitlines() if line.startswith("DP mechanism audit"))
    assert row.split()[-3:] == ["-", "verified", "rejected"], row  # control: no DP, no audit


@slow
def test_the_release_with_a_planted_mechanism_bug_is_refused_by_the_gate(
    demo: tuple[Path, str],
) -> None:
    """`demo --plant-bug normalisation_actual_batch`: the third release claims the honest release's epsilon,
    its mechanism audit rejects it, and the EU gate refuses it on the mechanism rule; the summary
    says so in words."""
    out, text = demo
    _, dp = _workspaces(out)
    broken = _broken(out)
    training, honest = _evidence(broken, "training.json"), _evidence(dp, "training.json")
    assert training["dp"]["epsilon"] == honest["dp"]["epsilon"]  # type: ignore[index]
    mechanism = _evidence(broken, "mechanism.json")
    assert mechanism["verdict"] == "rejected", mechanism
    assert mechanism["reasons"], mechanism
    gate = _last_gate(broken)
    assert gate["passed"] is False
    failed = {o["rule"] for o in gate["outcomes"] if o["outcome"] in ("fail", "error")}  # type: ignore[attr-defined]
    assert "dp-mechanism-not-rejected" in failed
    assert "the broken release was refused by the gate: dp-mechanism-not-rejected" in text
    assert f"planted bug {PLANTED}" in text
    event = [e for e in Ledger(broken / "ledger.jsonl").entries() if e.kind.startswith("train")]
    assert event[-1].payload.get("planted_mechanism_bug") == PLANTED
    assert main(["report", str(broken), "--check"]) == 0


@slow
def test_progress_shows_the_steps_bars_on_stderr(demo: tuple[Path, str]) -> None:
    _, text = demo
    train = [line for line in text.splitlines() if line.startswith("$ finetrail train ")]
    probe = [line for line in text.splitlines() if line.startswith("$ finetrail probe ")]
    assert len(train) == 3 and all("--progress" in line.split() for line in train), train
    assert probe and not any("--no-progress" in line for line in probe), probe
    assert "train: 100%" in _STDERR["text"]


class _Stderr:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(
    ("flag", "tty", "expected"),
    [
        ([], False, False),
        ([], True, True),
        (["--no-progress"], True, False),
        (["--progress"], False, True),
    ],
)
def test_demo_shows_progress_only_on_a_terminal_unless_told(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: list[str],
    tty: bool,
    expected: bool,
) -> None:
    import sys

    from finetrail.demo import pipeline

    seen: dict[str, object] = {}
    monkeypatch.setattr(pipeline, "run_demo", lambda **kw: seen.update(kw))
    monkeypatch.setattr(sys, "stderr", _Stderr(tty))
    assert main(["demo", "--quick", "--out", str(tmp_path / "o"), *flag]) == 0
    assert seen["progress"] is expected
    assert seen["plant_bug"] is None


def test_an_unknown_planted_bug_is_refused_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", "--quick", "--out", str(tmp_path / "o"), "--plant-bug", "no_such_bug"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--plant-bug" in err and "clipping_disabled" in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_run_demo_refuses_an_unknown_planted_bug_before_any_step(tmp_path: Path) -> None:
    from finetrail.demo import run_demo
    from finetrail.errors import InputError

    lines: list[str] = []
    with pytest.raises(InputError) as info:
        run_demo(out=tmp_path / "o", quick=True, plant_bug="no_such_bug", echo=lines.append)
    assert info.value.field == "plant_bug" and "clipping_disabled" in str(info.value.fix)
    assert lines == [] and not (tmp_path / "o").exists()
