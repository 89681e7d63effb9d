"""Evaluating a policy against a workspace: every rule, every outcome, failing closed.

:func:`evaluate` reads; it writes nothing (``gate_run`` records, attests and tags). Outcomes:

- ``workspace-integrity``: ``verify`` must accept the workspace, else the gate fails;
- ``trust-root``: signatures were checked against a trust root outside the workspace; without
  one it fails, blocking for a policy that asks for signed approvals (the shipped release packs),
  a warning otherwise;
- ``evidence.<kind>``: each kind the policy requires is present, readable, untampered, current;
- one outcome per rule: ``pass``, ``fail``, ``waived`` or ``error`` with the measured values,
  the threshold or reference values, the evidence files and their digests, and the controls;
- ``approvals``: the policy's four-eyes requirement (blocking only with ``require_approvals``).

Fail closed: a path that resolves to nothing, a null where a number is needed, an unreadable
record (``error``), a record whose digest no longer matches the manifest (``tampered``), or one
computed from another adapter than ``training.adapter.sha256`` (``stale``) fails its rule.
Waivers apply to threshold and missing-evidence failures only, and only until they expire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetrail.errors import FinetrailError
from finetrail.governance import clock
from finetrail.governance.evidence import paths as evpaths
from finetrail.governance.evidence import registry
from finetrail.governance.evidence.base import EvidenceRecord
from finetrail.governance.evidence.dataset import TrainingDataset, TrainingDataSummary
from finetrail.governance.evidence.gate import (
    AppliedWaiver,
    ApprovalState,
    EvidenceDigest,
    GateDecision,
    GateSubject,
    Integrity,
    MeasuredValue,
    ReleaseBinding,
    RuleOutcome,
    Signer,
)
from finetrail.governance.evidence.store import EvidenceSet, LoadedRecord
from finetrail.governance.evidence.workspace import Manifest, WorkspaceMetadata
from finetrail.governance.io import sha256_file
from finetrail.governance.ledger import LEDGER_NAME
from finetrail.governance.policy.load import LoadedPolicy
from finetrail.governance.policy.operators import OPERATORS, compare, fmt
from finetrail.governance.policy.rules import Rule, Waiver
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import MANIFEST_FILE, TRACKED_DIRS, WORKSPACE_FILE

if TYPE_CHECKING:
    from finetrail.governance.trust import TrustRoot

WAIVABLE = ("threshold", "null", "missing")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_SHOWN = 50


def _manifest(root: Path) -> Manifest | None:
    try:
        return Manifest.read(root / MANIFEST_FILE)
    except FinetrailError:
        return None


def _metadata(root: Path) -> WorkspaceMetadata | None:
    try:
        return WorkspaceMetadata.read(root / WORKSPACE_FILE)
    except FinetrailError:
        return None


def _controls(c: Any) -> dict[str, tuple[str, ...]]:
    return {
        k: v
        for k, v in (
            ("eu_ai_act", c.eu_ai_act),
            ("nist_ai_rmf", c.nist_ai_rmf),
            ("iso_iec_42001", c.iso_iec_42001),
        )
        if v
    }


class _Context:
    def __init__(self, ev: EvidenceSet, manifest: Manifest | None):
        self.ev = ev
        self.manifest = manifest
        self.read: dict[str, str | None] = {}
        training = registry.kind_by_name("training")
        self.adapter_sha: str | None = None
        self.adapter_path: str | None = None
        if training is not None:
            recs = ev.records("training")
            if recs and recs[0].data is not None:
                adapter = recs[0].data.get("adapter") or {}
                if isinstance(adapter, dict):
                    sha = adapter.get("sha256")
                    self.adapter_sha = sha if isinstance(sha, str) and _SHA256.match(sha) else None
                    path = adapter.get("path")
                    self.adapter_path = path if isinstance(path, str) else None

    def integrity_problems(self, records: Iterable[LoadedRecord]) -> tuple[str, list[str]]:
        """('', []) when every record is tracked, untampered and current; else (reason, why)."""
        tampered, stale = [], []
        for r in records:
            if r.rel:
                self.read[r.rel] = r.sha256
            if r.rel.split("/")[0] in TRACKED_DIRS:
                entry = self.manifest.files.get(r.rel) if self.manifest else None
                if entry is None:
                    tampered.append(f"{r.rel} is not in the manifest")
                elif entry.sha256 != r.sha256:
                    tampered.append(f"{r.rel}: digest no longer matches the manifest")
            subject = (r.data or {}).get("subject")
            made_from = subject.get("adapter_sha256") if isinstance(subject, dict) else None
            if isinstance(made_from, str):
                if self.adapter_sha is None:
                    stale.append(
                        f"{r.rel} names adapter {made_from[:12]}..., and no training "
                        "evidence says which adapter is current"
                    )
                elif made_from != self.adapter_sha:
                    stale.append(
                        f"{r.rel} was computed from adapter {made_from[:12]}..., the "
                        f"workspace's adapter is {self.adapter_sha[:12]}..."
                    )
        if tampered:
            return "tampered", tampered
        if stale:
            return "stale", stale
        return "", []


# The files a computed kind is computed from: a rule over it is judged on (and names) them.
COMPUTED_SOURCES: dict[str, tuple[str, ...]] = {"training_data": ("training", "datasets")}


def _digests(records: Iterable[LoadedRecord]) -> tuple[EvidenceDigest, ...]:
    seen: dict[str, str | None] = {}
    for r in records:
        if not r.rel and r.kind in COMPUTED_SOURCES:
            continue  # named by the files it is computed from
        seen.setdefault(r.rel or LEDGER_NAME, r.sha256)
    return tuple(EvidenceDigest(path=k, sha256=v) for k, v in seen.items())


def _where(rule: Rule) -> evpaths.Predicate | None:
    cond = rule.where
    if cond is None:
        return None
    tokens = evpaths.parse_tokens(cond.path)

    def keep(data: Any, at: str) -> bool:
        res = evpaths.values_at(data, tokens, at)
        if not res.matches:
            return False
        return all(compare(cond.op, m.value, cond.threshold)[0] is True for m in res.matches)

    return keep


def _reference(
    rule: Rule, ctx: _Context
) -> tuple[list[Any], RuleOutcome | None, list[LoadedRecord]]:
    """The reference values of a ``ref`` rule, or a failing outcome stub when they are unusable."""
    assert rule.ref is not None
    res = evpaths.resolve(evpaths.parse_path(rule.ref), ctx.ev)
    if res.errors:
        return (
            [],
            _stub(rule, "error", "unparseable", f"reference {rule.ref}: " + "; ".join(res.errors)),
            res.records,
        )
    reason, why = ctx.integrity_problems(res.records)
    if reason:
        return (
            [],
            _stub(rule, "fail", reason, f"reference {rule.ref}: " + "; ".join(why)),
            res.records,
        )
    if not res.matches:
        return (
            [],
            _stub(
                rule,
                "fail",
                "missing",
                f"reference {rule.ref} resolves to nothing: " + "; ".join(res.missing),
            ),
            res.records,
        )
    values = []
    for m in res.matches:
        v = m.value
        if rule.ref_transform == "reciprocal":
            if not isinstance(v, int | float) or isinstance(v, bool) or v == 0:
                return (
                    [],
                    _stub(
                        rule, "error", "type", f"reference {m.pointer} = {fmt(v)} has no reciprocal"
                    ),
                    res.records,
                )
            v = 1.0 / v
        values.append(v)
    return values, None, res.records


def _stub(rule: Rule, outcome: str, reason: str, message: str) -> RuleOutcome:
    return RuleOutcome.model_validate(
        {
            "rule": rule.id,
            "title": rule.title,
            "severity": rule.severity,
            "outcome": outcome,
            "reason": reason,
            "message": message,
        }
    )


def training_data_summary(ev: EvidenceSet) -> TrainingDataSummary | None:
    """The datasets training read and was trained on (lineage), or None without readable
    training evidence (the rules over ``training_data`` then fail as missing)."""
    from finetrail.governance.provenance.trained_on import lineage, uses_personal_data

    recs = ev.records("training")
    if not recs or recs[0].data is None:
        return None
    datasets = [r.data for r in ev.records("datasets") if r.data is not None]
    bias = ev.records("bias")
    subject = (bias[0].data or {}).get("subject") if bias else None
    eval_sha = subject.get("eval_sha256") if isinstance(subject, dict) else None
    lines = lineage(
        datasets=datasets,
        training=recs[0].data,
        eval_sha256=eval_sha if isinstance(eval_sha, str) else None,
    )

    def one(d: Any) -> TrainingDataset:
        rec = d.record or {}

        def text(key: str) -> str | None:
            v = rec.get(key)
            return v if isinstance(v, str) else None

        return TrainingDataset(
            sha256=d.sha256,
            name=d.name,
            registered=d.registered,
            roles=d.roles,
            read_by_training=d.read_by_training,
            trained_on=d.trained_on,
            derived_from=d.parents,
            pii_state=d.pii.state,
            pii_basis=d.pii.basis,
            pii=d.pii.text,
            license=text("license"),
            source=text("source"),
            legal_basis=text("legal_basis"),
        )

    return TrainingDataSummary(
        training_sha256=recs[0].sha256,
        read_for_training=tuple(one(d) for d in lines if d.read_by_training),
        trained_on=tuple(one(d) for d in lines if d.trained_on),
        uses_personal_data=uses_personal_data(lines),
    )


def evaluate_any_of(rule: Rule, ctx: _Context, *, line: int | None = None) -> RuleOutcome:
    """Pass when one alternative passes; else fail (or error) naming why each one did not."""
    results = [evaluate_rule(b, ctx, line=line) for b in rule.branches()]
    passed = [i for i, r in enumerate(results) if r.outcome == "pass"]
    digests: dict[str, EvidenceDigest] = {}
    for r in results:
        for d in r.evidence:
            digests.setdefault(d.path, d)
    explained = "; ".join(
        f"({i + 1}) {r.path}: {r.outcome}: {r.message}" for i, r in enumerate(results)
    )
    if passed:
        first = results[passed[0]]
        outcome, reason = "pass", "ok"
        message = f"alternative {passed[0] + 1} of {len(results)} holds: {first.message}"
    else:
        # the reason that says most about what to fix: evidence absent or out of date first
        order = ("missing", "stale", "tampered", "null", "threshold")
        failing = sorted(
            (r for r in results if r.outcome == "fail"),
            key=lambda r: order.index(r.reason) if r.reason in order else len(order),
        )
        chosen = failing[0] if failing else results[0]
        outcome, reason = chosen.outcome, chosen.reason
        message = f"none of {len(results)} alternatives holds: {explained}"
    return RuleOutcome.model_validate(
        {
            "rule": rule.id,
            "title": rule.title,
            "severity": rule.severity,
            "path": None,
            "op": "any_of",
            "controls": _controls(rule.controls),
            "policy_line": line,
            "measured": [m for r in results for m in r.measured][:MAX_SHOWN],
            "reference_values": tuple(v for r in results for v in r.reference_values),
            "outcome": outcome,
            "reason": reason,
            "message": message,
            "evidence": tuple(digests.values()),
        }
    )


def evaluate_rule(rule: Rule, ctx: _Context, *, line: int | None = None) -> RuleOutcome:
    if rule.any_of:
        return evaluate_any_of(rule, ctx, line=line)
    assert rule.path is not None and rule.op is not None
    path = evpaths.parse_path(rule.path)
    # 'where' filters the records of a list kind, or inside a single record the items of the
    # path's first [*] (bias.groups[*] where too_small == false)
    where = _where(rule)
    res = (
        evpaths.resolve(path, ctx.ev, keep=where)
        if path.many
        else evpaths.resolve(path, ctx.ev, keep_items=where)
    )
    records = list(res.records)
    for source in COMPUTED_SOURCES.get(path.kind, ()):
        for r in ctx.ev.records(source):
            records.append(r)
            if r.data is None:  # a computed kind is only as good as every file it reads
                res.errors.append(f"{r.rel}: {r.error}")
    base: dict[str, Any] = {
        "rule": rule.id,
        "title": rule.title,
        "severity": rule.severity,
        "path": rule.path,
        "op": rule.op,
        "threshold": rule.threshold,
        "ref": rule.ref,
        "controls": _controls(rule.controls),
        "policy_line": line,
        "measured": [
            MeasuredValue(pointer=m.pointer, value=m.value) for m in res.matches[:MAX_SHOWN]
        ],
    }

    def done(outcome: str, reason: str, message: str, refs: Sequence[Any] = ()) -> RuleOutcome:
        return RuleOutcome.model_validate(
            {
                **base,
                "outcome": outcome,
                "reason": reason,
                "message": message,
                "reference_values": tuple(refs),
                "evidence": _digests(records),
            }
        )

    if res.errors:
        return done("error", "unparseable", "; ".join(res.errors))
    reason, why = ctx.integrity_problems(records)
    if reason:
        return done("fail", reason, "; ".join(why))
    if not res.matches:
        return done(
            "fail", "missing", f"{rule.path} resolves to nothing: " + "; ".join(res.missing)
        )
    bounds: list[Any] = [rule.threshold]
    if rule.ref is not None:
        bounds, stub, ref_records = _reference(rule, ctx)
        records += ref_records
        if stub is not None:
            return done(stub.outcome, stub.reason, stub.message)
    expect = rule.expectation(bounds if rule.ref else None)
    unary = OPERATORS[rule.op][0] == 1
    failures: list[str] = []
    type_errors: list[str] = []
    null = False
    for m in res.matches:
        for bound in [None] if unary else bounds:
            ok, problem = compare(rule.op, m.value, bound)
            if problem:
                type_errors.append(f"{m.pointer}: {problem}")
            elif not ok:
                null = null or m.value is None
                failures.append(f"{m.pointer} = {fmt(m.value)}")
                break
    n = len(res.matches)
    if type_errors:
        return done("error", "type", "; ".join(type_errors[:5]), bounds if rule.ref else ())
    if failures:
        head = ", ".join(failures[:3]) + (
            f" and {len(failures) - 3} more" if len(failures) > 3 else ""
        )
        count = f" ({len(failures)} of {n} values fail)" if n > 1 else ""
        return done(
            "fail",
            "null" if null else "threshold",
            f"{head}; required {expect}{count}",
            bounds if rule.ref else (),
        )
    if n == 1:
        msg = f"{res.matches[0].pointer} = {fmt(res.matches[0].value)}; required {expect}"
    else:
        shown = ", ".join(fmt(m.value) for m in res.matches[:5])
        msg = f"all {n} values of {rule.path} ({shown}{', ...' if n > 5 else ''}) {expect}"
    return done("pass", "ok", msg, bounds if rule.ref else ())


def apply_waiver(outcome: RuleOutcome, waiver: Waiver | None, today: date) -> RuleOutcome:
    if waiver is None:
        return outcome
    info = {
        "justification": waiver.justification,
        "approver": waiver.approver,
        "expires": waiver.expires.isoformat(),
    }
    if outcome.outcome == "pass":
        applied = AppliedWaiver(**info, applied=False, note="not needed: the rule passes")
        return outcome.model_copy(update={"waiver": applied})
    if outcome.reason not in WAIVABLE:
        applied = AppliedWaiver(
            **info, applied=False, note=f"not applied: {outcome.reason} evidence cannot be waived"
        )
        return outcome.model_copy(update={"waiver": applied})
    if today > waiver.expires:
        applied = AppliedWaiver(
            **info, applied=False, note=f"expired on {waiver.expires.isoformat()}; not applied"
        )
        return outcome.model_copy(
            update={
                "waiver": applied,
                "message": outcome.message + f" (waiver expired {waiver.expires})",
            }
        )
    applied = AppliedWaiver(
        **info, applied=True, note=f"waived by {waiver.approver} until {waiver.expires.isoformat()}"
    )
    return outcome.model_copy(update={"waiver": applied, "outcome": "waived"})


def _required(kind: str, ctx: _Context, line: int | None) -> RuleOutcome:
    records = ctx.ev.records(kind)
    base = {
        "rule": f"evidence.{kind}",
        "title": f"{kind} evidence is present and current",
        "severity": "error",
        "policy_line": line,
        "evidence": _digests(records),
    }
    errors = [f"{r.rel}: {r.error}" for r in records if r.data is None]
    reason, why = ctx.integrity_problems(records)
    if errors:
        return RuleOutcome.model_validate(
            {**base, "outcome": "error", "reason": "unparseable", "message": "; ".join(errors)}
        )
    if not records:
        return RuleOutcome.model_validate(
            {
                **base,
                "outcome": "fail",
                "reason": "missing",
                "message": f"no {kind} evidence in the workspace",
            }
        )
    if reason:
        return RuleOutcome.model_validate(
            {**base, "outcome": "fail", "reason": reason, "message": "; ".join(why)}
        )
    files = ", ".join(r.rel for r in records[:5]) + (" ..." if len(records) > 5 else "")
    return RuleOutcome.model_validate(
        {**base, "outcome": "pass", "reason": "ok", "message": f"present: {files}"}
    )


def evaluate(
    *,
    workspace: str | Path,
    policy: LoadedPolicy,
    keyring_file: str | None = None,
    require_approvals: bool = False,
    sequence: int = 1,
    signer: Signer | None = None,
    trust: TrustRoot | None = None,
) -> GateDecision:
    """Evaluate ``policy`` on ``workspace``; returns the decision (nothing is written).

    ``trust`` is the trust root every signature is checked against (verify and reviews).
    """
    from finetrail.governance import review

    root = Path(workspace)
    report = verify_workspace(root, keyring=keyring_file, trust=trust)
    manifest = _manifest(root)
    meta = _metadata(root)
    entries = report.ledger
    pol = policy.policy
    status = review.review_status(
        root=root,
        entries=entries,
        manifest=manifest,
        owner=meta.owner if meta else None,
        rule=pol.approvals,
        keyring_file=keyring_file,
        trust=trust,
    )
    keyring_problem = status.keyring_problem
    fe = status.four_eyes
    summary = status.summary
    from finetrail.governance.checkpoint import CHECKPOINTS_FILE, leaves_of, read_checkpoints
    from finetrail.governance.merkle_log import tree_hash
    from finetrail.governance.trust import ledger_summary

    checkpoints, _ = read_checkpoints(root / CHECKPOINTS_FILE)
    computed: dict[str, EvidenceRecord] = {
        "reviews": summary,
        "ledger": ledger_summary(entries, trust, meta, checkpoints=len(checkpoints)),
    }
    training_data = training_data_summary(EvidenceSet(root))
    if training_data is not None:
        computed["training_data"] = training_data
    ctx = _Context(EvidenceSet(root, computed=computed), manifest)

    integrity = Integrity(
        ok=report.ok,
        errors=len(report.errors),
        warnings=len(report.findings) - len(report.errors),
        findings=tuple(f.render().strip() for f in report.errors[:20]),
    )
    digests = [
        EvidenceDigest(path=p, sha256=sha256_file(root / p) if (root / p).is_file() else None)
        for p in (MANIFEST_FILE, LEDGER_NAME)
    ]
    outcomes = [
        RuleOutcome(
            rule="workspace-integrity",
            title="verify accepts the workspace",
            severity="error",
            outcome="pass" if report.ok else "fail",
            reason="ok" if report.ok else "integrity",
            message=(
                "verify: OK"
                if report.ok
                else f"verify found {integrity.errors} problem(s): "
                + "; ".join(integrity.findings[:3])
            ),
            evidence=tuple(digests),
            policy_line=1,
        )
    ]
    outcomes.append(_trust_outcome(trust, release_policy=pol.approvals is not None))
    for j, kind in enumerate(pol.required_evidence):
        outcomes.append(_required(kind, ctx, policy.position("required_evidence", j).line))
    today = clock.release_now().date()  # the real clock: the environment cannot move it
    waivers = {w.rule: w for w in pol.waivers}
    for i, rule in enumerate(pol.rules):
        outcome = evaluate_rule(rule, ctx, line=policy.rule_position(i).line)
        outcomes.append(apply_waiver(outcome, waivers.get(rule.id), today))
    approval_problems = ([keyring_problem] if keyring_problem else []) + list(fe.problems)
    if pol.approvals is not None:
        a = pol.approvals
        ok = fe.satisfied and keyring_problem is None
        outcomes.append(
            RuleOutcome(
                rule="approvals",
                title=f"{a.count} current signed approval(s)"
                + (f" covering {', '.join(a.roles)}" if a.roles else ""),
                severity="error" if require_approvals else "warning",
                outcome="pass" if ok else "fail",
                reason="ok" if ok else "approvals",
                message=("approved by " + ", ".join(fe.counted))
                if ok
                else "; ".join(approval_problems),
                controls=_controls(a.controls),
                policy_line=policy.position("approvals").line,
                evidence=(EvidenceDigest(path=LEDGER_NAME, sha256=digests[1].sha256),),
            )
        )
    passed = not any(o.blocking for o in outcomes)
    approved = passed and (pol.approvals is None or (fe.satisfied and keyring_problem is None))
    counts = {
        k: sum(1 for o in outcomes if o.outcome == k) for k in ("pass", "fail", "waived", "error")
    }
    return GateDecision(
        sequence=sequence,
        time=clock.now(),
        policy_id=pol.id,
        policy_version=pol.version,
        policy_title=pol.title,
        policy_sha256=policy.sha256,
        policy_file=policy.path.name,
        written_against={str(k): v for k, v in pol.written_against.items()},
        model=meta.model if meta else "?",
        model_version=meta.version if meta else "?",
        subject=GateSubject(
            adapter_sha256=ctx.adapter_sha,
            adapter_path=ctx.adapter_path,
            manifest_files_sha256=manifest.files_digest() if manifest else None,
        ),
        integrity=integrity,
        passed=passed,
        approved=approved,
        approvals=ApprovalState(
            required=pol.approvals is not None,
            satisfied=pol.approvals is None or (fe.satisfied and keyring_problem is None),
            approvers=fe.counted,
            problems=tuple(approval_problems),
        ),
        counts=counts,
        outcomes=tuple(outcomes),
        evidence=dict(sorted(ctx.read.items())),
        signer=signer,
        release=(
            ReleaseBinding(
                model=meta.model,
                version=meta.version,
                workspace_sha256=meta.content_digest(),
                ledger_entries=len(entries),
                ledger_head=entries[-1].digest if entries else None,
                workspace_id=meta.workspace_id,
                ledger_root=tree_hash(leaves_of([e.digest for e in entries])).hex(),
            )
            if meta
            else None
        ),
        trust_sha256=trust.sha256 if trust is not None else None,
    )


def _trust_outcome(trust: TrustRoot | None, *, release_policy: bool) -> RuleOutcome:
    """Whether the signatures the gate relied on were checked against a trust root."""
    base: dict[str, Any] = {
        "rule": "trust-root",
        "title": "signatures are checked against a trust root outside the workspace",
        "severity": "error" if release_policy else "warning",
        "policy_line": 1,
    }
    if trust is not None:
        return RuleOutcome(
            **base,
            outcome="pass",
            reason="ok",
            message=f"trust root {trust.path.name} (sha256 {trust.sha256[:16]}..., "
            f"{len(trust.keys)} keys)",
            evidence=(EvidenceDigest(path=trust.path.name, sha256=trust.sha256),),
        )
    return RuleOutcome(
        **base,
        outcome="fail",
        reason="untrusted",
        message="signatures not checked against a trust root: pass --trust FILE (kept outside "
        "the workspace) or set FINETRAIL_TRUST"
        + ("; a policy that asks for signed approvals needs one" if release_policy else ""),
    )


def decision_json(decision: GateDecision) -> str:
    return json.dumps(decision.to_json_dict(), indent=2, sort_keys=True, ensure_ascii=False)
