"""The claims check (``finetrail report --check``): does a rendered dossier still say what the
evidence says?

Two independent checks, both against the workspace's *current* evidence:

1. **Named statements.** The statements a reader or a tool acts on are read back out of each
   rendered file (the BOM's dataset classifications, licences and dependencies; SPDX's
   ``hasSensitivePersonalInformation``, ``trainedOn`` and licences; the model card's tags, model
   type and trained-on list; the dossier's verdict and approvals; the manifest digest each file
   is bound to) and compared with the same statements derived directly from the typed release
   view (:mod:`finetrail.reports.release`), not from the renderer. A disagreement names the file,
   the statement, what the file says and what the evidence says.
2. **Every other byte.** Each file is rendered again in memory from the current evidence, at the
   time the dossier was generated (``coverage.json``'s ``generated``), and compared with the file
   on disk; the first differing line is reported. (PDF bytes depend on WeasyPrint and are not
   compared.)

Nothing is written.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetrail.errors import InputError
from finetrail.reports.model import ReportModel, fmt
from finetrail.reports.release import Release

CLASSIFICATION: dict[str, str] = {
    "present": "personal data",
    "absent": "no personal data found by the scan",
    "unknown": "unknown: not scanned for personal data",
}
SPDX_PRESENCE: dict[str, str] = {"present": "yes", "absent": "no", "unknown": "noAssertion"}
NOT_STATED = "(not stated)"


@dataclass(frozen=True)
class Disagreement:
    file: str
    statement: str
    rendered: str
    evidence: str

    def text(self) -> str:
        return (
            f"{self.file}: {self.statement}: the file says {self.rendered!r}; "
            f"the evidence says {self.evidence!r}"
        )

    def to_json(self) -> dict[str, str]:
        return {
            "file": self.file,
            "statement": self.statement,
            "rendered": self.rendered,
            "evidence": self.evidence,
        }


def _ds(name: str, sha: str) -> str:
    return f"dataset {name} ({sha[:12]})"


def _names(views: Any) -> str:
    return ", ".join(sorted(f"{v.name} ({v.sha256[:12]})" for v in views)) or "none"


def _licence(view: Any) -> str:
    return str(view.licence.spdx or view.licence.text or "not recorded")


# -- what the evidence says, per file ------------------------------------------------------------
def expected_claims(m: ReportModel) -> dict[str, dict[str, str]]:
    """file -> statement -> value, derived from the release view and the evidence."""
    rel: Release = m.release
    ev = m.ev
    t = ev.training
    digest = str(ev.manifest_digest)
    bom: dict[str, str] = {"verdict": m.verdict.status, "manifest digest": digest}
    spdx: dict[str, str] = {"manifest digest": digest}
    for v in rel.datasets:
        bom[f"{_ds(v.name, v.sha256)} personal data"] = CLASSIFICATION[v.pii.state]
        bom[f"{_ds(v.name, v.sha256)} licence"] = _licence(v)
        spdx[f"{_ds(v.name, v.sha256)} hasSensitivePersonalInformation"] = SPDX_PRESENCE[
            v.pii.state
        ]
        spdx[f"{_ds(v.name, v.sha256)} licence"] = _licence(v)
    card: dict[str, str] = {"tags": ", ".join(rel.tags)}
    if t is not None:
        bom["adapter depends on data"] = _names(rel.read_for_training)
        bom["model card trained-on data"] = _names(rel.trained_on)
        bom["dp.enabled"] = fmt(rel.dp_enabled)
        spdx["adapter trainedOn"] = _names(rel.trained_on)
        spdx["adapter useSensitivePersonalInformation"] = SPDX_PRESENCE[rel.uses_personal_data]
        spdx["adapter typeOfModel"] = f"{rel.method_label} of a causal language model"
        card["model type"] = rel.method_label
        card["trained on"] = _names(rel.trained_on)
        eps = t.get("dp", {}).get("epsilon") if isinstance(t.get("dp"), dict) else None
        if rel.dp_enabled and isinstance(eps, int | float):
            bom["dp.epsilon"] = fmt(float(eps))
    html = {"verdict": m.verdict.status, "current approvals": str(m.approvals)}
    return {
        "bom.cdx.json": bom,
        "spdx.json": spdx,
        "README.md": card,
        "index.html": html,
        "coverage.json": {"manifest digest": digest},
    }


# -- what each rendered file says ------------------------------------------------------------
def _props(component: dict[str, Any]) -> dict[str, str]:
    return {
        str(p.get("name", "")).removeprefix("finetrail:"): str(p.get("value"))
        for p in component.get("properties") or []
        if isinstance(p, dict)
    }


def _sha_of(component: dict[str, Any]) -> str:
    for h in component.get("hashes") or []:
        if isinstance(h, dict) and h.get("alg") == "SHA-256":
            return str(h.get("content"))
    return "no-hash"


def bom_claims(data: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    meta = data.get("metadata", {}).get("component", {})
    mprops = _props(meta)
    out["verdict"] = mprops.get("verdict", NOT_STATED)
    out["manifest digest"] = mprops.get("manifest_digest", "None")
    comps = {c.get("bom-ref"): c for c in data.get("components") or [] if isinstance(c, dict)}
    label = {}
    for ref, c in comps.items():
        if c.get("type") != "data":
            continue
        key = _ds(str(c.get("name")), _sha_of(c))
        label[ref] = f"{c.get('name')} ({_sha_of(c)[:12]})"
        entry = (c.get("data") or [{}])[0]
        out[f"{key} personal data"] = str(entry.get("classification", NOT_STATED))
        lic = (c.get("licenses") or [{}])[0]
        if "expression" in lic:
            out[f"{key} licence"] = str(lic["expression"])
        else:
            inner = lic.get("license") or {}
            out[f"{key} licence"] = str(inner.get("id") or inner.get("name") or "not recorded")
    for dep in data.get("dependencies") or []:
        if dep.get("ref") == "model-adapter":
            out["adapter depends on data"] = (
                ", ".join(sorted(label[x] for x in dep.get("dependsOn") or [] if x in label))
                or "none"
            )
    card = meta.get("modelCard")
    if isinstance(card, dict) and "model-adapter" in comps:
        refs = [d.get("ref") for d in card.get("modelParameters", {}).get("datasets") or []]
        out["model card trained-on data"] = ", ".join(sorted(label.get(r, r) for r in refs)) or (
            "none"
        )
    adapter = comps.get("model-adapter")
    if isinstance(adapter, dict):
        aprops = _props(adapter)
        out["dp.enabled"] = aprops.get("dp.enabled", NOT_STATED)
        if "dp.epsilon" in aprops:
            out["dp.epsilon"] = aprops["dp.epsilon"]
    return out


def spdx_claims(data: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    graph = [n for n in data.get("@graph") or [] if isinstance(n, dict)]
    by_id = {n.get("spdxId"): n for n in graph}
    label: dict[str, str] = {}
    for n in graph:
        if n.get("type") == "SpdxDocument":
            m = re.search(r"manifest digest (\S+)", str(n.get("comment", "")))
            out["manifest digest"] = m.group(1) if m else NOT_STATED
        if n.get("type") != "dataset_DatasetPackage":
            continue
        sha = next(
            (str(h.get("hashValue")) for h in n.get("verifiedUsing") or [] if isinstance(h, dict)),
            "no-hash",
        )
        label[str(n.get("spdxId"))] = f"{n.get('name')} ({sha[:12]})"
        key = _ds(str(n.get("name")), sha)
        out[f"{key} hasSensitivePersonalInformation"] = str(
            n.get("dataset_hasSensitivePersonalInformation", NOT_STATED)
        )
        out[f"{key} licence"] = "not recorded"
    for n in graph:
        if n.get("type") != "Relationship":
            continue
        kind, frm, to = n.get("relationshipType"), str(n.get("from")), n.get("to") or []
        if kind == "hasDeclaredLicense" and frm in label:
            lic = by_id.get(to[0], {}) if to else {}
            value = lic.get("simplelicensing_licenseExpression") or lic.get("name")
            name, _, rest = label[frm].rpartition(" (")
            out[f"dataset {name} ({rest.rstrip(')')}) licence"] = str(value or NOT_STATED)
        if kind == "trainedOn" and frm.endswith(":model-adapter"):
            out["adapter trainedOn"] = ", ".join(sorted(label.get(x, x) for x in to)) or "none"
    for n in graph:
        if n.get("type") == "ai_AIPackage" and str(n.get("spdxId")).endswith(":model-adapter"):
            out.setdefault("adapter trainedOn", "none")
            out["adapter useSensitivePersonalInformation"] = str(
                n.get("ai_useSensitivePersonalInformation", NOT_STATED)
            )
            out["adapter typeOfModel"] = ", ".join(n.get("ai_typeOfModel") or []) or NOT_STATED
    return out


def model_card_claims(text: str) -> dict[str, str]:
    import yaml

    out: dict[str, str] = {}
    front = re.match(r"---\n(.*?)\n---\n", text, re.S)
    meta = yaml.safe_load(front.group(1)) if front else None
    meta = meta if isinstance(meta, dict) else {}
    out["tags"] = ", ".join(str(t) for t in meta.get("tags") or [])
    mt = re.search(r"^- \*\*Model type:\*\* (.+?) of a causal language model", text, re.M)
    if mt:
        out["model type"] = mt.group(1)
    section = re.search(r"^Trained on \(.*?\n\n(.*?)(?:\n\n|\Z)", text, re.M | re.S)
    if section:
        items = re.findall(r"^- (.+?): .*sha256 `([0-9a-f]{12})", section.group(1), re.M)
        out["trained on"] = ", ".join(sorted(f"{n} ({s})" for n, s in items)) or "none"
    elif "### Training Data" in text and mt:
        out["trained on"] = "none"
    return out


def html_claims(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    v = re.search(r'data-verdict="([^"]*)"', text)
    out["verdict"] = v.group(1) if v else NOT_STATED
    a = re.search(r'data-approvals="([^"]*)"', text)
    out["current approvals"] = a.group(1) if a else NOT_STATED
    return out


def rendered_claims(name: str, raw: bytes) -> dict[str, str]:
    """What the rendered file ``name`` states (the named statements only)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        if name == "bom.cdx.json":
            return bom_claims(json.loads(text))
        if name == "spdx.json":
            return spdx_claims(json.loads(text))
        if name == "coverage.json":
            return {"manifest digest": str(json.loads(text).get("manifest_digest"))}
    except (ValueError, AttributeError, TypeError) as exc:
        return {"(the file itself)": f"unreadable: {exc}"}
    if name == "README.md":
        return model_card_claims(text)
    if name == "index.html":
        return html_claims(text)
    return {}


def compare_claims(name: str, expected: dict[str, str], raw: bytes) -> list[Disagreement]:
    got = rendered_claims(name, raw)
    out = []
    for key in sorted(set(expected) | set(got)):
        want, have = expected.get(key, NOT_STATED), got.get(key, NOT_STATED)
        if want != have:
            out.append(Disagreement(name, key, have, want))
    return out


def first_difference(old: bytes, new: bytes) -> str:
    """Where two renderings first differ: the line, and the text around the first change."""
    a = old.decode("utf-8", errors="replace").splitlines()
    b = new.decode("utf-8", errors="replace").splitlines()
    for i, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            col = next((j for j, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), None)
            col = min(len(x), len(y)) if col is None else col
            lo = max(0, col - 40)
            return (
                f"line {i}, column {col + 1}: the file has {x[lo : col + 80]!r}; "
                f"the evidence renders {y[lo : col + 80]!r}"
            )
    return f"the file has {len(a)} lines; the evidence renders {len(b)}"


@dataclass(frozen=True)
class CheckResult:
    out: Path
    files: tuple[str, ...]
    disagreements: tuple[Disagreement, ...]

    @property
    def ok(self) -> bool:
        return not self.disagreements

    def to_json(self) -> dict[str, Any]:
        return {
            "dossier": str(self.out),
            "ok": self.ok,
            "files_checked": list(self.files),
            "disagreements": [d.to_json() for d in self.disagreements],
        }


def check_dossier(
    *,
    workspace: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    templates: str | os.PathLike[str] | None = None,
    compare: str | os.PathLike[str] | None = None,
    keyring: str | os.PathLike[str] | None = None,
) -> CheckResult:
    """Check the dossier in ``out`` (default ``WORKSPACE/dossier``) against the evidence now."""
    from finetrail.reports.api import DOSSIER_DIR, FORMATS, render_outputs
    from finetrail.reports.diff import diff
    from finetrail.reports.loader import load_evidence
    from finetrail.reports.model import build_model

    folder = Path(out) if out is not None else Path(workspace) / DOSSIER_DIR
    coverage = folder / "coverage.json"
    if not coverage.is_file():
        raise InputError(
            "no rendered dossier to check (coverage.json is missing)",
            path=str(folder),
            fix="render it with `finetrail report WORKSPACE`, or pass --out",
        )
    try:
        generated = json.loads(coverage.read_text("utf-8"))["generated"]
        if not isinstance(generated, str):
            raise TypeError("not a string")
        from datetime import datetime

        datetime.fromisoformat(generated)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"coverage.json has no readable 'generated' time ({exc})",
            path=str(coverage),
            field="generated",
            fix="render the dossier again with `finetrail report`",
        ) from exc
    m = build_model(load_evidence(workspace, keyring=keyring), generated=generated)
    present = {
        "md": (folder / "README.md").is_file(),
        "html": (folder / "index.html").is_file(),
        "cyclonedx": (folder / "bom.cdx.json").is_file(),
        "spdx": (folder / "spdx.json").is_file(),
    }
    formats = tuple(f for f in FORMATS if present.get(f))
    change = None
    if compare is not None:
        change = diff(build_model(load_evidence(compare)), m)
    rendered = render_outputs(m, formats=formats, templates=templates, change=change)
    expected = expected_claims(m)
    found: list[Disagreement] = []
    on_disk = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".md", ".html", ".json")
    )
    hint = ""
    if "diff.md" in on_disk and "diff.md" not in rendered:
        on_disk.remove("diff.md")  # rendered with --compare; pass --compare to check it
        hint = " (the dossier was rendered with --compare: pass the same --compare)"
    checked = []
    for name in sorted(set(on_disk) | set(rendered)):
        raw = (folder / name).read_bytes() if name in on_disk else None
        if raw is None:
            found.append(Disagreement(name, "(the file itself)", "missing", "rendered"))
            continue
        if name not in rendered:
            found.append(
                Disagreement(
                    name,
                    "(the file itself)",
                    "present",
                    "not rendered from this evidence (a user template's output? pass --templates)",
                )
            )
            continue
        checked.append(name)
        named = compare_claims(name, expected[name], raw) if name in expected else []
        found += named
        if raw != rendered[name] and not named:
            found.append(
                Disagreement(
                    name, "(content)", "differs", first_difference(raw, rendered[name]) + hint
                )
            )
    return CheckResult(out=folder, files=tuple(checked), disagreements=tuple(found))
