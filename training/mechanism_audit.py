"""The white-box mechanism audit: finetrail watches its own DP optimizer step.

Opacus's ``DPOptimizer.pre_step`` clips and sums the per-sample gradients (``p.summed_grad``),
adds Gaussian noise (``add_noise``: ``p.grad = summed + N(0, (sigma C)^2)``), divides by the
expected batch size (``scale_grad``) and calls the accountant's ``step_hook``. The accountant
models the release as ``(sum_i clip_C(g_i) + N(0, sigma^2 C^2 I)) / D`` with ``D = N x q`` a
constant. :class:`MechanismAudit` wraps three points of *this* optimizer object (``add_noise``,
``step_hook``, the inner optimizer's ``step``; plus ``get_clipping_coef`` in ghost mode) and, on a
fixed random sample of coordinates of every trainable tensor, records

- ``S``: the clipped sum, before the noise;
- ``X``: the noisy sum, after ``add_noise``;
- ``R``: the released gradient handed to the accountant (after ``scale_grad``);
- ``U``: the gradient the update consumed.

Then (:mod:`finetrail.governance.evidence.mechanism`): ``X - S`` must be N(0, (sigma C)^2) with the
*claimed* sigma and C (chi-square, two-sided); ``R`` must be ``X / D`` with one constant ``D`` equal
to the model's; ``U`` must equal ``R`` unless post-processing is declared; the clipped sum must be
what clipping every per-sample gradient at the claimed C gives (on sampled steps, hooks mode; the
coefficients times the norms in ghost mode); and a synthetic gradient of norm 100 C must leave the
optimizer's own clipping with norm C. The claim comes from the plan and the config, never from
the optimizer's attributes (a tampered optimizer would otherwise agree with itself).

Cost: a few gathers per step, plus a recomputed clipping every ``clip_every`` steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from finetrail.governance.evidence.mechanism import (
    AuditCost,
    ClippingTest,
    MechanismClaim,
    MechanismEvidence,
    MechanismVerdict,
    NoiseTest,
    NormalisationTest,
    OneRunBound,
    Ratio,
    SyntheticCanary,
)

__all__ = [
    "AuditSettings",
    "MechanismAudit",
    "gaussian_step_epsilon",
    "noise_test",
    "not_run",
    "write_mechanism_evidence",
]

CLIP_TOLERANCE = 1e-4  # of C: float32 sums of a batch of clipped gradients
RELEASE_TOLERANCE = 1e-5  # relative: one float32 division
CANARY_NORM = 100.0  # in units of C


@dataclass(frozen=True)
class AuditSettings:
    coordinates_per_tensor: int = 32
    clip_every: int = 10  # recompute the clipping on every k-th observed step (and the first)
    false_alarm_rate: float = 1e-3
    # Steps are observed while the audit's time stays under this fraction of the rest of the
    # loop's (the choice depends on the clock only, never on the data or the noise); the first
    # ``always_observe`` steps are always observed.
    max_fraction: float = 0.03
    always_observe: int = 3
    bound_canaries: int = 5_000  # noise observations kept for the one-run bound
    bound_confidence: float = 0.95
    seed: int = 0


def not_run(
    reason: str, *, claim: MechanismClaim | None = None, steps: int = 0
) -> MechanismEvidence:
    return MechanismEvidence(
        ran=False,
        verdict="not_run",
        reasons=(reason,),
        false_alarm_rate=AuditSettings().false_alarm_rate,
        claim=claim,
        clipping_mode=None,
        steps=steps,
    )


class MechanismAudit:
    """Instrument one Opacus ``DPOptimizer`` (``attach``), then judge it (``evidence``)."""

    def __init__(
        self,
        *,
        optimizer: Any,
        claim: MechanismClaim,
        mode: str,
        hooks: Any = None,
        names: dict[int, str] | None = None,
        settings: AuditSettings | None = None,
        post_processing: str | None = None,
    ) -> None:
        self.opt, self.claim, self.mode, self.hooks = optimizer, claim, mode, hooks
        self.settings = settings or AuditSettings()
        self.post_processing = post_processing
        self.params: list[torch.Tensor] = list(optimizer.params)
        names = names or {}
        self.names = [names.get(id(p), f"param{i}") for i, p in enumerate(self.params)]
        gen = torch.Generator().manual_seed(self.settings.seed)
        k = self.settings.coordinates_per_tensor
        self.index = [
            torch.randperm(p.numel(), generator=gen)[: min(k, p.numel())].to(p.device)
            for p in self.params
        ]
        device = self.params[0].device if self.params else torch.device("cpu")
        self.tensor_of = torch.cat(
            [torch.full((len(i),), j, dtype=torch.long) for j, i in enumerate(self.index)]
            or [torch.zeros(0, dtype=torch.long)]
        ).to(device)
        n_t = len(self.params)
        self._sumsq = torch.zeros(n_t, dtype=torch.float64, device=device)
        self._sum = torch.zeros(n_t, dtype=torch.float64, device=device)
        self._kept: list[torch.Tensor] = []
        self._kept_n = 0
        self._divisors: list[torch.Tensor] = []
        self._release_err: list[torch.Tensor] = []
        self._update_diff = torch.zeros((), dtype=torch.float64, device=device)
        self._clip_err = torch.zeros((), dtype=torch.float64, device=device)
        self._max_norm = torch.zeros((), dtype=torch.float64, device=device)
        self._max_contrib = torch.zeros((), dtype=torch.float64, device=device)
        self._above = torch.zeros((), dtype=torch.long, device=device)
        self._examples = 0
        self._clip_steps = 0
        # gradient accumulation: the expected clipped sum and norms of the chunks so far
        self._carried: tuple[torch.Tensor, torch.Tensor] | None = None
        self._calls = 0
        self._observed = 0
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self._release: torch.Tensor | None = None
        self._seconds = 0.0
        self._attached = 0.0
        self._observing = False
        self._restore: list[Callable[[], None]] = []
        self.canary: SyntheticCanary | None = None

    # ---- instrumentation ----------------------------------------------------------------------

    def _gather(self, tensors: list[torch.Tensor | None]) -> torch.Tensor:
        return torch.cat(
            [
                t.reshape(-1)[i] if t is not None else torch.zeros(len(i), device=i.device)
                for t, i in zip(tensors, self.index, strict=True)
            ]
        ).double()

    def _patch(self, obj: Any, name: str, value: Any) -> None:
        own = name in vars(obj)
        old = vars(obj).get(name)
        setattr(obj, name, value)

        def undo() -> None:
            if own:
                setattr(obj, name, old)
            elif name in vars(obj):
                delattr(obj, name)

        self._restore.append(undo)

    def attach(self) -> None:
        if not self.params:
            return
        self.canary = self._synthetic_canary()
        self._attached = time.perf_counter()
        opt = self.opt
        add_noise = opt.add_noise
        hook = opt.step_hook
        inner_step = opt.original_optimizer.step

        def audited_add_noise() -> None:
            t0 = time.perf_counter()
            self._calls += 1
            self._observing = self._due(t0)
            if not self._observing:
                self._carried = None  # this logical batch's chunks are not checked
                add_noise()
                return
            s = self._gather([getattr(p, "summed_grad", None) for p in self.params])
            if self.mode == "hooks" and (
                self._clip_steps == 0 or self._observed % max(1, self.settings.clip_every) == 0
            ):
                self._check_clipping(s)
            self._carried = None
            self._seconds += time.perf_counter() - t0
            add_noise()
            t0 = time.perf_counter()
            x = self._gather([p.grad for p in self.params])
            self._pending = (s, x)
            self._seconds += time.perf_counter() - t0

        def audited_hook(o: Any) -> None:
            t0 = time.perf_counter()
            if self._pending is not None:
                self._observe(*self._pending, self._gather([p.grad for p in self.params]))
                self._pending = None
            self._seconds += time.perf_counter() - t0
            if hook is not None:
                hook(o)

        def audited_inner_step(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            if self._release is not None:
                used = self._gather([p.grad for p in self.params])
                diff = (used - self._release).abs().max() / self._release.abs().max().clamp(
                    min=1e-30
                )
                self._update_diff = torch.maximum(self._update_diff, diff)
                self._release = None
            self._seconds += time.perf_counter() - t0
            return inner_step(*args, **kwargs)

        zero_grad = opt.zero_grad

        def audited_zero_grad(*args: Any, **kwargs: Any) -> Any:
            if self.mode == "hooks" and getattr(opt, "_is_last_step_skipped", False):
                t0 = time.perf_counter()
                self._carry_chunk()
                self._seconds += time.perf_counter() - t0
            return zero_grad(*args, **kwargs)

        self._patch(opt, "add_noise", audited_add_noise)
        self._patch(opt, "zero_grad", audited_zero_grad)
        self._patch(opt, "step_hook", audited_hook)
        self._patch(opt.original_optimizer, "step", audited_inner_step)
        if self.mode == "ghost" and self.hooks is not None:
            coef_fn = self.hooks.get_clipping_coef

            def audited_coef() -> torch.Tensor:
                coef: torch.Tensor = coef_fn()  # every step: B numbers, cheap
                t0 = time.perf_counter()
                norms = self.hooks.per_sample_gradient_norms.detach().double()
                self._record_norms(norms, coef.detach().double() * norms)
                self._clip_steps += 1
                self._seconds += time.perf_counter() - t0
                return coef

            self._patch(self.hooks, "get_clipping_coef", audited_coef)

    def detach(self) -> None:
        while self._restore:
            self._restore.pop()()

    def _due(self, now: float) -> bool:
        """Observe this step? (by the clock and the count only)"""
        if self._calls <= self.settings.always_observe:
            return True
        rest = now - self._attached - self._seconds
        return self._seconds <= self.settings.max_fraction * rest

    def _record_norms(self, norms: torch.Tensor, contributions: torch.Tensor) -> None:
        if norms.numel() == 0:
            return
        c = self.claim.max_grad_norm
        self._max_norm = torch.maximum(self._max_norm, norms.max())
        self._max_contrib = torch.maximum(self._max_contrib, contributions.max())
        self._above += (norms > c).sum()
        self._examples += norms.numel()

    def _clipped_chunk(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The current per-sample gradients clipped at the claimed C, on the sampled coordinates;
        and their norms (None for an empty batch)."""
        samples = [self.opt._get_flat_grad_sample(p) for p in self.params]
        b = samples[0].shape[0]
        if b == 0:
            return None
        c = self.claim.max_grad_norm
        flat = [g.reshape(b, -1) for g in samples]
        norms = torch.stack([g.double().norm(2, dim=1) for g in flat], dim=1).norm(2, dim=1)
        factor = (c / (norms + 1e-6)).clamp(max=1.0)
        expected = torch.cat(
            [factor @ g[:, i].double() for g, i in zip(flat, self.index, strict=True)]
        )
        return expected, norms

    def _carry_chunk(self) -> None:
        """Gradient accumulation (Opacus skipped the step: a physical chunk of a logical batch):
        keep the chunk's expected clipped sum before ``zero_grad`` drops its per-sample
        gradients."""
        chunk = self._clipped_chunk()
        if chunk is not None:
            expected, norms = chunk
            if self._carried is not None:
                expected = expected + self._carried[0]
                norms = torch.cat([self._carried[1], norms])
            self._carried = (expected, norms)

    def _check_clipping(self, s: torch.Tensor) -> None:
        """Recompute the clipped sum on the sampled coordinates with the claimed C (with the
        chunks of the logical batch accumulated before this one)."""
        chunk, carried, self._carried = self._clipped_chunk(), self._carried, None
        if chunk is None and carried is None:
            return
        if chunk is None:
            chunk = carried
        elif carried is not None:
            chunk = (chunk[0] + carried[0], torch.cat([carried[1], chunk[1]]))
        assert chunk is not None
        expected, norms = chunk
        c = self.claim.max_grad_norm
        factor = (c / (norms + 1e-6)).clamp(max=1.0)
        self._clip_err = torch.maximum(self._clip_err, (s - expected).abs().max() / c)
        self._record_norms(norms, factor * norms)
        self._clip_steps += 1

    def _observe(self, s: torch.Tensor, x: torch.Tensor, r: torch.Tensor) -> None:
        self._observed += 1
        z = (x - s) / (self.claim.noise_multiplier * self.claim.max_grad_norm)
        self._sumsq.index_add_(0, self.tensor_of, z * z)
        self._sum.index_add_(0, self.tensor_of, z)
        if self._kept_n < self.settings.bound_canaries:
            self._kept.append(z)
            self._kept_n += z.numel()
        d = (x * r).sum() / (r * r).sum()  # inf or nan when nothing was released: rejected
        self._divisors.append(d)
        self._release_err.append((x - d * r).abs().max() / x.abs().max().clamp(min=1e-30))
        self._release = r

    def _synthetic_canary(self) -> SyntheticCanary:
        """A gradient of norm 100 C through the optimizer's own clipping, before training."""
        c = self.claim.max_grad_norm
        gen = torch.Generator().manual_seed(self.settings.seed + 1)
        direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in self.params]
        total = math.sqrt(sum(float(d.pow(2).sum()) for d in direction))
        big = [
            (d * (CANARY_NORM * c / total)).to(p.dtype).to(p.device)
            for d, p in zip(direction, self.params, strict=True)
        ]
        try:
            if self.mode == "hooks":
                contribution = self._canary_hooks(big)
            elif self.mode == "ghost" and self.hooks is not None:
                contribution = self._canary_ghost(big)
            else:
                return SyntheticCanary(
                    verdict="not_run", canary_norm=CANARY_NORM * c, reason=f"mode {self.mode}"
                )
        except Exception as exc:  # the optimizer refused a well-formed gradient: say so
            return SyntheticCanary(
                verdict="rejected",
                canary_norm=CANARY_NORM * c,
                reason=f"the optimizer's clipping failed on a synthetic gradient: {exc}",
            )
        ok = contribution <= c * (1 + CLIP_TOLERANCE)
        return SyntheticCanary(
            verdict="pass" if ok else "rejected",
            canary_norm=CANARY_NORM * c,
            contribution_norm=contribution,
            reason=f"a gradient of norm {CANARY_NORM * c:.4g} left clipping with norm "
            f"{contribution:.4g} (bound {c:g})",
        )

    def _canary_hooks(self, big: list[torch.Tensor]) -> float:
        saved = [
            (getattr(p, "grad_sample", None), getattr(p, "summed_grad", None)) for p in self.params
        ]
        try:
            for p, g in zip(self.params, big, strict=True):
                setattr(p, "grad_sample", g.unsqueeze(0).clone())  # noqa: B010 (Opacus's slot)
                setattr(p, "summed_grad", None)  # noqa: B010
            self.opt.clip_and_accumulate()
            sq = math.fsum(
                float(getattr(p, "summed_grad").double().pow(2).sum())  # noqa: B009
                for p in self.params
            )
        finally:
            for p, (gs, sg) in zip(self.params, saved, strict=True):
                setattr(p, "grad_sample", gs)  # noqa: B010
                setattr(p, "summed_grad", sg)  # noqa: B010
        return math.sqrt(sq)

    def _canary_ghost(self, big: list[torch.Tensor]) -> float:
        hooks = self.hooks
        tps = list(hooks.trainable_parameters)
        saved = [getattr(p, "_norm_sample", None) for p in tps]
        norm = CANARY_NORM * self.claim.max_grad_norm
        each = norm / math.sqrt(len(tps))
        try:
            for p in tps:
                p._norm_sample = torch.tensor([each], device=p.device)
            coef = type(hooks).get_clipping_coef(hooks)
        finally:
            for p, old in zip(tps, saved, strict=True):
                p._norm_sample = old
            hooks.per_sample_gradient_norms = None
        return float(coef[0]) * norm

    # ---- judgement ------------------------------------------------------------------------------

    def evidence(self, *, steps: int, loop_seconds: float) -> MechanismEvidence:
        t0 = time.perf_counter()
        s = self.settings
        alpha = s.false_alarm_rate
        k = s.coordinates_per_tensor
        noise = noise_test(
            sumsq=self._sumsq.cpu().tolist(),
            sums=self._sum.cpu().tolist(),
            counts=[len(i) * self._observed for i in self.index],
            names=self.names,
            alpha=alpha,
            claimed_std=self.claim.noise_multiplier * self.claim.max_grad_norm,
            steps=self._observed,
            coordinates_per_tensor=k,
        )
        normalisation = self._normalisation()
        clipping = self._clipping()
        reasons = [
            f"{name}: {test.reason}"
            for name, test in (
                ("noise", noise),
                ("clipping", clipping),
                ("normalisation", normalisation),
            )
            if test.verdict != "pass"
        ]
        diff = float(self._update_diff)
        if diff > RELEASE_TOLERANCE and self.post_processing is None:
            reasons.append(
                f"update: the optimizer's update used a gradient other than the DP release "
                f"(max relative difference {diff:.3g}) and no post-processing is declared"
            )
        bound = self._bound()
        rejected = any(t.verdict == "rejected" for t in (noise, clipping, normalisation)) or (
            diff > RELEASE_TOLERANCE and self.post_processing is None
        )
        verdict: MechanismVerdict = (
            "rejected" if rejected else ("verified" if not reasons else "not_run")
        )
        judgement = time.perf_counter() - t0
        seconds = self._seconds
        return MechanismEvidence(
            ran=True,
            verdict=verdict,
            reasons=tuple(reasons),
            false_alarm_rate=alpha,
            claim=self.claim,
            clipping_mode=self.mode,
            steps=steps,
            noise=noise,
            clipping=clipping,
            normalisation=normalisation,
            bound=bound,
            cost=AuditCost(
                audit_seconds=seconds,
                judgement_seconds=judgement,
                loop_seconds=loop_seconds,
                fraction=seconds / (loop_seconds - seconds) if loop_seconds > seconds else None,
                steps=steps,
                steps_observed=self._observed,
            ),
            post_processing=self.post_processing,
        )

    def _normalisation(self) -> NormalisationTest:
        model = self.claim.expected_batch_size
        base: dict[str, Any] = {"model_divisor": model, "tolerance": RELEASE_TOLERANCE}
        if not self._divisors:
            return NormalisationTest(
                verdict="not_run", steps=0, reason="no step was observed", **base
            )
        d = torch.stack(self._divisors).double().cpu()
        err = float(torch.stack(self._release_err).max())
        lo, hi, first = float(d.min()), float(d.max()), float(d[0])
        base.update(
            applied_divisor=first if math.isfinite(first) else None,
            applied_min=lo if math.isfinite(lo) else None,
            applied_max=hi if math.isfinite(hi) else None,
            steps=len(self._divisors),
            max_release_error=err if math.isfinite(err) else None,
        )
        if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(err)):
            return NormalisationTest(
                verdict="rejected", reason="the released gradient was zero or not finite", **base
            )
        if err > RELEASE_TOLERANCE:
            return NormalisationTest(
                verdict="rejected",
                reason=f"the released gradient is not the noisy sum divided by one number "
                f"(max relative error {err:.3g} > {RELEASE_TOLERANCE:g})",
                **base,
            )
        if hi / lo - 1 > RELEASE_TOLERANCE:
            return NormalisationTest(
                verdict="rejected",
                reason=f"the divisor changed between steps ({lo:.6g} to {hi:.6g}): the "
                "normalisation depends on the batch, the accountant's model divides by a constant",
                **base,
            )
        accepted = {"model": model, "int": float(int(model))}
        match = next(
            (n for n, a in accepted.items() if a > 0 and abs(first / a - 1) <= RELEASE_TOLERANCE),
            None,
        )
        if match is None:
            return NormalisationTest(
                verdict="rejected",
                reason=f"the noisy sum was divided by {first:.6g}, the accountant's model divides "
                f"by the expected batch size {model:.6g}",
                **base,
            )
        truncated = match == "int" and abs(accepted["int"] / model - 1) > RELEASE_TOLERANCE
        return NormalisationTest(
            verdict="pass",
            truncated=truncated,
            step_scale=model / first,
            reason=f"divided by {first:.6g} at every observed step"
            + (
                f" (Opacus's int() of {model:.6g}; updates {model / first:.4f}x the model's)"
                if truncated
                else ""
            ),
            **base,
        )

    def _clipping(self) -> ClippingTest:
        c = self.claim.max_grad_norm
        canary = self.canary
        method = (
            "hooks: the clipped sum recomputed from the per-sample gradients with the claimed C "
            f"on every {self.settings.clip_every}th step; a synthetic gradient of norm "
            f"{CANARY_NORM:g} C through the optimizer's clip_and_accumulate before training"
            if self.mode == "hooks"
            else "ghost: Opacus's coefficient times each per-example norm at every step; a "
            f"synthetic per-example norm of {CANARY_NORM:g} C through the module's clipping "
            "coefficient before training (the second backward pass is not recomputed)"
        )
        base: dict[str, Any] = {
            "method": method,
            "bound": c,
            "steps": self._clip_steps,
            "examples": self._examples,
            "examples_above_bound": int(self._above),
            "tolerance": CLIP_TOLERANCE,
            "synthetic_canary": canary,
        }
        if self._examples:
            base.update(
                max_per_sample_norm=float(self._max_norm),
                max_contribution_norm=float(self._max_contrib),
            )
        if self.mode == "hooks" and self._clip_steps:
            base["max_sum_error"] = float(self._clip_err)
        problems = []
        if canary is None or canary.verdict == "rejected":
            problems.append(canary.reason if canary else "the synthetic canary did not run")
        if self._examples and float(self._max_contrib) > c * (1 + CLIP_TOLERANCE):
            problems.append(
                f"a contribution of norm {float(self._max_contrib):.4g} exceeds C={c:g}"
            )
        if self.mode == "hooks" and self._clip_steps and float(self._clip_err) > CLIP_TOLERANCE:
            problems.append(
                f"the clipped sum differs from clipping each example at C={c:g} by "
                f"{float(self._clip_err):.3g} C"
            )
        if problems:
            return ClippingTest(verdict="rejected", reason="; ".join(problems), **base)
        if not self._clip_steps:
            return ClippingTest(
                verdict="not_run", reason="no step's clipping was recomputed", **base
            )
        return ClippingTest(
            verdict="pass",
            reason=f"every contribution within C={c:g} on {self._clip_steps} steps "
            f"({int(self._above)} of {self._examples} examples were above C)",
            **base,
        )

    def _bound(self) -> OneRunBound | None:
        if not self._kept or self.claim.delta is None:
            return None
        z = torch.cat(self._kept)[: self.settings.bound_canaries].cpu().tolist()
        return one_run_bound(
            z,
            noise_multiplier=self.claim.noise_multiplier,
            delta=self.claim.delta,
            confidence=self.settings.bound_confidence,
            seed=self.settings.seed,
        )


# ---- statistics ---------------------------------------------------------------------------------


def _two_sided_chi2(stat: float, df: int) -> float:
    from scipy.stats import chi2

    return float(min(1.0, 2 * min(chi2.cdf(stat, df), chi2.sf(stat, df))))


def noise_test(
    *,
    sumsq: list[float],
    sums: list[float],
    counts: list[int],
    names: list[str],
    alpha: float,
    claimed_std: float,
    steps: int,
    coordinates_per_tensor: int,
) -> NoiseTest:
    """Observations in units of the claimed std: under the claim each is N(0, 1), independent.

    The false-alarm budget ``alpha`` is split (union bound): pooled variance alpha/2, per-tensor
    variance alpha/4 over the tensors (Bonferroni), mean alpha/4."""
    from scipy.stats import chi2, norm

    n = sum(counts)
    base: dict[str, Any] = {
        "claimed_std": claimed_std,
        "observations": n,
        "steps": steps,
        "tensors": len(counts),
        "coordinates_per_tensor": coordinates_per_tensor,
        "significance": alpha,
    }
    if n == 0:
        return NoiseTest(verdict="not_run", reason="no noise was observed", **base)
    stat = math.fsum(sumsq)
    p = _two_sided_chi2(stat, n)
    ratio = stat / n
    a = alpha / 2
    interval = Ratio(
        low=stat / float(chi2.ppf(1 - a / 2, n)), high=stat / float(chi2.ppf(a / 2, n))
    )
    mean_z = math.fsum(sums) / math.sqrt(n)
    mean_p = float(2 * norm.sf(abs(mean_z)))
    per = [
        (_two_sided_chi2(sq, c), sq / c, name)
        for sq, c, name in zip(sumsq, counts, names, strict=True)
        if c
    ]
    worst_p, worst_ratio, worst = min(per)
    base.update(
        variance_ratio=ratio,
        variance_ratio_interval=interval,
        chi_square=stat,
        p_value=p,
        mean_z=mean_z,
        mean_p_value=mean_p,
        worst_tensor=worst,
        worst_tensor_variance_ratio=worst_ratio,
        worst_tensor_p_value=worst_p,
    )
    problems = []
    if p < alpha / 2:
        side = "smaller" if ratio < 1 else "larger"
        problems.append(
            f"the noise variance is {ratio:.4g}x the claimed (sigma C = {claimed_std:.4g}): "
            f"{side} than claimed (p={p:.3g} < {alpha / 2:g})"
        )
    if worst_p < alpha / 4 / len(per):
        problems.append(
            f"tensor {worst}: noise variance {worst_ratio:.4g}x the claimed (p={worst_p:.3g})"
        )
    if mean_p < alpha / 4:
        problems.append(f"the noise has a non-zero mean (z={mean_z:.3g}, p={mean_p:.3g})")
    if problems:
        return NoiseTest(verdict="rejected", reason="; ".join(problems), **base)
    return NoiseTest(
        verdict="pass",
        reason=f"noise variance {ratio:.4f}x the claimed over {n} observations (p={p:.3g})",
        **base,
    )


def gaussian_step_epsilon(noise_multiplier: float, delta: float) -> float:
    """Epsilon of one Gaussian mechanism (sensitivity 1, std sigma) at delta: the analytic
    Gaussian (Balle and Wang 2018), delta(eps) = Phi(1/(2s) - eps s) - e^eps Phi(-1/(2s) - eps s)."""
    from scipy.stats import norm

    s = noise_multiplier

    def dlt(eps: float) -> float:
        return float(norm.cdf(0.5 / s - eps * s) - math.exp(eps + norm.logcdf(-0.5 / s - eps * s)))

    if dlt(0.0) <= delta:
        return 0.0
    lo, hi = 0.0, 1.0
    while dlt(hi) > delta:
        lo, hi = hi, hi * 2
        if hi > 1e4:
            return math.inf
    for _ in range(100):
        mid = (lo + hi) / 2
        if dlt(mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def one_run_bound(
    z: list[float],
    *,
    noise_multiplier: float,
    delta: float,
    confidence: float = 0.95,
    seed: int = 0,
    fractions: tuple[float, ...] = (0.01, 0.05, 0.2),
) -> OneRunBound:
    """Virtual Dirac canaries: score_j = z_j + b_j / sigma (units of the claimed std; a canary adds
    C to its coordinate), b_j a fair coin; guess IN for the top ``f m``, Bonferroni over ``f``."""
    import random

    from finetrail.governance.probes.audit_math import epsilon_lower_bound

    rng = random.Random(seed)
    coins = [rng.random() < 0.5 for _ in z]
    scores = [v + (1.0 / noise_multiplier if b else 0.0) for v, b in zip(z, coins, strict=True)]
    order = sorted(range(len(z)), key=lambda i: scores[i], reverse=True)
    m = len(z)
    level = (1 - confidence) / len(fractions)
    best: tuple[float, int, int] = (0.0, 0, 0)
    ceiling = 0.0
    for f in fractions:
        r = max(1, round(f * m))
        v = sum(coins[i] for i in order[:r])
        best = max(best, (epsilon_lower_bound(m=m, r=r, v=v, delta=delta, level=level), r, v))
        ceiling = max(ceiling, epsilon_lower_bound(m=m, r=r, v=r, delta=delta, level=level))
    eps, r, v = best
    step_eps = gaussian_step_epsilon(noise_multiplier, delta)
    verdict: Literal["consistent", "contradicted", "inconclusive"] = (
        "contradicted"
        if eps > step_eps
        else ("inconclusive" if ceiling < step_eps else "consistent")
    )
    return OneRunBound(
        canaries=m,
        guesses=r,
        correct=v,
        epsilon_lower_bound=eps,
        ceiling=ceiling,
        claimed_step_epsilon=step_eps,
        delta=delta,
        confidence=confidence,
        verdict=verdict,
    )


def write_mechanism_evidence(workspace: Any, record: MechanismEvidence, *, actor: str) -> None:
    """Write ``evidence/mechanism.json`` through the workspace (ledger event ``mechanism.audited``)."""
    from finetrail.governance.evidence.registry import location

    workspace.write_record(
        location("mechanism"),
        record,
        event="mechanism.audited",
        actor=actor,
        extra={"verdict": record.verdict, "steps": record.steps},
    )
