"""The demo's summary table, read from each workspace through the one evidence reader."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from finetrail.governance.evidence.store import EvidenceSet
from finetrail.textsafe import neutralise

if TYPE_CHECKING:
    from finetrail.demo.pipeline import DemoResult, Variant

# the policy's rules on the white-box mechanism audit (policies/eu-ai-act-high-risk.yaml)
MECHANISM_RULES = ("dp-mechanism-verified", "dp-mechanism-not-rejected")


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def collect(variant: Variant, gate_code: int, verify_code: int) -> None:
    """Fill ``variant.results`` from its workspace's evidence (read through the one reader)."""
    from finetrail.reports.release import degenerate_model

    ws = variant.workspace
    ev = EvidenceSet(ws)
    training = ev.json("training") or {}
    exposure = ev.json("probes.exposure") or {}
    extraction = ev.json("probes.extraction") or {}
    membership = ev.json("probes.membership") or {}
    audit = ev.json("probes.dp_audit") or {}
    mechanism = ev.json("mechanism") or {}
    bias = ev.json("bias") or {}
    gates = [g.data for g in ev.records("gate") if g.data is not None]
    last = gates[-1] if gates else {}
    blocking = [
        str(o.get("rule"))
        for o in last.get("outcomes") or []
        if o.get("outcome") in ("fail", "error") and o.get("severity") == "error"
    ]
    failed_mechanism = [
        f"{o.get('rule')}: {o.get('message')}"
        for o in last.get("outcomes") or []
        if o.get("rule") in MECHANISM_RULES and o.get("outcome") in ("fail", "error")
    ]
    reps = exposure.get("by_repetition") or {}
    top = max(reps, key=lambda k: int(k), default=None) if reps else None
    variant.results = {
        "epsilon": _get(training, "dp.epsilon"),
        "val_loss": (training.get("val_loss") or [None])[-1],
        "steps": _get(training, "dp.steps") or _get(training, "compute.steps"),
        "exposure_top_rep": (top, _get(reps.get(top, {}), "mean_bits")) if top else None,
        "max_exposure": exposure.get("max_bits"),
        "memorized": extraction.get("memorized_identifiers"),
        "mia_auc": membership.get("max_auc"),
        "empirical_eps": audit.get("empirical_epsilon_lower_bound"),
        "audit_ceiling": audit.get("ceiling"),
        "audit_single_copy": audit.get("single_copy_canaries"),
        "empirical_eps_shown": _bound_with_ceiling(audit),
        "audit_verdict": audit.get("verdict"),
        "mechanism": mechanism.get("verdict"),
        "mechanism_reasons": list(mechanism.get("reasons") or []),
        "gate_mechanism_failed": failed_mechanism,
        "planted_bug": variant.planted_bug,
        # a model that answers everyone alike has no fairness figure worth showing
        "dp_diff": "constant model: not evidence"
        if degenerate_model(bias or None)
        else _get(bias, "disparities.demographic_parity_difference"),
        "task_f1": _get(bias, "task.f1"),
        "gate": {0: "PASS", 1: "FAIL"}.get(gate_code, f"ERROR({gate_code})"),
        "gate_why": (
            ", ".join(blocking[:3]) + (f" +{len(blocking) - 3}" if len(blocking) > 3 else "")
        )
        if blocking
        else None,
        "verify": "OK" if verify_code == 0 else "FAILED",
        "dossier": str(ws / "dossier" / "index.html"),
        "mlflow_db": str(ws / "mlflow.db"),
    }


def _bound_with_ceiling(audit: dict[str, Any]) -> str | None:
    """The black-box bound beside the largest one its canary design could report."""
    bound, ceiling = audit.get("empirical_epsilon_lower_bound"), audit.get("ceiling")
    if not isinstance(bound, (int, float)):
        return None
    if not isinstance(ceiling, (int, float)):
        return f"{bound:.3f} (ceiling not recorded)"
    single = audit.get("single_copy_canaries")
    of = f", {single} single-copy canaries" if isinstance(single, int) else ""
    return f"{bound:.3f} (ceiling {ceiling:.2f}{of})"


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    if isinstance(v, dict) and "value" in v:
        lo, hi = v.get("ci_low"), v.get("ci_high")
        ci = f" [{lo:.2f}, {hi:.2f}]" if isinstance(lo, float) and isinstance(hi, float) else ""
        return f"{_fmt(v['value'])}{ci}"
    if isinstance(v, tuple):
        return f"{_fmt(v[1], 1)} bits ({v[0]}x)"
    return str(v)


def summary_table(variants: Sequence[Variant]) -> str:
    rows = [
        ("DP guarantee (epsilon, PRV; delta 1e-5)", "epsilon"),
        ("validation loss (last)", "val_loss"),
        ("canary exposure, most repeated group", "exposure_top_rep"),
        ("max canary exposure (bits)", "max_exposure"),
        ("memorised identifiers (fine-tune only)", "memorized"),
        ("membership inference AUC (best attack)", "mia_auc"),
        ("empirical epsilon lower bound (95%)", "empirical_eps_shown"),
        ("DP audit verdict (black-box)", "audit_verdict"),
        ("DP mechanism audit (white-box)", "mechanism"),
        ("demographic parity difference [95% CI]", "dp_diff"),
        ("task F1", "task_f1"),
        ("gate (eu-ai-act-high-risk)", "gate"),
        ("gate failed on (error rules)", "gate_why"),
        ("verify", "verify"),
    ]
    names = [v.name for v in variants]
    width = max(len(r[0]) for r in rows)
    cols = [max(24, *(len(_fmt(v.results.get(k))) for _, k in rows)) for v in variants]
    line = f"{'':{width}}  " + "  ".join(f"{n:{c}}" for n, c in zip(names, cols, strict=True))
    out = [line, "-" * len(line)]
    for label, key in rows:
        vals = [_fmt(v.results.get(key)) for v in variants]
        out.append(
            f"{label:{width}}  " + "  ".join(f"{x:{c}}" for x, c in zip(vals, cols, strict=True))
        )
    return "\n".join(out)


def print_summary(result: DemoResult, echo: Callable[[str], None]) -> None:
    released = [v for v in result.variants if not v.results.get("refused_at_training")]
    echo("")
    echo(summary_table(released))
    echo("")
    for v in released:
        echo(f"{v.name}: {v.results['dossier']}")
    echo(f"diff: {result.diff_path}")
    for v in result.variants:
        if v.planted_bug is not None:
            echo("")
            echo(planted_bug_verdict(v))
    echo("")
    echo("Open the MLflow runs (one SQLite store per workspace):")
    for v in released:
        echo(f"  mlflow ui --backend-store-uri sqlite:///{v.results['mlflow_db']} --port 5000")
    echo(f"demo finished in {result.seconds:.0f} s")


def planted_bug_verdict(variant: Variant) -> str:
    """What the gate did with the release trained with a planted mechanism bug, said plainly."""
    r = variant.results
    bug = variant.planted_bug
    if r.get("refused_at_training"):
        return (
            f"planted bug {bug}: finetrail's checks while training refused the broken release "
            f"(exit {r['refused_at_training']}, the error above), so it never reached the gate"
        )
    eps = r.get("epsilon")
    claim = f"epsilon {eps:.2f}" if isinstance(eps, float) else "no epsilon"
    mech = r.get("mechanism") or "not recorded"
    reasons = "; ".join(neutralise(str(x)) for x in r.get("mechanism_reasons") or [])
    failed = [neutralise(str(x)) for x in r.get("gate_mechanism_failed") or []]
    head = (
        f"planted bug {bug}: the release states {claim} like the honest one; its mechanism "
        f"audit: {mech}" + (f" ({reasons})" if reasons else "")
    )
    if r.get("gate") == "FAIL" and failed:
        return f"{head}.\nthe broken release was refused by the gate: " + "; ".join(failed)
    if r.get("gate") == "FAIL":
        return (
            f"{head}.\nthe broken release was refused by the gate, but not on the mechanism "
            f"rules ({', '.join(MECHANISM_RULES)} passed): {r.get('gate_why') or '-'}"
        )
    return f"{head}.\nthe broken release was NOT refused by the gate (gate {r.get('gate')})"
