"""A workspace made without --purpose and --provider still renders: the exports say the value
was not recorded (the SPDX model refuses None: "Value must be of type str. Got NoneType")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetrail.cli import main
from finetrail.governance.workspace import Workspace
from tests.support import sample_release


@pytest.fixture
def unstated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    init = Workspace.init.__func__  # type: ignore[attr-defined]

    def without_purpose_or_provider(cls: type[Workspace], root: Any, **kw: Any) -> Workspace:
        kw.pop("provider", None)
        kw.pop("intended_purpose", None)
        return init(cls, root, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(Workspace, "init", classmethod(without_purpose_or_provider))
    root = tmp_path / "ws"
    sample_release.build(root)
    meta = json.loads((root / "workspace.json").read_text())
    assert meta["intended_purpose"] == meta["provider"] == ""
    return root


def test_report_renders_every_format_without_purpose_or_provider(
    unstated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["report", str(unstated), "--format", "md,cyclonedx,spdx,html"])
    _, err = capsys.readouterr()
    assert code == 0, err
    spdx = (unstated / "dossier" / "spdx.json").read_text()
    assert '"ai_informationAboutApplication": "not recorded (finetrail init --purpose)"' in spdx
    # no provider: the owner stands as the supplier (who is accountable), never None
    assert '"name": "ml-platform team"' in spdx
