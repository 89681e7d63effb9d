"""No raw control bytes from user strings reach a terminal or a rendered document."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from finetrail.textsafe import neutralise, neutralise_value

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = "evil\x1b]0;pwned\x07\x1b[31mred\x9b2J\u202egnp.exe\r\x00end"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("\x1b[31m", "\u241b[31m"),
        ("bell\x07", "bell\u2407"),
        ("del\x7f", "del\u2421"),
        ("csi\x9b", "csi\ufffd"),
        ("\u202eabc\u2066", "\ufffdabc\ufffd"),
        ("cr\r", "cr\u240d"),
        ("zero\u200bwidth", "zero\ufffdwidth"),
    ],
)
def test_neutralise_makes_controls_visible(text: str, expected: str) -> None:
    assert neutralise(text) == expected
    assert not RAW.search(neutralise(text))


def test_neutralised_values_stay_valid_json() -> None:
    value = {"name\x1b": [HOSTILE, 1, None]}
    encoded = json.dumps(neutralise_value(value), ensure_ascii=False)
    assert not RAW.search(encoded)
    assert json.loads(encoded)["name\u241b"][0].startswith("evil\u241b]0;pwned\u2407")


@pytest.mark.parametrize("field", ["model", "owner", "description", "purpose", "provider"])
def test_hostile_workspace_fields_never_reach_terminal_or_markdown_raw(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]], field: str
) -> None:
    values = {
        "model": "support-assistant",
        "version": "1.0.0",
        "owner": "alice",
        "description": "d",
        "purpose": "answer support questions",
        "provider": "Example Org",
    }
    values[field] = HOSTILE
    ws = tmp_path / "ws"
    args = ["init", str(ws)]
    for k, v in values.items():
        args += [f"--{k}", v]
    code, out, err = run_cli(*args)
    assert not RAW.search(out + err), out + err
    if code != 0:
        assert code == 2  # refused with a message naming the field
        return
    code, out, err = run_cli("verify", str(ws))
    assert not RAW.search(out + err)
    code, out, err = run_cli("report", str(ws), "--format", "md,html")
    assert not RAW.search(out + err)
    rendered = [p for p in (ws / "dossier").rglob("*") if p.suffix in (".md", ".html")]
    assert rendered
    for p in rendered:
        assert not RAW.search(p.read_text("utf-8")), p.name
