"""Bias audit metrics: fairlearn wiring checked against numpy, intervals, too-small groups."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finetrail.errors import InputError
from finetrail.governance.bias import BiasAuditSettings, audit_bias
from finetrail.governance.evidence.bias import BiasAuditEvidence

# a hand-made table: two sensitive columns, binary labels and predictions
TABLE = [
    # g, h, y_true, y_pred
    ("a", "x", 1, 1),
    ("a", "x", 1, 0),
    ("a", "y", 0, 1),
    ("a", "y", 0, 0),
    ("a", "x", 1, 1),
    ("b", "y", 1, 0),
    ("b", "x", 0, 0),
    ("b", "y", 1, 1),
    ("b", "x", 0, 1),
    ("b", "y", 0, 0),
    ("b", "x", 1, 0),
    ("c", "x", 0, 0),
    ("c", "y", 1, 1),
    ("c", "x", 0, 1),
    ("c", "y", 1, 1),
    ("c", "y", 0, 1),
]


def _write_predictions(path, rows, extra=None):
    with open(path, "w") as fh:
        for g, h, yt, yp in rows:
            fh.write(
                json.dumps({"g": g, "h": h, "y_true": yt, "y_pred": yp, **(extra or {})}) + "\n"
            )
    return path


def _expected(mask, yt, yp):
    def rate(num, den):
        return None if den.sum() == 0 else float((num & den).sum() / den.sum())

    m = mask
    return {
        "count": int(m.sum()),
        "selection_rate": float(yp[m].mean()),
        "accuracy": float((yt[m] == yp[m]).mean()),
        "tpr": rate(yp == 1, m & (yt == 1)),
        "fpr": rate(yp == 1, m & (yt == 0)),
        "fnr": rate(yp == 0, m & (yt == 1)),
    }


def _gap(values, kind):
    vals = [v for v in values if v is not None]
    return max(vals) - min(vals) if kind == "difference" else min(vals) / max(vals)


def test_group_metrics_equal_a_direct_numpy_computation(tmp_path):
    path = _write_predictions(tmp_path / "p.jsonl", TABLE)
    rec = audit_bias(
        sensitive=["g", "h"],
        predictions_path=path,
        counterfactual=False,
        settings=BiasAuditSettings(resamples=50, min_group_size=1, labels=("1", "0")),
    )
    g = np.array([r[0] for r in TABLE])
    h = np.array([r[1] for r in TABLE])
    yt = np.array([r[2] for r in TABLE])
    yp = np.array([r[3] for r in TABLE])
    inter = np.array([f"{a}&{b}" for a, b in zip(g, h, strict=True)])
    got = {(m.feature, m.group): m for m in rec.groups}
    assert set(got) == (
        {("g", x) for x in "abc"}
        | {("h", x) for x in "xy"}
        | {("g&h", f"{a}&{b}") for a in "abc" for b in "xy"}
    )
    per_feature = {}
    for feature, col in (("g", g), ("h", h), ("g&h", inter)):
        per_feature[feature] = {}
        for group in sorted(set(col)):
            exp = _expected(col == group, yt, yp)
            m = got[(feature, group)]
            assert m.count == exp["count"]
            for metric in ("selection_rate", "accuracy", "tpr", "fpr", "fnr"):
                value = getattr(m, metric).value
                if exp[metric] is None:
                    assert value is None, (feature, group, metric)
                else:
                    assert value == pytest.approx(exp[metric], abs=1e-12), (feature, group, metric)
            per_feature[feature][group] = exp
        exp_groups = per_feature[feature].values()
        d = rec.by_feature[feature].disparities
        sel = [e["selection_rate"] for e in exp_groups]
        acc = [e["accuracy"] for e in exp_groups]
        tpr = [e["tpr"] for e in exp_groups]
        fpr = [e["fpr"] for e in exp_groups]
        assert d["demographic_parity_difference"].value == pytest.approx(_gap(sel, "difference"))
        assert d["demographic_parity_ratio"].value == pytest.approx(_gap(sel, "ratio"))
        assert d["accuracy_difference"].value == pytest.approx(_gap(acc, "difference"))
        assert d["equalized_odds_difference"].value == pytest.approx(
            max(_gap(tpr, "difference"), _gap(fpr, "difference"))
        )
        assert d["equalized_odds_ratio"].value == pytest.approx(
            min(_gap(tpr, "ratio"), _gap(fpr, "ratio"))
        )
    # top level: the worst single feature
    top = rec.disparities["demographic_parity_difference"]
    worst = max(
        ("g", "h"),
        key=lambda f: rec.by_feature[f].disparities["demographic_parity_difference"].value,
    )
    assert top.feature == worst
    # task metrics
    assert rec.task.accuracy == pytest.approx((yt == yp).mean())
    tp, fp, fn = (
        ((yt == 1) & (yp == 1)).sum(),
        ((yt == 0) & (yp == 1)).sum(),
        ((yt == 1) & (yp == 0)).sum(),
    )
    assert rec.task.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_point_values_equal_fairlearn_functions(tmp_path):
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
    )

    rng = np.random.default_rng(3)
    n = 600
    rows = [
        (str(rng.choice(["p", "q", "r"])), "x", int(rng.random() < 0.5), int(rng.random() < 0.4))
        for _ in range(n)
    ]
    path = _write_predictions(tmp_path / "p.jsonl", rows)
    rec = audit_bias(
        sensitive=["g"],
        predictions_path=path,
        counterfactual=False,
        settings=BiasAuditSettings(resamples=50, labels=("1", "0")),
    )
    g = np.array([r[0] for r in rows])
    yt = np.array([r[2] for r in rows])
    yp = np.array([r[3] for r in rows])
    d = rec.disparities
    assert d["demographic_parity_difference"].value == pytest.approx(
        demographic_parity_difference(yt, yp, sensitive_features=g)
    )
    assert d["demographic_parity_ratio"].value == pytest.approx(
        demographic_parity_ratio(yt, yp, sensitive_features=g)
    )
    assert d["equalized_odds_difference"].value == pytest.approx(
        equalized_odds_difference(yt, yp, sensitive_features=g)
    )
    assert d["equalized_odds_ratio"].value == pytest.approx(
        equalized_odds_ratio(yt, yp, sensitive_features=g)
    )


def _planted_rows(seed, n, disparity):
    """Simulated predictions: P(yes | male) - P(yes | female) = disparity in the population."""
    rng = np.random.default_rng(seed)
    male = rng.random(n) < 0.5
    p = np.where(male, 0.5 + disparity / 2, 0.5 - disparity / 2)
    y_pred = (rng.random(n) < p).astype(int)
    y_true = (rng.random(n) < 0.5).astype(int)
    region = rng.choice(["x", "y"], size=n)
    return [
        ("male" if m else "female", str(r), int(t), int(q))
        for m, r, t, q in zip(male, region, y_true, y_pred, strict=True)
    ]


@pytest.mark.parametrize("disparity", [0.25, 0.0])
def test_planted_disparity_of_the_synthetic_task_lies_in_the_interval(tmp_path, disparity):
    from finetrail.training.synthetic import task_examples

    seeds, covered = 10, 0
    for seed in range(seeds):
        rows = task_examples(seed=seed, records=600, disparity=disparity, split="eval")
        path = tmp_path / f"p{seed}.jsonl"
        with open(path, "w") as fh:
            for r in rows:  # a model that reproduces the labels it was trained on
                fh.write(
                    json.dumps(
                        {
                            "y_true": r.label,
                            "y_pred": r.label,
                            "gender": r.gender,
                            "age_band": r.age_band,
                        }
                    )
                    + "\n"
                )
        rec = audit_bias(
            sensitive=["gender", "age_band"],
            predictions_path=path,
            counterfactual=False,
            settings=BiasAuditSettings(resamples=500, seed=seed),
        )
        d = rec.by_feature["gender"].disparities["demographic_parity_difference"]
        covered += d.ci_low <= disparity <= d.ci_high
        if disparity > 0:
            assert d.groups == ("male", "female") and d.ci_low > 0.05, d
            assert rec.disparities["demographic_parity_difference"].feature == "gender"
    assert covered >= 8, covered  # a 95% interval; 10 independent seeds


def test_without_disparity_the_interval_covers_zero_at_about_the_nominal_rate(tmp_path):
    disparity, seeds = 0.0, 80
    covered = 0
    for seed in range(seeds):
        path = _write_predictions(tmp_path / f"{seed}.jsonl", _planted_rows(seed, 400, disparity))
        rec = audit_bias(
            sensitive=["g"],
            predictions_path=path,
            counterfactual=False,
            settings=BiasAuditSettings(resamples=400, seed=seed, labels=("1", "0")),
        )
        d = rec.disparities["demographic_parity_difference"]
        covered += d.ci_low <= disparity <= d.ci_high
    rate = covered / seeds
    print(f"coverage of 0: {rate:.3f}")
    assert 0.87 <= rate <= 0.99, rate  # nominal 0.95; too narrow or too wide both fail


def test_too_small_groups_are_reported_and_kept_out_of_disparities(tmp_path):
    rows = _planted_rows(1, 300, 0.0) + [("other", "x", 1, 1)] * 5
    path = _write_predictions(tmp_path / "p.jsonl", rows)
    rec = audit_bias(
        sensitive=["g"],
        predictions_path=path,
        counterfactual=False,
        settings=BiasAuditSettings(resamples=100, min_group_size=30, labels=("1", "0")),
    )
    assert [(t.feature, t.group, t.count) for t in rec.too_small_groups] == [("g", "other", 5)]
    other = next(m for m in rec.groups if m.group == "other")
    assert other.too_small and other.count == 5 and other.selection_rate.value == 1.0
    assert rec.by_feature["g"].judged_groups == ("female", "male")
    sel = {m.group: m.selection_rate.value for m in rec.groups}
    assert rec.disparities["demographic_parity_difference"].value == pytest.approx(
        abs(sel["male"] - sel["female"])
    )  # the group with rate 1.0 would dominate otherwise


def test_finetune_effect_is_paired(tmp_path):
    base = _planted_rows(5, 800, 0.0)
    tuned = [
        (g, h, t, (1 if g == "male" else 0) if i % 3 == 0 else p)
        for i, (g, h, t, p) in enumerate(base)
    ]  # the fine-tune pushed a third of rows by gender
    pb = _write_predictions(tmp_path / "base.jsonl", base)
    pt = _write_predictions(tmp_path / "tuned.jsonl", tuned)
    settings = BiasAuditSettings(resamples=300, labels=("1", "0"))
    rec = audit_bias(
        sensitive=["g"],
        predictions_path=pt,
        base_predictions_path=pb,
        counterfactual=False,
        settings=settings,
    )
    e = rec.finetune_effect["demographic_parity_difference"]
    assert e.delta == pytest.approx(e.finetuned - e.base)
    assert e.ci_low > 0.1  # the widening is clearly measured
    same = audit_bias(
        sensitive=["g"],
        predictions_path=pb,
        base_predictions_path=pb,
        counterfactual=False,
        settings=settings,
    )
    for eff in same.finetune_effect.values():  # identical models: exactly zero, zero-width
        assert (eff.delta, eff.ci_low, eff.ci_high) in ((0.0, 0.0, 0.0), (None, None, None))


def test_base_predictions_must_describe_the_same_rows(tmp_path):
    a = _write_predictions(tmp_path / "a.jsonl", _planted_rows(1, 100, 0.0))
    b = _write_predictions(tmp_path / "b.jsonl", _planted_rows(2, 100, 0.0))
    with pytest.raises(InputError, match="same rows"):
        audit_bias(
            sensitive=["g"],
            predictions_path=a,
            base_predictions_path=b,
            settings=BiasAuditSettings(labels=("1", "0")),
        )


def test_record_round_trips_and_rejects_unknown_fields(tmp_path):
    path = _write_predictions(tmp_path / "p.jsonl", _planted_rows(1, 200, 0.1))
    rec = audit_bias(
        sensitive=["g", "h"],
        predictions_path=path,
        counterfactual=False,
        settings=BiasAuditSettings(resamples=50, labels=("1", "0")),
    )
    again = BiasAuditEvidence.parse(json.loads(rec.canonical_bytes()))
    assert again == rec and again.content_digest() == rec.content_digest()
    data = rec.to_json_dict()
    data["disparities"]["demographic_parity_difference"]["surprise"] = 1
    with pytest.raises(InputError, match="surprise"):
        BiasAuditEvidence.parse(data, source="bias.json")
