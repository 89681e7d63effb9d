"""The DP claim against what one training run shows: the one-run audit of the canaries.

Every canary was included with probability 1/2 before training (``artifacts/canaries.json``). Each
canary is scored by the log-likelihood of its secret under the fine-tuned model minus the base
model's (reference calibration; plain log-likelihood without a base model). Canaries are audited
per repetition group: a canary repeated k times is k examples, so under per-example (eps, delta)-DP
it is (k eps, k e^((k-1) eps) delta)-DP, and the group's bound is stated per example — directly
comparable to the claimed epsilon. In each group the top guesses are IN, the bottom ones OUT.

Threshold choice is a multiple test: ``bonferroni`` divides the significance level by the number of
(group, guess-count) tests; ``split`` picks the guess count on one half of each group's canaries
and computes the bound on the other half. Verdict: ``contradicted`` when the bound exceeds the
claimed epsilon, ``consistent`` otherwise, ``no_claim`` without DP.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from finetrail.governance.evidence.probes import AuditTest, DPAuditEvidence
from finetrail.governance.probes.audit_math import GroupPrivacy, epsilon_lower_bound
from finetrail.governance.probes.context import ProbeContext

TOLERANCE = 1e-9


@dataclass(frozen=True)
class AuditOutcome:
    bound: float
    best: AuditTest | None
    groups: tuple[AuditTest, ...]
    ceiling: float
    tests: int


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
) -> AuditTest:
    m = len(scores)
    k_in, k_out = _guess_counts(m, fraction)
    v = count_guesses(scores, included, k_in, k_out, seed=seed)
    r = k_in + k_out
    group = GroupPrivacy(k)
    return AuditTest(
        repetitions=k,
        canaries=m,
        guesses_in=k_in,
        guesses_out=k_out,
        correct=v,
        epsilon_lower_bound=epsilon_lower_bound(
            m=m, r=r, v=v, delta=delta, level=level, group=group
        ),
        ceiling=epsilon_lower_bound(m=m, r=r, v=r, delta=delta, level=level, group=group),
    )


def one_run_audit(
    *,
    scores: Sequence[float],
    included: Sequence[bool],
    repetitions: Sequence[int],
    delta: float,
    confidence: float = 0.95,
    fractions: Sequence[float] = (0.2, 0.4, 0.6, 0.8, 1.0),
    selection: str = "bonferroni",
    seed: int = 0,
) -> AuditOutcome:
    """The per-example empirical epsilon lower bound at ``confidence`` from canary scores."""
    groups: dict[int, list[int]] = {}
    for i, k in enumerate(repetitions):
        groups.setdefault(int(k), []).append(i)
    alpha = 1 - confidence
    per_group: list[AuditTest] = []
    if selection == "bonferroni":
        tests = len(groups) * len(fractions)
        level = alpha / tests
        ceiling = 0.0
        for k, idx in sorted(groups.items()):
            s = [float(scores[i]) for i in idx]
            inc = [bool(included[i]) for i in idx]
            results = [_test(s, inc, k, f, delta=delta, level=level, seed=seed) for f in fractions]
            per_group.append(max(results, key=lambda t: (t.epsilon_lower_bound, t.ceiling)))
            ceiling = max([ceiling] + [t.ceiling for t in results])
    elif selection == "split":
        tests = len(groups)
        level = alpha / tests
        rng = random.Random(seed)
        ceiling = 0.0
        for k, idx in sorted(groups.items()):
            shuffled = idx[:]
            rng.shuffle(shuffled)
            half = len(shuffled) // 2
            pick, held = shuffled[:half], shuffled[half:]
            if pick:
                tuned = [
                    _test(
                        [float(scores[i]) for i in pick],
                        [bool(included[i]) for i in pick],
                        k,
                        f,
                        delta=delta,
                        level=level,
                        seed=seed,
                    )
                    for f in fractions
                ]
                best_f = fractions[
                    max(range(len(fractions)), key=lambda j: tuned[j].epsilon_lower_bound)
                ]
            else:
                best_f = fractions[-1]
            t = _test(
                [float(scores[i]) for i in held],
                [bool(included[i]) for i in held],
                k,
                best_f,
                delta=delta,
                level=level,
                seed=seed,
            )
            per_group.append(t)
            ceiling = max(ceiling, t.ceiling)
    else:
        raise ValueError(f"unknown threshold selection {selection!r}")
    best = max(per_group, key=lambda t: t.epsilon_lower_bound) if per_group else None
    bound = best.epsilon_lower_bound if best else 0.0
    return AuditOutcome(
        bound=bound, best=best, groups=tuple(per_group), ceiling=ceiling, tests=tests
    )


def verdict(
    bound: float, claimed: float | None
) -> Literal["consistent", "contradicted", "no_claim"]:
    if claimed is None:
        return "no_claim"
    return "contradicted" if bound > claimed + TOLERANCE else "consistent"


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
            verdict=verdict(out.bound, claimed),
            best=out.best,
            groups=out.groups,
            ceiling=out.ceiling,
            canaries=len(canaries),
            inserted=sum(c.included for c in canaries),
            parameters={
                "guess_fractions": ",".join(str(f) for f in cfg.guess_fractions),
                "calibrated": calibrated,
                "seed": cfg.seed,
            },
        )
