"""The extractor of runnable documentation blocks (tests/support/doc_blocks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.doc_blocks import extract

DOC = """# Title

```bash
not marked: never run
```

<!-- doctest: write conf/a.yaml -->
```yaml
a: 1
```

<!-- doctest: run -->
```bash
finetrail init ws \\
    --model m
```

<!-- doctest: run exit=1 -->
````sh
finetrail gate ws
```
````
"""


def test_marked_blocks_are_extracted_in_order(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_text(DOC)
    blocks = extract(path)
    assert [(b.kind, b.target, b.exit_code, b.line) for b in blocks] == [
        ("write", "conf/a.yaml", 0, 8),
        ("run", None, 0, 13),
        ("run", None, 1, 19),
    ]
    assert blocks[0].text == "a: 1\n"
    assert blocks[1].text == "finetrail init ws \\\n    --model m\n"
    assert blocks[2].text == "finetrail gate ws\n```\n"  # a longer fence holds a shorter one


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "<!-- doctest: run -->\nplain text\n",
            "doc.md:1: a doctest marker must be followed by a fence",
        ),
        ("<!-- doctest: run -->\n```bash\necho\n", "doc.md:2: the fenced block is never closed"),
        (
            "<!-- doctest: walk -->\n```\n```\n",
            "doc.md:1: unknown doctest marker 'walk' (run, write)",
        ),
        (
            "<!-- doctest: run exit=x -->\n```\n```\n",
            "doc.md:1: unknown doctest option 'exit=x' (exit=N)",
        ),
        (
            "<!-- doctest: write -->\n```\n```\n",
            "doc.md:1: `doctest: write` needs one PATH, got ''",
        ),
    ],
)
def test_bad_markers_are_errors_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "doc.md"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        extract(path)
    assert str(info.value) == f"{path.parent}/{message}"
