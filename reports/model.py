"""The report model: what every pack renders, derived from :class:`~finetrail.reports.loader.Evidence`.

Statements are measured facts with their method ("epsilon=1.0 (PRV accountant), delta=1e-05"),
never promises: no template calls a model private or fair.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from finetrail.governance import clock
from finetrail.reports import annex_iv, nist
from finetrail.reports.charts_fairness import NO_CHANGE
from finetrail.reports.coverage import Coverage, coverage_json, evaluate
from finetrail.reports.loader import Evidence, base_model_label, get, num
from finetrail.reports.release import Release, build_release, gate_view


def fmt(value: Any, digits: int = 4) -> str:
    """A number as text with ``digits`` significant digits; None as "n/a"."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def fair(value: Any, digits: int = 3) -> str:
    """A fairness figure for people: ``digits`` significant digits, and a magnitude below
    :data:`~finetrail.reports.charts_fairness.NO_CHANGE` (floating-point noise such as 1e-16)
    as 0. The evidence keeps the exact value."""
    v = num(value)
    if v is None:
        return fmt(value)
    if abs(v) < NO_CHANGE:
        return "0"
    return f"{v:.{digits}g}"


def fair_value(value: Any, metric: str) -> str:
    """A disparity's value: a difference of (numerically) zero reads "0 (no difference)"."""
    v = num(value)
    if v is not None and abs(v) < NO_CHANGE and metric.endswith("_difference"):
        return "0 (no difference)"
    return fair(value)


def fair_effect(effect: Any) -> str:
    """The fine-tune's effect on a disparity with its interval; "no change" when the change and
    both bounds are below NO_CHANGE (as the chart says), "n/a" when not measured."""
    if not isinstance(effect, dict) or num(effect.get("delta")) is None:
        return "n/a"
    bounds = [num(effect.get("ci_low")), num(effect.get("ci_high"))]
    delta = num(effect.get("delta"))
    assert delta is not None
    if abs(delta) < NO_CHANGE and all(b is None or abs(b) < NO_CHANGE for b in bounds):
        return "no change"
    return f"{fair(delta)} ({fair(bounds[0])} to {fair(bounds[1])})"


def audit_reach(dp_audit: dict[str, Any]) -> str:
    """What the one-run audit could have shown: its ceiling and the canaries it used."""
    single = dp_audit.get("single_copy_canaries")
    used = f"{fmt(single)} single-copy of " if single is not None else ""
    return (
        f"ceiling {fmt(num(dp_audit.get('ceiling')))} with {used}"
        f"{fmt(dp_audit.get('canaries'))} canaries"
    )


def blind_baseline_text(mia: dict[str, Any]) -> str:
    """The model-blind classifier's AUC that every attack's AUC is read against, or its absence."""
    auc = num(get(mia, "blind_baseline.result.auc"))
    if auc is None:
        return "blind baseline not recorded (re-run `finetrail probe --only mia`)"
    low, high = (
        num(get(mia, "blind_baseline.result.auc_ci.low")),
        num(get(mia, "blind_baseline.result.auc_ci.high")),
    )
    return f"blind baseline AUC {fmt(auc)} [{fmt(low)}, {fmt(high)}], the model never queried"


def dp_statement(training: dict[str, Any] | None, dp_audit: dict[str, Any] | None) -> str:
    """The DP guarantee as measured facts (the one sentence every pack uses)."""
    if training is None:
        return (
            "Needs input: no training evidence, so no differential-privacy statement can be made."
        )
    dp = get(training, "dp") or {}
    if not dp.get("enabled"):
        text = "Trained without differential privacy: no (epsilon, delta) guarantee is claimed."
    else:
        text = (
            f"Trained with DP-SGD: epsilon={fmt(num(dp.get('epsilon')))} "
            f"({dp.get('accountant') or 'accountant not recorded'} accountant), "
            f"delta={fmt(num(dp.get('delta')))}"
        )
        if num(dp.get("epsilon_rdp")) is not None:
            text += f"; RDP epsilon={fmt(num(dp.get('epsilon_rdp')))}"
        text += (
            f"; noise multiplier {fmt(num(dp.get('noise_multiplier')))}, sampling rate "
            f"{fmt(num(dp.get('sample_rate')))}, {fmt(dp.get('steps'))} steps, clipping norm "
            f"{fmt(num(dp.get('max_grad_norm')))}"
            + (f" ({dp.get('clipping_mode')} clipping)" if dp.get("clipping_mode") else "")
            + "."
        )
        source = dp.get("randomness_source")
        text += {
            "os": " Noise from OS-seeded generators (not Opacus's secure_mode CSPRNG).",
            "seeded": " Noise seeded from the config (a research run: the noise can be "
            "recomputed by anyone holding the config, so this guarantee is not a release's).",
            "secure": " Noise from Opacus's secure_mode CSPRNG.",
        }.get(str(source), " Noise source not recorded (`finetrail train` records it).")
    if dp_audit is not None:
        lb = num(dp_audit.get("empirical_epsilon_lower_bound"))
        conf = num(dp_audit.get("confidence"))
        text += (
            f" Empirical audit (one-run lower bound): epsilon >= {fmt(lb)}"
            + (f" at {fmt(conf)} confidence" if conf is not None else "")
            + f" ({audit_reach(dp_audit)})"
            + f"; verdict: {dp_audit.get('verdict', 'n/a')}."
        )
    return text


@dataclass(frozen=True)
class Verdict:
    status: str  # "passed", "blocked", "stale", "not gated", "integrity failed"
    headline: str
    css: str  # "ok" only when the gate passed with no warning and the sign-off is not missing
    warnings: tuple[dict[str, Any], ...] = ()  # non-blocking rules that did not pass
    # approvals required / present / missing, as the latest gate counted them
    signoff_state: str = "unknown"  # complete, missing, not required, unknown
    signoff_detail: str = "no gate decision recorded"
    signoff_css: str = "warn"

    @property
    def signoff(self) -> str:
        return f"sign-off {self.signoff_state}: {self.signoff_detail}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def gate_warnings(gate: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules of ``gate`` that did not pass but do not block (severity ``warning``)."""
    return [r for r in gate_rules(gate) if r["passed"] is not True and r["severity"] == "warning"]


def signoff(ev: Evidence) -> tuple[str, str, str]:
    """The sign-off status of the latest gate decision as (state, detail, css): whether its policy
    requires approvals, the approvals the gate counted from the review evidence, and what is
    missing. ``state`` is ``complete``, ``missing``, ``not required`` or ``unknown``."""
    if not ev.gates:
        return "unknown", "no gate decision recorded", "warn"
    state = ev.gates[-1].get("approvals")
    now = f"{_plural(ev.approvals, 'current approval')} in the review evidence"
    if not isinstance(state, dict) or not isinstance(state.get("required"), bool):
        return "unknown", f"the gate decision does not record its approvals ({now})", "warn"
    if not state["required"]:
        return "not required", f"the policy asks for no approvals ({now})", "ok"
    approvers = [str(a) for a in state.get("approvers") or []]
    rule = next((r for r in gate_rules(ev.gates[-1]) if r["id"] == "approvals"), None)
    wanted = re.match(r"(\d+) current signed approval", str(rule["title"])) if rule else None
    detail = f"{len(approvers)} present" + (f" ({', '.join(approvers)})" if approvers else "")
    if wanted:
        need = int(wanted.group(1))
        detail = f"{need} required, {detail}, {max(0, need - len(approvers))} missing"
    else:
        detail = f"required (count not recorded in the decision), {detail}"
    if state.get("satisfied") is True:
        return "complete", detail, "ok"
    problems = [str(p) for p in state.get("problems") or []]
    return "missing", detail + (f"; {'; '.join(problems)}" if problems else ""), "bad"


def verdict(ev: Evidence) -> Verdict:
    sign_state, sign, sign_css = signoff(ev)
    if not ev.integrity.ok:
        n = sum(1 for f in ev.integrity.findings if f["severity"] == "error")
        return Verdict(
            "integrity failed",
            f"Integrity check failed ({n} problem{'s' * (n != 1)}): the evidence below "
            "cannot be relied on until verify passes.",
            "bad",
            (),
            sign_state,
            sign,
            sign_css,
        )
    if not ev.gates:
        return Verdict(
            "not gated",
            "Needs input: no gate decision has been recorded (run `finetrail gate`).",
            "warn",
        )
    last = ev.gates[-1]
    policy = f"policy {last.get('policy_id', 'n/a')}"
    warnings = tuple(gate_warnings(last))
    current = gate_view(ev)
    if not current.current:
        was = "passed" if last.get("passed") is True else "failed"
        return Verdict(
            "stale",
            f"The last gate decision ({policy}, {was}) no longer describes the evidence "
            f"({current.stale_reason}): run `finetrail gate` again.",
            "bad",
            warnings,
            sign_state,
            sign,
            sign_css,
        )
    if last.get("passed") is True:
        if warnings:
            return Verdict(
                "passed",
                f"The release gate passed with {_plural(len(warnings), 'warning')} ({policy}; "
                f"not passed: {', '.join(str(w['id']) for w in warnings)}).",
                "warn",
                warnings,
                sign_state,
                sign,
                sign_css,
            )
        css = "ok" if sign_css == "ok" else "warn"
        return Verdict(
            "passed",
            f"The release gate passed ({policy}).",
            css,
            warnings,
            sign_state,
            sign,
            sign_css,
        )
    failed = [
        str(r["id"])
        for r in gate_rules(last)
        if r["passed"] is not True and r["severity"] != "warning"
    ]
    why = f"; failed rules: {', '.join(failed)}" if failed else ""
    also = f", and {_plural(len(warnings), 'warning')}" if warnings else ""
    return Verdict(
        "blocked",
        f"The release gate failed ({policy}{why}{also}): release blocked.",
        "bad",
        warnings,
        sign_state,
        sign,
        sign_css,
    )


def gate_rules(gate: dict[str, Any]) -> list[dict[str, Any]]:
    """Rule results of a gate decision, whatever the list is called (tolerant of the schema).

    A ``GateDecision`` lists ``outcomes`` (``rule``, ``outcome``, ``measured``...): a rule passed
    when its outcome is ``pass`` or ``waived``; its value is the one measured value (or the list).
    """
    outcomes = gate.get("outcomes")
    if isinstance(outcomes, list):
        out = []
        for o in outcomes:
            if not isinstance(o, dict):
                continue
            measured = [m.get("value") for m in o.get("measured") or [] if isinstance(m, dict)]
            outcome = o.get("outcome")
            out.append(
                {
                    "id": o.get("rule") or "",
                    "passed": outcome in ("pass", "waived") if isinstance(outcome, str) else None,
                    "path": o.get("path") or "",
                    "value": measured[0] if len(measured) == 1 else (measured or None),
                    "message": o.get("message") or "",
                    "title": o.get("title") or "",
                    "severity": o.get("severity") or "not recorded",
                    "outcome": outcome if isinstance(outcome, str) else "not recorded",
                    "op": o.get("op"),
                    "threshold": o.get("threshold"),
                }
            )
        return out
    for key in ("results", "rules", "checks", "findings"):
        items = gate.get(key)
        if isinstance(items, list):
            out = []
            for it in items:
                if not isinstance(it, dict):
                    continue
                passed = it.get("passed", it.get("ok"))
                out.append(
                    {
                        "id": it.get("id") or it.get("rule") or it.get("name") or "",
                        "passed": passed if isinstance(passed, bool) else None,
                        "path": it.get("path", ""),
                        "value": it.get("value", it.get("actual")),
                        "message": it.get("message") or it.get("why") or it.get("reason") or "",
                        "title": it.get("title") or "",
                        "severity": it.get("severity") or "not recorded",
                        "outcome": "pass"
                        if passed is True
                        else "fail"
                        if passed is False
                        else "not recorded",
                        "op": it.get("op"),
                        "threshold": it.get("threshold"),
                    }
                )
            return out
    return []


def rules_worst_first(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocking failures first, then warnings, then rules without a result, then the rest (each
    group in the policy's order)."""

    def rank(r: dict[str, Any]) -> int:
        if r["passed"] is False:
            return 1 if r["severity"] == "warning" else 0
        return 2 if r["passed"] is None else 3

    return sorted(rules, key=rank)


def review_view(r: dict[str, Any]) -> dict[str, Any]:
    """A review as the dossier shows it; its state is the gate's (``review_status``)."""
    return {
        **r,
        "signer": r.get("signer") or "",
        # an approval counts only while it is current and valid, exactly as the gate counts it
        "approval": r["decision"] == "approve" and r["state"] == "current",
    }


def losses(points: Any) -> list[float | None]:
    """Loss values of ``training.val_loss``: ``[{step, loss}]`` points (or bare numbers)."""
    if not isinstance(points, list):
        return []
    return [num(p.get("loss")) if isinstance(p, dict) else num(p) for p in points]


def dataset_roles(release: Release) -> dict[str, str]:
    """sha256 -> the dataset's part in this release, in words (``train``, ``validation``,
    ``eval``, ``ancestor of the training data``, or registered but not used)."""
    return {d.sha256: d.role_text for d in release.datasets}


def summaries(ev: Evidence) -> dict[str, str]:
    """One line per evidence kind (and some fields) saying what the evidence states."""
    out: dict[str, str] = {
        "workspace": f"{ev.workspace.get('model')} {ev.workspace.get('version')}"
    }
    out["ledger"] = f"{ev.integrity.entries} ledger events, hash-chained"
    for d in ev.datasets:
        out[f"datasets:{d.get('sha256')}"] = (
            f"{d.get('name')} ({fmt(d.get('records'))} records, "
            f"licence {d.get('license') or 'n/a'})"
        )
        pii = d.get("pii")
        if isinstance(pii, dict):  # the scan in one line (not its engine and examples)
            counts = pii.get("counts") or {}
            residual = pii.get("residual")
            out[f"datasets:{d.get('sha256')}.pii"] = (
                f"{d.get('name')}: PII in {fmt(pii.get('records_with_pii'))} of "
                f"{fmt(pii.get('records_scanned'))} records scanned"
                + (
                    "; " + ", ".join(f"{k} {fmt(v)}" for k, v in sorted(counts.items()))
                    if isinstance(counts, dict) and counts
                    else ""
                )
                + (
                    "; residual " + ", ".join(f"{k} {fmt(v)}" for k, v in sorted(residual.items()))
                    if isinstance(residual, dict)
                    else ""
                )
            )
    t = ev.training
    if t is not None:
        out["training"] = (
            f"method {t.get('method')}, {fmt(t.get('trainable_parameters'))} trainable "
            f"parameters, completed={fmt(t.get('completed'))}"
        )
        out["training.dp"] = dp_statement(t, ev.probes.get("dp_audit"))
        out["training.compute"] = (
            f"{fmt(num(get(t, 'compute.flops')))} FLOP, "
            f"{fmt(num(get(t, 'compute.wall_seconds')))} s on "
            f"{get(t, 'compute.device') or 'n/a'}"
        )
        for key in ("compute.flops", "compute.device", "compute.wall_seconds"):
            out["training." + key] = out["training.compute"]
        bm = get(t, "base_model.weights_sha256")
        out["training.base_model"] = (
            f"{base_model_label(t)}, weights sha256 {str(bm)[:16]}..." if bm else ""
        )
        out["training.base_model.weights_sha256"] = out["training.base_model"]
        out["training.method"] = out["training"]
        vl = losses(get(t, "val_loss"))
        if vl:
            out["training.val_loss"] = f"validation loss {fmt(vl[0])} -> {fmt(vl[-1])}"
        ea = annex_iv.compute_test(ev)
        out["training.eu_ai_act.modification_threshold_flops"] = ea.statement
    exp = ev.probes.get("exposure")
    if exp is not None:
        out["probes.exposure"] = (
            f"canary exposure max {fmt(num(exp.get('max_bits')))} of "
            f"{fmt(num(exp.get('space_bits')))} bits"
        )
    ext = ev.probes.get("extraction")
    if ext is not None:
        mem = ext.get("memorized_identifiers")
        n = len(mem) if isinstance(mem, list) else mem
        out["probes.extraction"] = (
            f"{fmt(n)} identifiers extracted (attributed to the fine-tune), "
            f"rate {fmt(num(ext.get('memorized_rate')))}"
        )
    mia = ev.probes.get("membership")
    if mia is not None:
        ex = get(mia, "exchangeability.ok")
        if ex is True:
            caveat = "held-out set comparable"
        elif ex is False:
            caveat = "not a memorisation measure: held-out set differs from the training data"
        else:
            caveat = "held-out set not checked"
        out["probes.membership"] = (
            f"membership inference max AUC {fmt(num(mia.get('max_auc')))} ({caveat}; "
            f"{blind_baseline_text(mia)})"
        )
    aud = ev.probes.get("dp_audit")
    if aud is not None:
        out["probes.dp_audit"] = (
            f"empirical epsilon lower bound "
            f"{fmt(num(aud.get('empirical_epsilon_lower_bound')))} ({audit_reach(aud)}), "
            f"verdict {aud.get('verdict')}"
        )
    b = ev.bias
    if b is not None:
        out["bias"] = (
            f"task accuracy {fmt(num(get(b, 'task.accuracy')))}; demographic parity difference "
            + fair_value(
                num(get(b, "disparities.demographic_parity_difference.value")),
                "demographic_parity_difference",
            )
        )
    if ev.gates:
        g = ev.gates[-1]
        n_warn = len(gate_warnings(g))
        out["gate"] = (
            f"gate {'passed' if g.get('passed') is True else 'failed'}"
            + (f" with {_plural(n_warn, 'warning')}" if n_warn else "")
            + f" ({g.get('policy_id')}); sign-off {': '.join(signoff(ev)[:2])}"
            + ("" if gate_view(ev).current else "; stale: the evidence changed since")
        )
    if ev.reviews:
        views = [review_view(r) for r in ev.reviews]
        stale = sum(1 for v in views if v["decision"] == "approve" and v["state"] == "stale")
        invalid = sum(1 for v in views if v["state"] == "invalid")
        out["reviews"] = (
            f"{len(views)} review event(s), {ev.approvals} current approval(s)"
            + (f", {stale} stale" if stale else "")
            + (f", {invalid} invalid" if invalid else "")
        )
    return out


@dataclass(frozen=True)
class ReportModel:
    ev: Evidence
    generated: str
    verdict: Verdict
    dp_statement: str
    compute_test: annex_iv.ComputeTest
    content_summary: dict[str, Any]
    coverages: tuple[Coverage, ...]
    reviews: tuple[dict[str, Any], ...]
    approvals: int
    gates: tuple[dict[str, Any], ...]
    dataset_roles: dict[str, str]
    release: Release
    text_version_note: str
    regulation: str
    amendment: str

    def coverage(self, key: str) -> Coverage:
        for c in self.coverages:
            if c.key == key:
                return c
        raise KeyError(key)

    def coverage_json(self) -> dict[str, Any]:
        return coverage_json(
            list(self.coverages),
            generated=self.generated,
            manifest_digest=self.ev.manifest_digest,
            workspace=self.ev.workspace,
        )

    def dataset_name(self, sha: str) -> str:
        return self.release.name(sha)


def build_model(ev: Evidence, *, generated: str | None = None) -> ReportModel:
    """The report model of ``ev``; ``generated`` (ISO time) re-renders an earlier report."""
    sums = summaries(ev)
    sets = [
        annex_iv.annex_iv_set(),
        annex_iv.ARTICLE_10,
        annex_iv.GPAI,
        nist.rmf_set(),
        nist.gai_set(),
    ]
    reviews = tuple(review_view(r) for r in ev.reviews)
    gates = tuple({**g, "rules": rules_worst_first(gate_rules(g))} for g in ev.gates)
    release = build_release(ev)
    roles = dataset_roles(release)
    return ReportModel(
        ev=ev,
        generated=generated or clock.now().isoformat(),
        verdict=verdict(ev),
        dp_statement=dp_statement(ev.training, ev.probes.get("dp_audit")),
        compute_test=annex_iv.compute_test(ev),
        content_summary=annex_iv.training_content_summary(ev),
        coverages=tuple(evaluate(ev, rs, sums) for rs in sets),
        reviews=reviews,
        approvals=ev.approvals,
        gates=gates,
        dataset_roles=roles,
        release=release,
        text_version_note=annex_iv.TEXT_VERSION_NOTE,
        regulation=annex_iv.REGULATION,
        amendment=annex_iv.AMENDMENT,
    )
