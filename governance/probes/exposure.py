"""Canary exposure (Carlini et al. 2019, "The Secret Sharer").

exposure = log2 |space| - log2 rank, where rank is the canary's position (1 = most likely) among
every secret of its format ordered by the model's log-likelihood of the secret given the canary's
text before it. A random secret scores about log2(e) = 1.44 bits on average; the maximum is
log2 |space|.

Exact ranking when the tokenizer allows a tree over the space and the candidates to score fit the
budget: the tree is pruned below the least likely canary being ranked, so a well-memorised canary
in a huge space is still ranked exactly. Otherwise exposure is bounded from the safe side: with c
of S random secrets scoring above the canary, the fraction of the space above it is at least the
one-sided Clopper-Pearson lower bound p of c / S, so exposure <= -log2 p (log2 |space| when c = 0).
A skew-normal extrapolation (Carlini et al. 2019) can under-read (it read 15.7 bits as 14.5), so it
is kept as information only, and the reported figure is the larger of the two, capped at
log2 |space|.

Calibration against the base model (``calibrate_with_base``, on by default): each canary's
exposure is computed again, the same way, under the base model, and ``calibrated_bits`` =
exposure - base exposure (at least 0), so a secret the base model already likes (a common
pattern, a tokenization that favours it) does not read as memorised. Where the base's figure is
sampled, its lower bound (one-sided Clopper-Pearson upper bound of the fraction above) is
subtracted, so the calibrated figure stays on the safe side. The record says which calibration
ran (``calibration``) and why none did.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from finetrail.governance.evidence.probes import (
    CanaryExposure,
    ExposureEvidence,
    ExposureStats,
    FormatExposure,
)
from finetrail.governance.probes.canaries import Canary
from finetrail.governance.probes.context import ProbeContext
from finetrail.governance.probes.formats import CanaryFormat, format_by_name
from finetrail.governance.probes.models import ProbeModels
from finetrail.governance.probes.secret_space import SecretPlan, candidate_logprobs, plan_for

MARGIN = 1e-3  # nats below the lowest canary kept by the pruned tree (float noise)
UPPER_CONFIDENCE = 0.95  # of the sampled upper bound on exposure
CALIBRATED_DECIMALS = 4  # base-model and calibrated figures, in bits


def exposure_stats(values: list[float]) -> ExposureStats:
    if not values:
        return ExposureStats(n=0, mean_bits=None, median_bits=None, max_bits=None, min_bits=None)
    s = sorted(values)
    mid = len(s) // 2
    median = s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
    return ExposureStats(
        n=len(s), mean_bits=sum(s) / len(s), median_bits=median, max_bits=s[-1], min_bits=s[0]
    )


def exact_ranks(
    ctx: ProbeContext, plan: SecretPlan, canaries: list[Canary], scores: dict[str, float]
) -> tuple[dict[str, int], int, bool]:
    """Exact ranks of as many canaries as the budget allows: (ranks by id, leaves scored, pruned)."""
    import numpy as np

    from finetrail.governance.probes.scoring import TreeBudgetExceeded, tree_leaf_scores

    cfg = ctx.config.exposure
    assert plan.slot_ids is not None
    fmt = plan.fmt
    eligible = sorted(canaries, key=lambda c: scores[c.id], reverse=True)
    full = fmt.space_size <= cfg.max_exact_candidates
    scored = 0
    while eligible:
        threshold = -math.inf if full else min(scores[c.id] for c in eligible) - MARGIN
        try:
            leaves = tree_leaf_scores(
                ctx.models.model,
                prefix_ids=plan.prefix_ids,
                slots=plan.slot_ids,
                threshold=threshold,
                max_leaves=cfg.max_exact_candidates,
                chunk=cfg.chunk,
                tick=ctx.progress.advance,
            )
        except TreeBudgetExceeded:
            scored += cfg.max_exact_candidates
            eligible = eligible[: len(eligible) // 2]  # keep the better-memorised half
            continue
        scored += leaves.scored
        ranks = {}
        for c in eligible:
            hit = np.nonzero(leaves.indices == fmt.index_of(c.secret))[0]
            s = float(leaves.scores[hit[0]]) if len(hit) else scores[c.id]
            ranks[c.id] = 1 + int(np.count_nonzero(leaves.scores > s))
        return ranks, scored, not full
    return {}, scored, not full


@dataclass(frozen=True)
class SkewNormalFit:
    """A skew-normal fitted to the scores of random candidates (Carlini et al. 2019, 4.3)."""

    a: float
    loc: float
    scale: float
    samples: int
    values: tuple[float, ...] = ()  # the sampled scores, sorted

    def above(self, score: float) -> int:
        """Sampled secrets scoring strictly above ``score``."""
        import bisect

        return len(self.values) - bisect.bisect_right(self.values, score)

    def log2_tail(self, score: float) -> float:
        """log2 of the estimated fraction of the space scoring above ``score``."""
        from scipy.stats import skewnorm

        return float(skewnorm.logsf(score, self.a, self.loc, self.scale)) / math.log(2)


def fit_skew_normal(ctx: ProbeContext, plan: SecretPlan) -> SkewNormalFit:
    from scipy.stats import skewnorm

    cfg = ctx.config.exposure
    rng = random.Random(cfg.seed)
    sample = [plan.fmt.random_secret(rng) for _ in range(cfg.samples)]
    values = candidate_logprobs(
        ctx.models.model, ctx.models.tok, plan, sample, tick=ctx.progress.advance
    )
    a, loc, scale = skewnorm.fit(values)
    return SkewNormalFit(
        float(a), float(loc), float(scale), len(sample), tuple(sorted(float(v) for v in values))
    )


def sampled_upper_bits(above: int, samples: int, space_bits: float) -> float:
    """An upper bound on exposure at ``UPPER_CONFIDENCE`` from ``above`` of ``samples`` random
    secrets scoring above the canary: -log2 of the one-sided Clopper-Pearson lower bound of the
    fraction above; the space's size when none scored above (nothing rules out rank 1)."""
    from scipy.stats import beta

    if above == 0:
        return space_bits
    low = float(beta.ppf(1 - UPPER_CONFIDENCE, above, samples - above + 1))
    return min(space_bits, -math.log2(low)) if low > 0 else space_bits


def sampled_lower_bits(above: int, samples: int) -> float:
    """A lower bound on exposure at ``UPPER_CONFIDENCE``: -log2 of the one-sided Clopper-Pearson
    upper bound of the fraction of the space above the canary (0 when every sample scored above)."""
    from scipy.stats import beta

    if above >= samples:
        return 0.0
    high = float(beta.ppf(UPPER_CONFIDENCE, above + 1, samples - above))
    return max(0.0, -math.log2(high)) if high > 0 else 0.0


def reference_bits(row: CanaryExposure, samples: int) -> float:
    """The base model's exposure of a canary, from below: exact, else the sampled lower bound."""
    if row.method == "exact" or row.sampled_above is None:
        return row.exposure_bits
    return min(row.exposure_bits, sampled_lower_bits(row.sampled_above, samples))


def calibrated_stats(values: list[float]) -> ExposureStats:
    """:func:`exposure_stats` to ``CALIBRATED_DECIMALS`` (means, medians)."""
    stats = exposure_stats(values)
    return stats.model_copy(
        update={
            k: round(v, CALIBRATED_DECIMALS)
            for k, v in stats.model_dump().items()
            if isinstance(v, float)
        }
    )


def calibrate(
    rows: list[CanaryExposure], base_rows: list[CanaryExposure], samples: int
) -> list[CanaryExposure]:
    """Each fine-tuned row with its base model reference and the difference (at least 0), to
    1e-4 bits (a long float's digits could spell a secret of the canaries)."""
    base = {r.id: r for r in base_rows}
    out = []
    for r in rows:
        ref = round(reference_bits(base[r.id], samples), CALIBRATED_DECIMALS)
        out.append(
            r.model_copy(
                update={
                    "base_exposure_bits": ref,
                    "calibrated_bits": round(max(0.0, r.exposure_bits - ref), CALIBRATED_DECIMALS),
                }
            )
        )
    return out


class ExposureProbe:
    name = "exposure"
    cli_name = "exposure"

    def missing(self, ctx: ProbeContext) -> str | None:
        return None if ctx.canaries is not None else "no canary set committed in the workspace"

    def run(self, ctx: ProbeContext) -> ExposureEvidence:
        assert ctx.canaries is not None
        cfg = ctx.config.exposure
        by_format: dict[str, list[Canary]] = {}
        for c in ctx.canaries.canaries:
            by_format.setdefault(c.format, []).append(c)
        total = sum(min(format_by_name(n).space_size, cfg.max_exact_candidates) for n in by_format)
        note = None
        if not cfg.calibrate_with_base:
            note = "calibration disabled (exposure.calibrate_with_base: false)"
        elif not ctx.models.has_base:
            note = "no base model given to the probe"
        ctx.progress.start("exposure", total * (1 if note else 2))
        scores = ctx.canary_scores().finetuned
        rows: list[CanaryExposure] = []
        formats: list[FormatExposure] = []
        for name, cans in sorted(by_format.items()):
            fmt = format_by_name(name)
            t0 = time.perf_counter()
            rows_f, info = self._format(ctx, fmt, cans, scores)
            rows += rows_f
            formats.append(
                FormatExposure(
                    format=name,
                    space_size=fmt.space_size,
                    space_bits=fmt.space_bits,
                    method=info[0],
                    candidates_scored=info[1],
                    seconds=round(time.perf_counter() - t0, 3),
                )
            )
        if note is None:
            rows = self._calibrated(ctx, by_format, rows)
        inserted = [r for r in rows if r.included]
        reps = sorted({r.repetitions for r in inserted})
        vals = sorted(r.exposure_bits for r in inserted)
        cal = [r.calibrated_bits for r in inserted if r.calibrated_bits is not None]
        quant = {}
        if vals:
            for q in (0.1, 0.25, 0.5, 0.75, 0.9):
                quant[f"p{int(q * 100)}"] = vals[min(len(vals) - 1, int(q * len(vals)))]
        return ExposureEvidence(
            subject=ctx.subject,
            space_bits=max(f.space_bits for f in formats),
            max_bits=max(vals) if vals else 0.0,
            by_repetition={
                str(k): exposure_stats([r.exposure_bits for r in inserted if r.repetitions == k])
                for k in reps
            },
            controls=exposure_stats([r.exposure_bits for r in rows if not r.included]),
            formats=tuple(formats),
            canaries=tuple(sorted(rows, key=lambda r: r.id)),
            quantiles=quant,
            parameters={
                "max_exact_candidates": cfg.max_exact_candidates,
                "skew_normal_samples": cfg.samples,
                "seed": cfg.seed,
            },
            calibration="none" if note else "base_model_reference",
            calibration_note=note,
            calibrated_max_bits=max(cal) if cal else None,
            calibrated_by_repetition={
                str(k): calibrated_stats(
                    [
                        r.calibrated_bits
                        for r in inserted
                        if r.repetitions == k and r.calibrated_bits is not None
                    ]
                )
                for k in reps
            }
            if not note
            else {},
            calibrated_controls=calibrated_stats(
                [
                    r.calibrated_bits
                    for r in rows
                    if not r.included and r.calibrated_bits is not None
                ]
            )
            if not note
            else None,
        )

    def _calibrated(
        self, ctx: ProbeContext, by_format: dict[str, list[Canary]], rows: list[CanaryExposure]
    ) -> list[CanaryExposure]:
        """``rows`` with the base model's exposure of the same canaries, computed the same way."""
        base_scores = ctx.canary_scores().base
        base_rows: list[CanaryExposure] = []
        with ctx.models.base() as base_model:
            assert base_model is not None and base_scores is not None
            base_ctx = replace(
                ctx, models=ProbeModels(model=base_model, tokenizer=ctx.models.tokenizer)
            )
            for name, cans in sorted(by_format.items()):
                base_rows += self._format(base_ctx, format_by_name(name), cans, base_scores)[0]
        return calibrate(rows, base_rows, ctx.config.exposure.samples)

    def _format(
        self, ctx: ProbeContext, fmt: CanaryFormat, cans: list[Canary], scores: dict[str, float]
    ) -> tuple[list[CanaryExposure], tuple[Any, int]]:
        budget = ctx.config.exposure.max_exact_candidates
        plan = plan_for(ctx.models.tok, fmt, [c.secret for c in cans], framing=ctx.framing)
        fit = None
        scored = 0
        if not plan.tree or fmt.space_size > budget:
            fit = fit_skew_normal(ctx, plan)
            scored += fit.samples
        ranks: dict[str, int] = {}
        pruned = False
        if plan.tree:
            todo = cans
            if fit is not None:  # rank exactly only canaries whose subtree plausibly fits
                todo = [
                    c
                    for c in cans
                    if fmt.space_bits + fit.log2_tail(scores[c.id]) + math.log2(100)
                    <= math.log2(budget)
                ]
            ranks, n, pruned = exact_ranks(ctx, plan, todo, scores)
            scored += n
        rows = []
        for c in cans:
            method: Literal["exact", "skew_normal", "sampled_upper_bound"]
            estimate: float | None = None
            above: int | None = None
            if c.id in ranks:
                bits = fmt.space_bits - math.log2(ranks[c.id])
                method, rank = "exact", ranks[c.id]
            else:
                if fit is None:  # pragma: no cover - a full tree ranks every canary
                    fit = fit_skew_normal(ctx, plan)
                    scored += fit.samples
                estimate = min(fmt.space_bits, max(0.0, -fit.log2_tail(scores[c.id])))
                above = fit.above(scores[c.id])
                upper = sampled_upper_bits(above, fit.samples, fmt.space_bits)
                bits = max(upper, estimate)
                method, rank = "sampled_upper_bound", None
            rows.append(
                CanaryExposure(
                    id=c.id,
                    format=fmt.name,
                    repetitions=c.repetitions,
                    included=c.included,
                    exposure_bits=max(0.0, bits),
                    space_bits=fmt.space_bits,
                    method=method,
                    rank=rank,
                    log_likelihood=scores[c.id],
                    estimate_bits=estimate if method != "exact" else None,
                    sampled_above=above if method != "exact" else None,
                )
            )
        if not ranks:
            kind = "skew_normal"
        elif len(ranks) < len(cans):
            kind = "mixed"
        else:
            kind = "pruned_tree" if pruned else "exact_tree"
        return rows, (kind, scored)
