"""Every chart image on the release page says in its alternative text what it shows (its figures,
from the evidence it is drawn from); a chart the evidence cannot draw is no image at all."""

from __future__ import annotations

import html
import re

from finetrail.console.app import CHARTS
from finetrail.reports.loader import load_evidence
from finetrail.reports.model import fmt
from tests.console.conftest import Env

IMG = re.compile(r'<img src="/r/[0-9a-f]+/chart/(\w+)\.svg" alt="([^"]*)">')


def test_each_chart_image_describes_its_figures(console_env: Env) -> None:
    c = console_env.client("audrey")
    rid = console_env.rid(console_env.a)
    page = c.http.get(f"/r/{rid}").text
    imgs = {name: html.unescape(alt) for name, alt in IMG.findall(page)}
    assert set(imgs) == set(CHARTS)  # the fixture's evidence draws all five
    for name, alt in imgs.items():
        assert len(alt) > 40 and "needs input" not in alt.lower() and alt != f"{name} chart"
        r = c.http.get(f"/r/{rid}/chart/{name}.svg")
        assert r.status_code == 200 and r.text.lstrip().startswith(("<?xml", "<svg"))
    ev = load_evidence(console_env.a, check_integrity=False)
    curve = ev.training["dp"]["epsilon_per_step"]
    assert (
        f"rising to {fmt(curve[-1]['epsilon'])} at step {fmt(curve[-1]['step'])}" in imgs["epsilon"]
    )
    assert ev.training["dp"]["accountant"] in imgs["epsilon"]
    for name, attack in ev.probes["membership"]["attacks"].items():
        assert f"{name}: AUC {fmt(attack['auc'])}" in imgs["membership"]
    for k, rep in ev.probes["exposure"]["by_repetition"].items():
        assert (
            f"inserted {k}x (n={fmt(rep['n'])}): mean {fmt(rep['mean_bits'])} bits"
            in imgs["exposure"]
        )
    for d in ev.datasets:
        assert str(d["name"]) in imgs["lineage"]
    assert "Bar charts of the bias audit" in imgs["bias"]


def test_a_release_without_the_evidence_shows_no_chart_image(console_env: Env) -> None:
    from finetrail.governance.workspace import Workspace

    bare = Workspace.init(
        console_env.root / "other-model" / "0.1.0",
        model="other-model",
        version="0.1.0",
        owner="alice",
        intended_purpose="nothing yet",
        provider="Example Org",
    )
    page = console_env.client("audrey").http.get(f"/r/{console_env.rid(bare.root)}").text
    assert IMG.findall(page) == []
    assert "Needs input: the training evidence has no dp.epsilon_per_step" in page
    assert "Not measured: no membership-inference evidence" in page
