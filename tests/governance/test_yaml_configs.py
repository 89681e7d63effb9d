"""Every YAML a user hands finetrail is read by the strict loader: aliases, bombs and deep nesting
are refused with the file named, before anything is expanded."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from finetrail.errors import FinetrailError
from finetrail.governance.bias._counterfactual import load_probes
from finetrail.governance.pii.config import ScanConfig

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)
DEEP = "x: " + "[" * 200 + "]" * 200 + "\n"

LOADERS: dict[str, Callable[[Path], Any]] = {
    "counterfactual probes": load_probes,
    "pii scan config": ScanConfig.load,
}


@pytest.mark.parametrize("loader", LOADERS.values(), ids=LOADERS.keys())
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (BOMB, "anchors and aliases"),
        (DEEP, "nest"),
        ("a: [unclosed\n", "malformed YAML"),
        (b"\xff\xfe: 1\n", "UTF-8"),
        (b"a: 1\x00\n", "control characters"),
    ],
    ids=["alias-bomb", "deep", "malformed", "non-utf8", "nul"],
)
def test_yaml_config_refused_naming_the_file(
    tmp_path: Path, loader: Callable[[Path], Any], content: str | bytes, message: str
) -> None:
    path = tmp_path / "config.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(FinetrailError) as info:
        loader(path)
    assert time.perf_counter() - start < 2.0
    assert message.lower() in str(info.value).lower()
    assert str(path) in str(info.value)


@pytest.mark.parametrize("loader", LOADERS.values(), ids=LOADERS.keys())
def test_yaml_config_that_is_a_directory(tmp_path: Path, loader: Callable[[Path], Any]) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(FinetrailError) as info:
        loader(tmp_path / "dir.yaml")
    assert "dir.yaml" in str(info.value)
