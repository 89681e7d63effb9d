"""The dossier and the gate agree on every approval's status: current, stale, invalid.

Both take review states from ``finetrail.governance.review.review_status``; before, the dossier
counted every ``approve`` event as an approval, so it could show an approval as current that the
gate rejected as stale or forged.
"""

from __future__ import annotations

from pathlib import Path

from finetrail.governance import keys as ed25519
from finetrail.governance.gate.evaluate import evaluate
from finetrail.governance.policy.load import load_policy, shipped_policies
from finetrail.governance.workspace import Workspace
from finetrail.reports.api import render_report
from finetrail.reports.loader import load_evidence
from tests.support.workspaces import add_reviewers, approve, build_workspace

EU = next(p for p in shipped_policies() if p.stem == "eu-ai-act-high-risk")


def _forge_approval(root: Path, name: str) -> None:
    """An approval signed by a key that no keyring trusts."""
    ws = Workspace.open(root)
    key = ed25519.generate_key()
    keyid = ed25519.keyid_of(key.public_key())
    payload = dict(ws.ledger.entries()[-1].payload)
    payload.update(reviewer=name, keyid=keyid, role="model-risk")
    ws.append_event("review.approve", actor=name, payload=payload, signer=keyid, sign=key.sign)


def test_dossier_and_gate_agree_on_every_approval(
    tmp_path: Path, use_contract_kinds: object
) -> None:
    root = build_workspace(tmp_path / "ws").root
    keys = add_reviewers(root, tmp_path / "keys")
    approve(root, keys, (("bob", "model-risk"),))
    extra = tmp_path / "note.txt"
    extra.write_text("a later change to the release")
    Workspace.open(root).add_artifact(extra, "artifacts/note.txt", actor="alice")  # bob: stale
    approve(root, keys, (("carol", "privacy"),))  # carol: current
    _forge_approval(root, "mallory")  # mallory: invalid

    decision = evaluate(workspace=root, policy=load_policy(EU))
    ev = load_evidence(root)
    states = {r["reviewer"]: r["state"] for r in ev.reviews}
    assert states == {"bob": "stale", "carol": "current", "mallory": "invalid"}
    approvals = decision.approvals
    assert ev.approvals == 1 == len(approvals.approvers)
    assert approvals.approvers == ("carol (privacy)",)
    counted = [
        r["reviewer"] for r in ev.reviews if r["decision"] == "approve" and r["state"] == "current"
    ]
    assert counted == ["carol"]

    result = render_report(workspace=root, formats=("html",))
    html = (result.out / "index.html").read_text("utf-8")
    assert "1 current approval(s) of 3 review event(s)" in html
    section = html[html.index('<section id="reviews">') : html.index('<section id="integrity">')]
    for state in ("stale", "current", "invalid"):
        assert f">{state}<" in section
