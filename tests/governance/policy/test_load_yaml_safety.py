"""Policy YAML that could hang or crash a loader: refused fast, with the line, exit 2."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from finetrail.cli import main
from finetrail.errors import ConfigError
from finetrail.governance.io import load_yaml_strict
from finetrail.governance.policy.load import load_policy

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
SHIPPED = Path(__file__).resolve().parents[3] / "policies" / "development.yaml"


def test_the_alias_bomb_is_refused_in_well_under_a_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    t0 = time.monotonic()
    code = main(["policy", "lint", str(bomb)])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2 and elapsed < 1.0, elapsed
    assert err.startswith(f"error: {bomb}: field 'b[0]': invalid policy (8 problems):\n")
    assert (
        "  line 1, column 4: b[0]: YAML alias of the value at line 1: anchors and aliases "
        "(&name, *name) are not allowed in policy files; write the value out\n"
    ) in err
    assert "Traceback" not in err


def test_an_alias_inside_a_real_policy_names_its_place(tmp_path: Path) -> None:
    text = SHIPPED.read_text().replace(
        "required_evidence:\n  - training", "required_evidence: &req\n  - training\nalso: *req"
    )
    p = tmp_path / "p.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_policy(p)
    assert err.value.field == "also"
    assert "also: YAML alias of the value at line" in err.value.what
    assert "invalid policy (1 problem)" in err.value.what


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "threshold: 10.0",
            "threshold: " + "9" * 5000,
            "rules[2].threshold: unreadable value: Exceeds the limit (4300 digits) for integer "
            "string conversion: value has 5000 digits",
        ),
        (
            "threshold: 10.0",
            "threshold: .inf",
            "rules[2].threshold: not a finite number (.inf and .nan are not allowed)",
        ),
        (
            'version: "1.1.0"',
            "version: 2024-13-45",
            "version: unreadable value: month must be in 1..12",
        ),
    ],
)
def test_a_value_the_constructor_cannot_make_is_a_problem_not_a_crash(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(SHIPPED.read_text().replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_policy(p)
    assert message in err.value.what
    assert "(1 problem)" in err.value.what


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("rules: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError) as err:
        load_policy(p)
    assert err.value.path == str(p)
    assert err.value.what.startswith("malformed YAML at line 1, column ")


@pytest.mark.parametrize("kind", ["directory", "loop", "fifo"])
def test_a_policy_path_that_is_not_a_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    import os

    p = tmp_path / "p.yaml"
    if kind == "directory":
        p.mkdir()
        expected = "expected a file, found a directory"
    elif kind == "loop":
        p.symlink_to(p.name)
        expected = "symlink loop (too many levels of symbolic links)"
    else:
        os.mkfifo(p)
        expected = "not a regular file (a FIFO, device or socket is in its place)"
    assert main(["policy", "lint", str(p)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {p}: {expected}\n")


# -- the helper other configuration loaders can use --------------------------------------------------
def test_load_yaml_strict_reads_plain_yaml_and_refuses_aliases_and_depth() -> None:
    assert load_yaml_strict("a: [1, {b: 2}]\nc: &x 3\n", source="f.yaml") == {
        "a": [1, {"b": 2}],
        "c": 3,
    }
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_yaml_strict(BILLION_LAUGHS, source="f.yaml")
    assert time.monotonic() - t0 < 1.0
    assert "anchors and aliases (&name, *name) are not allowed" in err.value.what
    with pytest.raises(ConfigError, match="nested more than 64 levels"):
        load_yaml_strict("a: " + "[" * 70 + "]" * 70, source="f.yaml")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_yaml_strict("a: !!python/object/apply:os.system [id]", source="f.yaml")
