"""Golden files: each pack rendered from the sample evidence must match tests/reports/golden/.

Regenerate after an intended change with

    FINETRAIL_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/reports/test_reports_golden.py

then review the diff of tests/reports/golden/ before committing it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support.sample_release import build_fixed, report

GOLDEN = Path(__file__).resolve().parent / "golden"
REGEN = os.environ.get("FINETRAIL_REGEN_GOLDEN") == "1"
PACKS = (
    "annex_iv.md",
    "nist_ai_rmf.md",
    "README.md",
    "coverage.md",
    "coverage.json",
    "bom.cdx.json",
    "spdx.json",
    "index.html",
    "diff.md",
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("golden")
    build_fixed(base / "a", variant="a")
    build_fixed(base / "b", variant="b")
    code, _, err = report(
        [
            "report",
            str(base / "b"),
            "--compare",
            str(base / "a"),
            "--format",
            "html,md,cyclonedx,spdx",
        ]
    )
    assert code == 0, err
    return base / "b" / "dossier"


def _normalise(name: str, text: str) -> str:
    if name == "index.html":  # charts are matplotlib's bytes; the chart tests cover them
        text = re.sub(r"<svg .*?</svg>", "<svg>(chart)</svg>", text, flags=re.S)
    return text


@pytest.mark.parametrize("name", [*PACKS, "datasheet"])
def test_pack_matches_golden(rendered: Path, name: str) -> None:
    if name == "datasheet":
        path = next(
            p
            for p in sorted((rendered / "datasheets").glob("*.md"))
            if p.name.startswith("support-tickets-masked")
        )
    else:
        path = rendered / name
    actual = _normalise(name, path.read_text())
    golden = GOLDEN / (f"{name}.golden" if name != "datasheet" else "datasheet.md.golden")
    if REGEN:
        golden.write_text(actual)
    if not golden.exists():
        pytest.fail(f"no golden file {golden.name}; run with FINETRAIL_REGEN_GOLDEN=1 to create it")
    assert actual == golden.read_text(), (
        f"{name} differs from {golden}; if the change is intended, regenerate with "
        "FINETRAIL_REGEN_GOLDEN=1 and review the diff"
    )
