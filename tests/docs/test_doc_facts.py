"""What the documents say about the demo matches what the demo prints and its help says."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from finetrail.demo.pipeline import demo_cmd
from finetrail.demo.summary import summary_table

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_lists_the_summary_rows_the_demo_prints() -> None:
    printed = summary_table([SimpleNamespace(name="control", results={})])  # type: ignore[list-item]
    labels = [re.split(r"\s{2,}", line)[0] for line in printed.splitlines()[2:]]
    text = (ROOT / "docs" / "quickstart.md").read_text()
    table = text[text.index("| row | what it shows |") :].split("\n\n")[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert rows == labels


def test_readme_and_quick_help_state_the_same_measured_time() -> None:
    pattern = r"about (\d+) s on an idle\s+2-core"
    option = next(p for p in demo_cmd.params if p.name == "quick")
    in_help = re.findall(pattern, option.help or "")
    in_readme = re.findall(pattern, (ROOT / "README.md").read_text())
    in_quickstart = re.findall(
        r"and about (\d+) s when idle", (ROOT / "docs/quickstart.md").read_text()
    )
    assert in_help and in_help == in_readme == in_quickstart, (in_help, in_readme, in_quickstart)
