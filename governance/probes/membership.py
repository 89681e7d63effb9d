"""Membership inference: can the model tell its training records from held-out ones?

Attacks (higher score = "member"), each on training members versus held-out non-members:

- ``loss``: mean token log-likelihood (Yeom et al. 2018);
- ``reference``: the same, minus the base model's (likelihood ratio against the model before
  fine-tuning; Carlini et al. 2021/2022) — what the fine-tune added;
- ``zlib``: minus the ratio of the mean negative log-likelihood to the zlib-compressed length
  (Carlini et al. 2021);
- ``min_k``: mean of the k% lowest token log-likelihoods (Shi et al. 2024, Min-K% Prob);
- ``min_k_plus_plus``: the same over tokens standardised by the model's own next-token
  distribution, (log p(x_t) - mu_t) / sigma_t (Zhang et al. 2024, Min-K%++).

Reported: AUC with a percentile-bootstrap confidence interval; TPR at 1% and 0.1% FPR with exact
(Clopper-Pearson) intervals, each only when the non-members can resolve that rate (at least
1 / FPR of them; else None and the reason); ROC points for plots (scikit-learn's ``roc_curve`` /
``roc_auc_score``); and a blind baseline (Das et al. 2024) that never queries the model, to read
every attack's AUC against.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

from finetrail.governance.evidence.probes import (
    AttackResult,
    BlindBaseline,
    Exchangeability,
    Interval,
    MembershipEvidence,
)
from finetrail.governance.probes.context import ProbeContext

ATTACKS: dict[str, str] = {
    "loss": "mean token log-likelihood",
    "reference": "log-likelihood minus the base model's (calibrated)",
    "zlib": "-(mean NLL / zlib-compressed bytes)",
    "min_k": "mean of the lowest k% token log-likelihoods",
    "min_k_plus_plus": "mean of the lowest k% standardised token log-likelihoods",
}
FPR_GRID = (
    0.0,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
)


def tpr_at_fpr(fpr: Any, tpr: Any, limit: float) -> float:
    """The largest TPR among ROC points with FPR <= ``limit``."""
    import numpy as np

    ok = np.asarray(fpr) <= limit + 1e-12
    return float(np.max(np.asarray(tpr)[ok])) if ok.any() else 0.0


def roc_metrics(members: Any, nonmembers: Any) -> tuple[float, float, float, Any, Any]:
    """(AUC, TPR@1%FPR, TPR@0.1%FPR, fpr, tpr) of scores where members should score higher."""
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    s = np.concatenate([members, nonmembers])
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    auc = float(roc_auc_score(y, s))
    return auc, tpr_at_fpr(fpr, tpr, 0.01), tpr_at_fpr(fpr, tpr, 0.001), fpr, tpr


def bootstrap_metrics(members: Any, nonmembers: Any) -> Any:
    """AUC, TPR@1%FPR and TPR@0.1%FPR for each row of [B, n] score matrices, vectorised (the
    same quantities :func:`roc_metrics` takes from scikit-learn; a test checks they agree)."""
    import numpy as np
    from scipy.stats import rankdata

    n1, n0 = members.shape[1], nonmembers.shape[1]
    ranks = rankdata(np.concatenate([members, nonmembers], axis=1), axis=1)
    auc = (ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    desc = -np.sort(-nonmembers, axis=1)
    out = [auc]
    for limit in (0.01, 0.001):
        k = int(np.floor(limit * n0 + 1e-9))  # false positives allowed
        cut = desc[:, k][:, None] if k < n0 else np.full((len(desc), 1), -np.inf)
        out.append((members > cut).mean(axis=1))
    return np.stack(out, axis=1)


LOW_FPRS: tuple[tuple[float, str], ...] = ((0.01, "1%"), (0.001, "0.1%"))


def resolvable(nonmembers: int, fpr: float) -> bool:
    """Can ``nonmembers`` negatives resolve a false-positive rate of ``fpr``? (n >= 1 / fpr)"""
    return nonmembers * fpr >= 1 - 1e-9


def tpr_with_interval(
    members: Any, nonmembers: Any, fpr: float, *, confidence: float
) -> tuple[float, tuple[float, float]]:
    """TPR at the threshold that lets at most ``fpr`` of the non-members through, with its exact
    (Clopper-Pearson) interval over the members."""
    import numpy as np

    from finetrail.governance.probes.audit_math import clopper_pearson

    n0 = len(nonmembers)
    k = int(np.floor(fpr * n0 + 1e-9))  # false positives allowed
    desc = np.sort(np.asarray(nonmembers, dtype=float))[::-1]
    cut = desc[k] if k < n0 else -np.inf
    hits = int(np.count_nonzero(np.asarray(members, dtype=float) > cut))
    return hits / len(members), clopper_pearson(hits, len(members), confidence=confidence)


def attack_result(
    members: Any, nonmembers: Any, *, resamples: int, confidence: float, seed: int, description: str
) -> AttackResult:
    import numpy as np

    auc, _, _, fpr, tpr = roc_metrics(members, nonmembers)
    rng = np.random.default_rng(seed)
    mi = rng.integers(0, len(members), (resamples, len(members)))
    ni = rng.integers(0, len(nonmembers), (resamples, len(nonmembers)))
    boot = bootstrap_metrics(members[mi], nonmembers[ni])
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    lo, hi = np.quantile(boot[:, 0], [lo_q, hi_q])
    roc = tuple((f, tpr_at_fpr(fpr, tpr, f)) for f in FPR_GRID)
    figures: dict[str, tuple[float | None, Interval | None]] = {}
    unresolved = []
    for limit, label in LOW_FPRS:
        if resolvable(len(nonmembers), limit):
            value, (low, high) = tpr_with_interval(
                members, nonmembers, limit, confidence=confidence
            )
            figures[label] = (value, Interval(low=low, high=high))
        else:
            figures[label] = (None, None)
            unresolved.append(
                f"TPR at {label} FPR: not resolvable with {len(nonmembers):,} non-members "
                f"(needs at least {round(1 / limit):,})"
            )
    return AttackResult(
        auc=auc,
        auc_ci=Interval(low=float(lo), high=float(hi)),
        tpr_at_1pct_fpr=figures["1%"][0],
        tpr_at_1pct_fpr_ci=figures["1%"][1],
        tpr_at_0_1pct_fpr=figures["0.1%"][0],
        tpr_at_0_1pct_fpr_ci=figures["0.1%"][1],
        roc=roc,
        description=description,
        not_resolvable=tuple(unresolved),
        tpr_interval="clopper_pearson",
    )


BLIND_FEATURES = (
    "characters",
    "words",
    "mean word length",
    "digit share",
    "capital share",
    "punctuation share",
    "zlib ratio",
)


def text_features(texts: list[str]) -> Any:
    """Features of the text alone (no tokenizer, no model): what a blind classifier sees."""
    import numpy as np

    rows = []
    for t in texts:
        n = max(1, len(t))
        words = t.split()
        rows.append(
            [
                np.log1p(len(t)),
                np.log1p(len(words)),
                (sum(len(w) for w in words) / len(words)) if words else 0.0,
                sum(ch.isdigit() for ch in t) / n,
                sum(ch.isupper() for ch in t) / n,
                sum((not ch.isalnum()) and not ch.isspace() for ch in t) / n,
                len(zlib.compress(t.encode("utf-8"))) / max(1, len(t.encode("utf-8"))),
            ]
        )
    return np.asarray(rows, dtype=float)


def blind_baseline(
    members: list[str],
    nonmembers: list[str],
    *,
    resamples: int,
    confidence: float,
    seed: int,
    folds: int = 5,
) -> BlindBaseline:
    """Das et al. 2024: out-of-fold scores of a logistic regression on text features only."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = text_features(members + nonmembers)
    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    folds = max(2, min(folds, len(members), len(nonmembers)))
    scores = np.zeros(len(y))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        clf.fit(x[train], y[train])
        scores[test] = clf.decision_function(x[test])
    n = len(members)
    result = attack_result(
        scores[:n],
        scores[n:],
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        description="blind baseline: text features only, the model never queried",
    )
    return BlindBaseline(features=BLIND_FEATURES, folds=folds, result=result)


def attack_scores(texts: list[str], ft: Any, base: Any | None, k_fraction: float) -> dict[str, Any]:
    """Each attack's score per text, from the fine-tuned (and base) token log-probabilities."""
    import numpy as np

    def lowest_mean(values: Any) -> float:
        if len(values) == 0:
            return 0.0
        n = max(1, int(len(values) * k_fraction))
        return float(np.mean(np.sort(values)[:n]))

    loss = np.array([float(np.mean(lp)) if len(lp) else 0.0 for lp in ft.logprobs])
    zlen = np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=float)
    out = {
        "loss": loss,
        "zlib": loss / zlen,  # -(NLL / zlib) = mean log-likelihood / zlib bytes
        "min_k": np.array([lowest_mean(lp) for lp in ft.logprobs]),
        "min_k_plus_plus": np.array(
            [
                lowest_mean((lp - mu) / sd)
                for lp, mu, sd in zip(ft.logprobs, ft.mu, ft.sigma, strict=True)
            ]
        ),
    }
    if base is not None:
        out["reference"] = loss - np.array(
            [float(np.mean(lp)) if len(lp) else 0.0 for lp in base.logprobs]
        )
    return out


def exchangeability(
    members: Any, nonmembers: Any, *, tolerance: float, resamples: int, confidence: float, seed: int
) -> Exchangeability:
    """Can the *base* model's scores tell members from non-members? (It should not.)"""
    r = attack_result(
        members,
        nonmembers,
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        description="base model mean token log-likelihood",
    )
    outside = r.auc_ci.low > 0.5 + tolerance or r.auc_ci.high < 0.5 - tolerance
    return Exchangeability(
        base_auc=r.auc, base_auc_ci=r.auc_ci, tolerance=tolerance, ok=not outside
    )


def split_kind(ctx: ProbeContext, held: list[str]) -> str:
    """'random split of one pool' when the non-members are the held-out part that
    ``canaries plant --heldout-out`` drew at random from the source data before training."""
    from finetrail.governance.probes.canaries import texts_digest

    lineage = ctx.canaries.lineage if ctx.canaries is not None else None
    if (
        lineage is not None
        and lineage.heldout is not None
        and held
        and texts_digest(ctx.heldout_lineage_texts if ctx.heldout_lineage_texts else held)
        == lineage.heldout_texts_sha256
    ):
        return (
            f"random split of one pool (seeded, {lineage.heldout.records} of "
            f"{lineage.source.records} source records held out before training)"
        )
    return "given"


class MembershipProbe:
    name = "membership"
    cli_name = "mia"

    def missing(self, ctx: ProbeContext) -> str | None:
        if not ctx.member_texts():
            return "no training data given (members)"
        if not ctx.heldout_texts:
            return "no held-out data given (non-members)"
        return None

    def run(self, ctx: ProbeContext) -> MembershipEvidence:
        import numpy as np

        from finetrail.governance.probes.scoring import token_logprobs

        cfg = ctx.config.membership
        members = ctx.member_texts()
        held = list(dict.fromkeys(t for t in ctx.heldout_texts or [] if t not in set(members)))
        split = split_kind(ctx, held)
        n = min(len(members), len(held), cfg.max_examples)
        rng = random.Random(cfg.seed)
        members = rng.sample(members, n)
        held = rng.sample(held, n)
        texts = members + held
        tok = ctx.models.tok
        seqs = [tok.encode(t, special=True) for t in texts]
        with_base = ctx.models.has_base
        ctx.progress.start("membership", len(seqs) * (2 if with_base else 1))
        ft = token_logprobs(
            ctx.models.model, seqs, pad_id=tok.pad_id, moments=True, tick=ctx.progress.advance
        )
        base = None
        with ctx.models.base() as base_model:
            if base_model is not None:
                base = token_logprobs(
                    base_model, seqs, pad_id=tok.pad_id, tick=ctx.progress.advance
                )
        scores = attack_scores(texts, ft, base, cfg.k_fraction)
        attacks = {}
        for i, (name, s) in enumerate(sorted(scores.items())):
            s = np.asarray(s, dtype=float)
            attacks[name] = attack_result(
                s[:n],
                s[n:],
                resamples=cfg.bootstrap,
                confidence=cfg.confidence,
                seed=cfg.seed + i,
                description=ATTACKS[name],
            )
        check = None
        if base is not None:
            base_loss = np.array([float(np.mean(lp)) if len(lp) else 0.0 for lp in base.logprobs])
            check = exchangeability(
                base_loss[:n],
                base_loss[n:],
                tolerance=cfg.exchangeability_tolerance,
                resamples=cfg.bootstrap,
                confidence=cfg.confidence,
                seed=cfg.seed + len(scores),
            )
        blind = blind_baseline(
            members,
            held,
            resamples=cfg.bootstrap,
            confidence=cfg.confidence,
            seed=cfg.seed + len(scores) + 1,
        )
        return MembershipEvidence(
            subject=ctx.subject,
            members=n,
            nonmembers=n,
            max_auc=max(a.auc for a in attacks.values()),
            attacks=attacks,
            fpr_resolution=1.0 / n,
            confidence=cfg.confidence,
            bootstrap_resamples=cfg.bootstrap,
            parameters={
                "k_fraction": cfg.k_fraction,
                "seed": cfg.seed,
                "reference_model": "base" if base is not None else "none",
            },
            exchangeability=check,
            blind_baseline=blind,
            split=split,
        )
