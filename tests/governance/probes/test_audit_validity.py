"""Validity of the privacy audit's figures: low-FPR TPRs only where the non-members resolve them,
exact intervals, the model-blind baseline, the seeded held-out split and the stronger canary
designs (new-token, bigram)."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from finetrail.cli import main
from finetrail.errors import InputError
from finetrail.governance.io import sha256_bytes
from finetrail.governance.probes.audit_math import clopper_pearson
from finetrail.governance.probes.canaries import (
    BigramSampler,
    check_design_data,
    load_canaries,
    plant_file,
    read_jsonl,
    split_heldout,
    texts_digest,
)
from finetrail.governance.probes.formats import BIGRAM6, LETTERS, RARE6, RARE_SYMBOLS
from finetrail.governance.probes.membership import (
    attack_result,
    blind_baseline,
    resolvable,
    tpr_with_interval,
)
from finetrail.governance.workspace import Workspace


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (1, 1000), (517, 1000)])
def test_clopper_pearson_matches_scipy_exact_interval(k: int, n: int) -> None:
    from scipy.stats import binomtest

    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    low, high = clopper_pearson(k, n, confidence=0.95)
    assert low == pytest.approx(ref.low, abs=1e-9)
    assert high == pytest.approx(ref.high, abs=1e-9)
    assert low <= k / n <= high


def test_clopper_pearson_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson(5, 4)
    with pytest.raises(ValueError, match="confidence"):
        clopper_pearson(1, 4, confidence=1.0)


def test_low_fpr_tpr_needs_enough_nonmembers() -> None:
    rng = np.random.default_rng(0)
    members = rng.normal(1.0, 1.0, 300)
    few = rng.normal(0.0, 1.0, 300)  # resolves 1% (>= 100), not 0.1% (< 1,000)
    res = attack_result(members, few, resamples=50, confidence=0.95, seed=1, description="t")
    assert res.tpr_at_1pct_fpr is not None and res.tpr_at_1pct_fpr_ci is not None
    assert res.tpr_at_0_1pct_fpr is None and res.tpr_at_0_1pct_fpr_ci is None
    assert res.not_resolvable == (
        "TPR at 0.1% FPR: not resolvable with 300 non-members (needs at least 1,000)",
    )
    assert res.tpr_interval == "clopper_pearson"
    many = rng.normal(0.0, 1.0, 1000)
    res = attack_result(members, many, resamples=50, confidence=0.95, seed=1, description="t")
    assert res.tpr_at_0_1pct_fpr is not None and res.not_resolvable == ()
    ci = res.tpr_at_0_1pct_fpr_ci
    assert ci is not None and ci.low <= res.tpr_at_0_1pct_fpr <= ci.high
    assert resolvable(1000, 0.001) and not resolvable(999, 0.001)


def test_tpr_threshold_lets_at_most_the_rate_through() -> None:
    nonmembers = np.arange(100, dtype=float)  # 0..99
    members = np.array([98.5, 99.5, 50.0, 120.0])
    # 1% of 100 non-members: one false positive allowed, so the cut is the second highest (98)
    value, (low, high) = tpr_with_interval(members, nonmembers, 0.01, confidence=0.95)
    assert value == 0.75  # 98.5, 99.5 and 120 beat 98
    assert 0 < low < 0.75 < high <= 1


def test_blind_baseline_sees_length_differences_and_nothing_else() -> None:
    rng = random.Random(3)
    words = ["refund", "order", "parcel", "invoice", "delay", "account", "address", "card"]

    def sentence(n: int) -> str:
        return " ".join(rng.choice(words) for _ in range(n))

    aucs = []
    for _ in range(6):  # one pool split in two: no feature can tell the halves apart
        same_a = [sentence(rng.randint(5, 9)) for _ in range(150)]
        same_b = [sentence(rng.randint(5, 9)) for _ in range(150)]
        aucs.append(
            blind_baseline(same_a, same_b, resamples=50, confidence=0.95, seed=0).result.auc
        )
    assert abs(float(np.mean(aucs)) - 0.5) < 0.05 and max(abs(a - 0.5) for a in aucs) < 0.15
    short = [sentence(rng.randint(3, 5)) for _ in range(150)]
    long = [sentence(rng.randint(12, 16)) for _ in range(150)]
    differ = blind_baseline(long, short, resamples=100, confidence=0.95, seed=0)
    assert differ.result.auc > 0.95  # a held-out set of another length is told apart blind
    assert differ.folds == 5 and "zlib ratio" in differ.features


def test_split_heldout_is_seeded_disjoint_and_complete() -> None:
    records = [{"text": f"t{i}"} for i in range(50)]
    kept, held = split_heldout(records, fraction=0.2, seed=4)
    assert len(held) == 10 and len(kept) == 40
    assert sorted(r["text"] for r in kept + held) == sorted(r["text"] for r in records)
    assert split_heldout(records, fraction=0.2, seed=4) == (kept, held)
    assert split_heldout(records, fraction=0.2, seed=5) != (kept, held)
    with pytest.raises(InputError, match="leaves no members or no non-members"):
        split_heldout(records[:2], fraction=0.1, seed=0)


def test_bigram_secrets_use_the_rarest_letter_pairs() -> None:
    rng = random.Random(0)
    texts = [
        " ".join("".join(rng.choice("etaoinshr") for _ in range(5)) for _ in range(8))
        for _ in range(200)
    ]
    pairs: Counter[tuple[str, str]] = Counter()
    for t in texts:
        for a, b in itertools.pairwise(t):
            if a in LETTERS and b in LETTERS:
                pairs[a, b] += 1
    sampler = BigramSampler(texts)
    draws = [sampler(BIGRAM6, random.Random(i)) for i in range(50)]
    assert all(len(d) == 6 and set(d) <= set(LETTERS) for d in draws)
    canary_pairs = [pairs[a, b] for d in draws for a, b in itertools.pairwise(d)]
    uniform = [
        pairs[a, b]
        for d in ("".join(random.Random(i).choice(LETTERS) for _ in range(6)) for i in range(50))
        for a, b in itertools.pairwise(d)
    ]
    assert max(canary_pairs) == 0  # every pair is absent from the data (26 letters, 9 used)
    assert sum(uniform) > 0


def test_new_token_design_refuses_data_holding_its_symbols(tmp_path: Path) -> None:
    check_design_data("new-token", ["plain text only"])
    with pytest.raises(InputError, match="'~'") as info:
        check_design_data("new-token", ["a tilde ~ here"], path="d.jsonl")
    assert info.value.path == "d.jsonl"
    check_design_data("pin", ["a tilde ~ here"])  # other designs do not care
    assert set(RARE6.slots[0]) == set(RARE_SYMBOLS)


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


@pytest.mark.parametrize("design", ["new-token", "bigram"])
def test_plant_design_with_heldout_split(
    workspace: Path, dataset: Path, tmp_path: Path, design: str
) -> None:
    out, held = tmp_path / "aug.jsonl", tmp_path / "held.jsonl"
    cs = plant_file(
        workspace,
        data=dataset,
        out=out,
        m=10,
        seed=11,
        actor="alice",
        design=design,  # type: ignore[arg-type]
        heldout_out=held,
        heldout_fraction=0.25,
    )
    assert cs.design == design
    held_texts = [r["text"] for r in read_jsonl(held, text_field="text")]
    out_texts = [r["text"] for r in read_jsonl(out, text_field="text")]
    assert len(held_texts) == 10
    assert not set(held_texts) & set(out_texts)  # never trained on
    lineage = cs.lineage
    assert lineage is not None and lineage.heldout is not None
    assert lineage.heldout.sha256 == sha256_bytes(held.read_bytes())
    assert lineage.heldout_texts_sha256 == texts_digest(held_texts)
    regex = (RARE6 if design == "new-token" else BIGRAM6).regex
    import re

    for c in cs.canaries:
        assert re.fullmatch(regex, c.secret), c.secret
    assert load_canaries(Workspace.open(workspace)) == cs


def test_cli_plant_refuses_new_token_on_data_with_its_symbols(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "path a|b"}) + "\n", encoding="utf-8")
    rc = main(
        [
            "canaries",
            "plant",
            str(workspace),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o.jsonl"),
            "--design",
            "new-token",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "d.jsonl" in err and "'|'" in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_probe_summary_line_states_unresolvable_tpr() -> None:
    from finetrail.governance.probes.cli import _summary
    from tests.support.evidence import membership_evidence

    record = membership_evidence(adapter_sha256="a" * 64, members=30)
    line = _summary("membership", record)
    assert "TPR at 1% FPR not resolvable (30 non-members)" in line
    assert "blind baseline AUC 0.500" in line
    resolved = _summary("membership", membership_evidence(adapter_sha256="a" * 64, members=200))
    assert "TPR at 1% FPR 0.010" in resolved
