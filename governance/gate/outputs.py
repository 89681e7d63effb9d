"""Renderings of a gate decision: a readable table, JUnit XML and SARIF 2.1.0.

- Table: one line per outcome, then the reasons for every failure with the controls at stake.
- JUnit: one ``<testcase>`` per outcome; ``fail`` is ``<failure>`` (type = severity), ``error`` is
  ``<error>``, ``waived`` is ``<skipped>``.
- SARIF: one run; ``tool.driver.rules`` lists every outcome's rule with a stable id (the rule id;
  ``evidence.<kind>``, ``approvals``, ``workspace-integrity`` for the gate's own checks); each
  result points at the rule's line in the policy file and relates the evidence files. Passing
  rules are results of kind ``pass``; waived ones carry an accepted suppression.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from finetrail._version import __version__
from finetrail.governance.evidence.gate import GateDecision, RuleOutcome
from finetrail.governance.policy.controls import FRAMEWORK_NAMES
from finetrail.governance.policy.load import LoadedPolicy
from finetrail.governance.policy.operators import fmt
from finetrail.textsafe import neutralise, neutralise_value

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)


def _controls_text(o: RuleOutcome) -> str:
    parts = []
    for fw, ids in o.controls.items():
        parts.append(f"{FRAMEWORK_NAMES.get(fw, fw)} {', '.join(ids)}")
    return "; ".join(parts)


def _measured(o: RuleOutcome) -> str:
    if not o.measured:
        return "-"
    vals = [fmt(m.value) for m in o.measured[:3]]
    more = f" +{len(o.measured) - 3}" if len(o.measured) > 3 else ""
    return ", ".join(vals) + more


def _threshold(o: RuleOutcome) -> str:
    if o.op is None:
        return "-"
    if o.ref:
        refs = ", ".join(fmt(v) for v in o.reference_values[:2])
        return f"{o.op} {o.ref}" + (f" ({refs})" if refs else "")
    if o.threshold is None:
        return o.op
    return f"{o.op} {fmt(o.threshold)}"


def _evidence(o: RuleOutcome) -> str:
    if not o.evidence:
        return "-"
    first = o.evidence[0]
    name = first.path
    if len(name) > 40:  # content-addressed names: keep the folder and the digest's head
        folder, _, base = name.rpartition("/")
        name = f"{folder}/{base[:8]}….json" if base.endswith(".json") else f"{name[:39]}…"
    digest = f" ({first.sha256[:8]})" if first.sha256 else ""
    more = f" +{len(o.evidence) - 1}" if len(o.evidence) > 1 else ""
    return f"{name}{digest}{more}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(d: GateDecision) -> str:
    head = (
        f"gate: policy {d.policy_id} {d.policy_version} (sha256 {d.policy_sha256[:12]}) "
        f"on {d.model} {d.model_version}"
    )
    rows = [("RULE", "OUTCOME", "SEV", "MEASURED", "THRESHOLD", "EVIDENCE")]
    for o in d.outcomes:
        rows.append(
            (o.rule, o.outcome.upper(), o.severity, _measured(o), _threshold(o), _evidence(o))
        )
    widths = [min(34, max(len(r[i]) for r in rows)) for i in range(5)]
    lines = [head, ""]
    for r in rows:
        cells = [_clip(r[i], widths[i]).ljust(widths[i]) for i in range(5)]
        lines.append("  ".join([*cells, r[5]]).rstrip())
    problems = [o for o in d.outcomes if o.outcome in ("fail", "error", "waived")]
    if problems:
        lines += ["", "reasons:"]
        for o in problems:
            lines.append(f"  {o.rule} [{o.outcome}, {o.severity}]: {o.message}")
            if o.controls:
                lines.append(f"      controls: {_controls_text(o)}")
            if o.waiver:
                lines.append(f"      waiver: {o.waiver.note} ({o.waiver.justification})")
    c = d.counts
    tally = f"{c['pass']} passed, {c['fail']} failed, {c['error']} errors, {c['waived']} waived"
    lines.append("")
    lines.append(
        f"approvals: {'in place' if d.approvals.satisfied else 'not in place'}"
        + (f" ({', '.join(d.approvals.approvers)})" if d.approvals.approvers else "")
        if d.approvals.required
        else "approvals: none required by this policy"
    )
    lines.append(f"gate: {'PASSED' if d.passed else 'FAILED'} ({tally})")
    return "\n".join(lines)


# -- JUnit -------------------------------------------------------------------------------------
def render_junit(d: GateDecision, policy: LoadedPolicy) -> bytes:
    import xml.etree.ElementTree as ET  # only with --junit: keeps the gate's start-up short

    n = len(d.outcomes)
    # A rule of severity "warning" (or "info") that fails does not fail the gate: it is reported
    # as <skipped> (with the reason), so a passed gate is green in CI. Only error-severity
    # failures are <failure>s.
    fails = sum(1 for o in d.outcomes if o.outcome == "fail" and o.severity == "error")
    errors = sum(1 for o in d.outcomes if o.outcome == "error")
    skipped = sum(
        1
        for o in d.outcomes
        if o.outcome == "waived" or (o.outcome == "fail" and o.severity != "error")
    )
    suites = ET.Element(
        "testsuites",
        name="finetrail gate",
        tests=str(n),
        failures=str(fails),
        errors=str(errors),
    )  # junit-10.xsd: <testsuites> has no "skipped" attribute
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=d.policy_id,
        tests=str(n),
        failures=str(fails),
        errors=str(errors),
        skipped=str(skipped),
        timestamp=d.time.isoformat(),
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("policy_version", d.policy_version),
        ("policy_sha256", d.policy_sha256),
        ("model", f"{d.model} {d.model_version}"),
        ("passed", str(d.passed).lower()),
    ):
        ET.SubElement(props, "property", name=k, value=v)
    # junit-10.xsd allows no file/line on <testcase>: each rule's place in the policy is a property
    for o in d.outcomes:
        ET.SubElement(
            props,
            "property",
            name=f"rule.{o.rule}.location",
            value=f"{policy.path}:{o.policy_line or 1}",
        )
    for o in d.outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"finetrail.gate.{d.policy_id}",
            name=o.rule,
        )
        if o.outcome == "fail" and o.severity != "error":
            ET.SubElement(case, "skipped", message=f"{o.severity}: {o.message}")
        elif o.outcome == "fail":
            el = ET.SubElement(case, "failure", message=o.message, type=o.severity)
            el.text = _detail(o)
        elif o.outcome == "error":
            el = ET.SubElement(case, "error", message=o.message, type=o.reason)
            el.text = _detail(o)
        elif o.outcome == "waived":
            ET.SubElement(case, "skipped", message=f"waived: {o.waiver.note if o.waiver else ''}")
        out = ET.SubElement(case, "system-out")
        out.text = _detail(o)
    # Policy and evidence strings can hold control, bidi and invisible characters: XML 1.0 cannot
    # carry most C0 controls at all (the file would not parse), and a CI log would render the
    # rest. Every text and attribute is made visible first.
    for el in suites.iter():
        if el.text:
            el.text = neutralise(el.text)
        for k, v in el.attrib.items():
            el.attrib[k] = neutralise(v)
    ET.indent(suites)
    data: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _detail(o: RuleOutcome) -> str:
    lines = [
        f"{o.title}",
        f"outcome: {o.outcome} ({o.reason}): {o.message}",
        f"measured: {_measured(o)}",
        f"threshold: {_threshold(o)}",
    ]
    lines += [f"evidence: {e.path} sha256 {e.sha256}" for e in o.evidence]
    if o.controls:
        lines.append(f"controls: {_controls_text(o)}")
    return "\n".join(lines)


# -- SARIF 2.1.0 -------------------------------------------------------------------------------
def _uri(path: Path) -> tuple[str, str | None]:
    """A repository-relative URI (with %SRCROOT%) when under the working directory, else file://."""
    resolved = path.resolve()
    try:
        rel = resolved.relative_to(Path.cwd().resolve())
        return rel.as_posix(), "%SRCROOT%"
    except ValueError:
        return resolved.as_uri(), None


def _location(uri: str, base: str | None, line: int | None = None) -> dict[str, Any]:
    art: dict[str, Any] = {"uri": uri}
    if base:
        art["uriBaseId"] = base
    loc: dict[str, Any] = {"artifactLocation": art}
    if line:
        loc["region"] = {"startLine": line, "startColumn": 1}
    return {"physicalLocation": loc}


def _rule_descriptor(o: RuleOutcome, policy: LoadedPolicy) -> dict[str, Any]:
    rationale = o.title
    for r in policy.policy.rules:
        if r.id == o.rule:
            rationale = r.rationale
    if o.rule == "approvals" and policy.policy.approvals:
        rationale = policy.policy.approvals.rationale
    tags = [f"{FRAMEWORK_NAMES.get(fw, fw)} {i}" for fw, ids in o.controls.items() for i in ids]
    return {
        "id": o.rule,
        "name": "".join(p.capitalize() for p in o.rule.replace(".", "-").split("-")),
        "shortDescription": {"text": o.title},
        "fullDescription": {"text": rationale},
        "help": {
            "text": f"{o.title}. {rationale}"
            + (f" Controls: {_controls_text(o)}." if o.controls else "")
        },
        "defaultConfiguration": {"level": "error" if o.severity == "error" else "warning"},
        "properties": {
            "tags": ["finetrail", "release-gate", *tags],
            "controls": {k: list(v) for k, v in o.controls.items()},
        },
    }


def render_sarif(
    d: GateDecision, policy: LoadedPolicy, *, workspace: str | os.PathLike[str], exit_code: int
) -> dict[str, Any]:
    puri, pbase = _uri(policy.path)
    rules = [_rule_descriptor(o, policy) for o in d.outcomes]
    results = []
    for idx, o in enumerate(d.outcomes):
        if o.outcome == "pass":
            continue  # code scanning shows results as alerts: a passing rule is not one
        kind = "fail"
        level = "error" if o.severity == "error" and o.outcome != "waived" else "warning"
        related = []
        for j, e in enumerate(o.evidence):
            euri, ebase = _uri(Path(workspace) / e.path)
            loc = _location(euri, ebase)
            loc["id"] = j
            loc["message"] = {"text": f"evidence sha256 {e.sha256}"}
            related.append(loc)
        fp = hashlib.sha256(f"{d.policy_id}/{o.rule}".encode()).hexdigest()
        result: dict[str, Any] = {
            "ruleId": o.rule,
            "ruleIndex": idx,
            "kind": kind,
            "level": level,
            "message": {"text": f"{o.outcome}: {o.message}"},
            "locations": [_location(puri, pbase, o.policy_line)],
            "partialFingerprints": {"finetrailRule/v1": fp},
            "properties": {
                "outcome": o.outcome,
                "reason": o.reason,
                "measured": [m.model_dump(mode="json") for m in o.measured],
                "threshold": o.threshold,
                "ref": o.ref,
                "referenceValues": list(o.reference_values),
            },
        }
        if related:
            result["relatedLocations"] = related
        if o.outcome == "waived" and o.waiver:
            result["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": f"{o.waiver.justification} "
                    f"(approved by {o.waiver.approver}, expires {o.waiver.expires})",
                }
            ]
        results.append(result)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "finetrail",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": rules,
            }
        },
        "automationDetails": {"id": f"finetrail-gate/{d.policy_id}/"},
        "invocations": [{"executionSuccessful": True, "exitCode": exit_code}],
        "results": results,
        "properties": {
            "passed": d.passed,
            "approved": d.approved,
            "policy": {"id": d.policy_id, "version": d.policy_version, "sha256": d.policy_sha256},
            "model": d.model,
            "modelVersion": d.model_version,
        },
    }
    if pbase:
        run["originalUriBaseIds"] = {pbase: {"uri": Path.cwd().resolve().as_uri() + "/"}}
    # messages are rendered (GitHub code scanning): user strings made visible, as in JUnit
    doc: dict[str, Any] = neutralise_value(
        {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    )
    return doc


def sarif_bytes(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
