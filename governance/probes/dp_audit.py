"""The DP claim against what one training run shows: the one-run audit of the canaries.

Every canary was included with probability 1/2 before training (``artifacts/canaries.json``). Each
canary is scored by the log-likelihood of its secret under the fine-tuned model minus the base
model's (reference calibration; plain log-likelihood without a base model). The top guesses are
IN, the bottom ones OUT.

Only canaries inserted once give a per-example bound, the number comparable with the claimed
epsilon. A canary repeated k times is k examples: group privacy makes it (k eps, k e^((k-1) eps)
delta)-DP, a delta that is 1 already at eps = 1 for k = 16, so converting its bound to a per-example
one certifies nothing (at most 0.57 and 0.08 per example for k = 4 and 16 with the demo's counts)
while splitting the significance level. Repeated canaries are therefore audited as units, in their
own test family (``repeated``): they show leakage, they say nothing per example.

Threshold choice is a multiple test: ``bonferroni`` divides the significance level by the number
of guess counts tried; ``split`` picks the guess count on one half of the canaries and computes the
bound on the other half. The ``ceiling`` is the largest per-example bound the design could report
(every guess right) for that canary count and delta (:func:`design_ceiling`; ``finetrail canaries
plan`` prints it before training). Verdict: ``contradicted`` when the bound exceeds the claimed
epsilon; ``inconclusive`` when the ceiling is below the claim (no outcome could have contradicted
it); ``consistent`` otherwise; ``no_claim`` without DP.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from finetrail.governance.evidence.probes import AuditTest, DPAuditEvidence
from finetrail.governance.probes.audit_math import epsilon_lower_bound
from finetrail.governance.probes.context import ProbeContext

TOLERANCE = 1e-9
DEFAULT_FRACTIONS: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)

Verdict = Literal["consistent", "contradicted", "inconclusive", "no_claim"]


@dataclass(frozen=True)
class AuditOutcome:
    bound: float  # per example, from the single-copy canaries
    best: AuditTest | None
    groups: tuple[AuditTest, ...]  # the per-example test(s)
    ceiling: float  # per example
    tests: int
    single_copy: int = 0
    repeated: tuple[AuditTest, ...] = ()


def count_guesses(
    scores: Sequence[float], included: Sequence[bool], k_in: int, k_out: int, *, seed: int = 0
) -> int:
    """Correct guesses when the ``k_in`` highest scores are guessed IN and the ``k_out`` lowest
    OUT (ties broken at random, never by position)."""
    rng = random.Random(seed)
    order = sorted(range(len(scores)), key=lambda i: (scores[i], rng.random()), reverse=True)
    top, bottom = order[:k_in], order[len(order) - k_out :] if k_out else []
    return sum(included[i] for i in top) + sum(not included[i] for i in bottom)


def _guess_counts(m: int, fraction: float) -> tuple[int, int]:
    k_in = min(m, max(1, round(fraction * m / 2)))
    k_out = min(m - k_in, max(0, round(fraction * m / 2)))
    return k_in, k_out


def _test(
    scores: list[float],
    included: list[bool],
    k: int,
    fraction: float,
    *,
    delta: float,
    level: float,
    seed: int,
    unit: Literal["example", "canary"],
) -> AuditTest:
    m = len(scores)
    k_in, k_out = _guess_counts(m, fraction)
    v = count_guesses(scores, included, k_in, k_out, seed=seed)
    r = k_in + k_out
    return AuditTest(
        repetitions=k,
        canaries=m,
        guesses_in=k_in,
        guesses_out=k_out,
        correct=v,
        epsilon_lower_bound=epsilon_lower_bound(m=m, r=r, v=v, delta=delta, level=level),
        ceiling=epsilon_lower_bound(m=m, r=r, v=r, delta=delta, level=level),
        unit=unit,
    )


def design_ceiling(
    *,
    canaries: int,
    delta: float,
    confidence: float = 0.95,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    selection: str = "bonferroni",
) -> float:
    """The largest per-example bound an audit of ``canaries`` single-copy canaries can report at
    ``delta`` (every guess right): exactly what :func:`one_run_audit` states as its ceiling."""
    if selection not in ("bonferroni", "split"):
        raise ValueError(f"unknown threshold selection {selection!r}")
    alpha = 1 - confidence
    if selection == "bonferroni":
        m, level = canaries, alpha / len(fractions)
    else:
        m, level = canaries - canaries // 2, alpha
    if m < 1:
        return 0.0
    out = 0.0
    for f in fractions:
        k_in, k_out = _guess_counts(m, f)
        r = k_in + k_out
        out = max(out, epsilon_lower_bound(m=m, r=r, v=r, delta=delta, level=level))
    return out


@dataclass(frozen=True)
class CanaryBudget:
    """How many single-copy canaries a claim needs (``needed`` None: not within ``searched``)."""

    needed: int | None
    searched: int
    peak: float  # the largest ceiling seen
    peak_at: int


def canaries_needed(
    *,
    claim: float,
    delta: float,
    confidence: float = 0.95,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    selection: str = "bonferroni",
    limit: int = 50_000,
) -> CanaryBudget:
    """The smallest single-copy canary count whose ceiling exceeds ``claim`` (up to ``limit``).

    The ceiling does not grow without end: the delta term of the bound grows with the count, so
    it peaks (near 6.6 at delta 1e-5) and claims above the peak can never be contradicted."""

    def ceiling(m: int) -> float:
        return design_ceiling(
            canaries=m, delta=delta, confidence=confidence, fractions=fractions, selection=selection
        )

    peak, peak_at, prev, m = 0.0, 0, 1, 2
    while m <= limit:
        c = ceiling(m)
        if c > peak:
            peak, peak_at = c, m
        if c > claim + TOLERANCE:
            lo, hi = prev, m  # ceiling(lo) <= claim < ceiling(hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if ceiling(mid) > claim + TOLERANCE else (mid, hi)
            return CanaryBudget(needed=hi, searched=limit, peak=peak, peak_at=peak_at)
        prev, m = m, max(m + 1, int(m * 1.5))
    return CanaryBudget(needed=None, searched=limit, peak=peak, peak_at=peak_at)


def _family(
    scores: list[float],
    included: list[bool],
    k: int,
    *,
    delta: float,
    level: float,
    fractions: Sequence[float],
    selection: str,
    seed: int,
    unit: Literal["example", "canary"],
) -> tuple[AuditTest, float]:
    """(the reported test, the design's ceiling) for one set of canaries."""
    if selection == "bonferroni":
        results = [
            _test(scores, included, k, f, delta=delta, level=level, seed=seed, unit=unit)
            for f in fractions
        ]
        best = max(results, key=lambda t: (t.epsilon_lower_bound, t.ceiling))
        return best, max(t.ceiling for t in results)
    idx = list(range(len(scores)))
    random.Random(seed).shuffle(idx)
    half = len(idx) // 2
    pick, held = idx[:half], idx[half:]
    best_f = fractions[-1]
    if pick:
        tuned = [
            _test(
                [scores[i] for i in pick],
                [included[i] for i in pick],
                k,
                f,
                delta=delta,
                level=level,
                seed=seed,
                unit=unit,
            )
            for f in fractions
        ]
        best_f = fractions[max(range(len(fractions)), key=lambda j: tuned[j].epsilon_lower_bound)]
    held_scores = [scores[i] for i in held]
    held_inc = [included[i] for i in held]
    t = _test(held_scores, held_inc, k, best_f, delta=delta, level=level, seed=seed, unit=unit)
    ceiling = max(
        _test(held_scores, held_inc, k, f, delta=delta, level=level, seed=seed, unit=unit).ceiling
        for f in fractions
    )
    return t, ceiling


def one_run_audit(
    *,
    scores: Sequence[float],
    included: Sequence[bool],
    repetitions: Sequence[int],
    delta: float,
    confidence: float = 0.95,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    selection: str = "bonferroni",
    seed: int = 0,
) -> AuditOutcome:
    """The per-example empirical epsilon lower bound at ``confidence`` from the single-copy
    canaries' scores; repeated canaries as units, in a separate family at the same confidence."""
    if selection not in ("bonferroni", "split"):
        raise ValueError(f"unknown threshold selection {selection!r}")
    groups: dict[int, list[int]] = {}
    for i, k in enumerate(repetitions):
        groups.setdefault(int(k), []).append(i)
    alpha = 1 - confidence
    tests = len(fractions) if selection == "bonferroni" else 1

    def pick(idx: list[int]) -> tuple[list[float], list[bool]]:
        return [float(scores[i]) for i in idx], [bool(included[i]) for i in idx]

    single = groups.pop(1, [])
    per_example: tuple[AuditTest, ...] = ()
    ceiling = 0.0
    if len(single) >= 2:
        s, inc = pick(single)
        t, ceiling = _family(
            s,
            inc,
            1,
            delta=delta,
            level=alpha / tests,
            fractions=fractions,
            selection=selection,
            seed=seed,
            unit="example",
        )
        per_example = (t,)
    repeated = []
    level_rep = alpha / (tests * max(1, len(groups)))
    for k, idx in sorted(groups.items()):
        if len(idx) < 2:
            continue
        s, inc = pick(idx)
        t, _ = _family(
            s,
            inc,
            k,
            delta=delta,
            level=level_rep,
            fractions=fractions,
            selection=selection,
            seed=seed,
            unit="canary",
        )
        repeated.append(t)
    best = per_example[0] if per_example else None
    return AuditOutcome(
        bound=best.epsilon_lower_bound if best else 0.0,
        best=best,
        groups=per_example,
        ceiling=ceiling,
        tests=tests,
        single_copy=len(single),
        repeated=tuple(repeated),
    )


def verdict(bound: float, claimed: float | None, ceiling: float | None = None) -> Verdict:
    """``ceiling`` None: the old two-way verdict (no knowledge of the design's reach)."""
    if claimed is None:
        return "no_claim"
    if bound > claimed + TOLERANCE:
        return "contradicted"
    if ceiling is not None and ceiling <= claimed + TOLERANCE:
        return "inconclusive"
    return "consistent"


class DPAuditProbe:
    name = "dp_audit"
    cli_name = "dp-audit"

    def missing(self, ctx: ProbeContext) -> str | None:
        if ctx.canaries is None:
            return "no canary set committed in the workspace"
        if len(ctx.canaries.canaries) < 2:
            return "the one-run audit needs at least two canaries"
        return None

    def run(self, ctx: ProbeContext) -> DPAuditEvidence:
        assert ctx.canaries is not None
        cfg = ctx.config.dp_audit
        canaries = list(ctx.canaries.canaries)
        ctx.progress.start("dp-audit", len(canaries))
        cs = ctx.canary_scores()
        calibrated = cfg.calibrate_with_base and cs.base is not None
        if calibrated and cs.base is not None:
            scores = [cs.finetuned[c.id] - cs.base[c.id] for c in canaries]
            what = "log-likelihood of the secret, fine-tuned minus base model"
        else:
            scores = [cs.finetuned[c.id] for c in canaries]
            what = "log-likelihood of the secret under the fine-tuned model"
        claim = ctx.claim
        claimed = claim.epsilon if claim is not None else None
        delta = claim.delta if claim is not None and claim.delta else cfg.delta_if_unclaimed
        out = one_run_audit(
            scores=scores,
            included=[c.included for c in canaries],
            repetitions=[c.repetitions for c in canaries],
            delta=delta,
            confidence=cfg.confidence,
            fractions=cfg.guess_fractions,
            selection=cfg.threshold_selection,
            seed=cfg.seed,
        )
        ctx.progress.advance(len(canaries))
        return DPAuditEvidence(
            subject=ctx.subject,
            score=what,
            claimed_epsilon=claimed,
            claimed_delta=claim.delta if claim is not None else None,
            accountant=claim.accountant if claim is not None else None,
            delta_used=delta,
            empirical_epsilon_lower_bound=out.bound,
            confidence=cfg.confidence,
            threshold_selection=cfg.threshold_selection,
            tests=out.tests,
            verdict=verdict(out.bound, claimed, out.ceiling),
            best=out.best,
            groups=out.groups,
            ceiling=out.ceiling,
            canaries=len(canaries),
            inserted=sum(c.included for c in canaries),
            single_copy_canaries=out.single_copy,
            repeated=out.repeated,
            parameters={
                "guess_fractions": ",".join(str(f) for f in cfg.guess_fractions),
                "calibrated": calibrated,
                "seed": cfg.seed,
            },
        )
