"""The release page's comparison with the previous release of the same model (``finetrail diff``)."""

from __future__ import annotations

import html
import re

from finetrail.console.releases import _version_key
from finetrail.reports.api import compare_workspaces
from tests.console.conftest import Env


def _section(page: str) -> str:
    return page.split('<section id="changes">', 1)[1].split('<section id="dossier-sections">')[0]


def _rows(part: str) -> list[tuple[str, str, str]]:
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", part)
    return [(html.unescape(i), html.unescape(x), html.unescape(y)) for i, x, y in rows]


def test_the_release_page_shows_the_diff_from_the_previous_release(console_env: Env) -> None:
    c = console_env.client("audrey")
    a, b = console_env.rid(console_env.a), console_env.rid(console_env.b)
    # both fixture releases are support-assistant 1.0.0, created at the same (pinned) time: the
    # order falls back to the path below the root, support-assistant/0.9.0 first
    part = _section(c.http.get(f"/r/{a}").text)
    want = compare_workspaces(before=console_env.b, after=console_env.a)
    assert want.changes, "the fixture's two releases differ (manifest digest, adapter)"
    assert f'Compared with <a href="/r/{b}">support-assistant 1.0.0</a>' in part, part[:300]
    assert "(<code>support-assistant/0.9.0</code>), the release of the same model created before" in part
    assert f"{len(want.changes)} change(s)" in part
    assert _rows(part) == [
        (ch.item, ch.before, ch.after) for _, changes in want.by_area() for ch in changes
    ]


def test_a_later_version_is_compared_with_the_latest_earlier_one(console_env: Env) -> None:
    from finetrail.governance.workspace import Workspace

    new = Workspace.init(
        console_env.root / "support-assistant" / "1.1.0",
        model="support-assistant",
        version="1.1.0",
        owner="alice",
        intended_purpose="answer customer-support questions",
        provider="Example Org",
    )  # created now, after the fixture's pinned time
    page = console_env.client("audrey").http.get(f"/r/{console_env.rid(new.root)}").text
    part = _section(page)
    want = compare_workspaces(before=console_env.a, after=new.root)
    assert f'<a href="/r/{console_env.rid(console_env.a)}">' in part
    assert ("version", "1.0.0", "1.1.0") in _rows(part)
    assert _rows(part) == [
        (ch.item, ch.before, ch.after) for _, changes in want.by_area() for ch in changes
    ]


def test_the_first_release_of_a_model_says_there_is_nothing_to_compare(console_env: Env) -> None:
    page = console_env.client("audrey").http.get(f"/r/{console_env.rid(console_env.b)}").text
    assert (
        "No comparison: no earlier release of support-assistant under this console&#39;s root"
        in _section(page)
    )


def test_versions_order_numerically() -> None:
    ordered = sorted(["1.10.0", "1.9.0", "0.9.0", "1.0.0-dp", "1.0.0"], key=_version_key)
    assert ordered == ["0.9.0", "1.0.0", "1.0.0-dp", "1.9.0", "1.10.0"]
