"""Loading and linting policy files, with line and column in every error.

The YAML is composed into nodes (PyYAML keeps each node's start mark), turned into plain data
while recording where every key and value sits, and validated by :class:`Policy`. Each pydantic
error location is mapped back to the node it came from. ``policy lint`` adds the checks that need
the evidence registry: every path must name a registered kind and walk its record class,
rule ids must be unique, waivers must name rules, required evidence must name kinds.

All problems are collected, then raised together as one :class:`ConfigError` (exit 2).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from finetrail.errors import ConfigError, InputError
from finetrail.governance.evidence import paths as evpaths
from finetrail.governance.evidence import registry
from finetrail.governance.io import read_text_strict, sha256_bytes
from finetrail.governance.policy.operators import ORDERING
from finetrail.governance.policy.rules import Policy, Rule

Loc = tuple[Any, ...]
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DEPTH = 40


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class Problem:
    position: Position
    field: str
    message: str
    refused: bool = (
        False  # the YAML itself is refused (alias, unreadable value): nothing to validate
    )

    def render(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"line {self.position.line}, column {self.position.column}: {where}{self.message}"


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    sha256: str  # of the file's bytes: what the gate decision and attestation name
    marks: dict[Loc, tuple[Position, Position]]  # data location -> (key position, value position)

    def position(self, *loc: Any) -> Position:
        """Where ``loc`` (e.g. ``("rules", 3)``) sits in the file; the nearest parent if absent."""
        cur: Loc = ()
        for part in loc:
            if (*cur, part) in self.marks:
                cur = (*cur, part)
        return self.marks[cur][1]

    def rule_position(self, index: int) -> Position:
        return self.position("rules", index)


def _pos(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _label(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _to_data(
    node: yaml.Node,
    loc: Loc,
    loader: yaml.SafeLoader,
    marks: dict[Loc, tuple[Position, Position]],
    problems: list[Problem],
    seen: dict[int, bool] | None = None,
) -> Any:
    """Plain data from a composed node, recording positions.

    A node met twice is an alias (``*name``): refused without being expanded, so that an alias
    bomb (billion laughs) costs one pass over the file's nodes.
    """
    seen = {} if seen is None else seen
    if id(node) in seen:
        if seen[id(node)]:
            return None  # reported at its first alias
        seen[id(node)] = True
        problems.append(
            Problem(
                _pos(node),
                _label(loc),
                f"YAML alias of the value at line {_pos(node).line}: anchors and aliases "
                "(&name, *name) are not allowed in policy files; write the value out",
                refused=True,
            )
        )
        return None
    seen[id(node)] = False
    if len(loc) > MAX_DEPTH:
        problems.append(Problem(_pos(node), _label(loc), "nested too deeply"))
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        first: dict[Any, Position] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(_pos(key_node), _label(loc), "keys must be plain names"))
                continue
            key = _scalar(key_node, loc, loader, problems)
            if key is None:
                continue
            if key in first:
                prev = first[key]
                problems.append(
                    Problem(
                        _pos(key_node),
                        _label((*loc, key)),
                        f"duplicate key (first at line {prev.line})",
                    )
                )
                continue
            first[key] = _pos(key_node)
            marks[(*loc, key)] = (_pos(key_node), _pos(value_node))
            out[key] = _to_data(value_node, (*loc, key), loader, marks, problems, seen)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            marks[(*loc, i)] = (_pos(item), _pos(item))
            items.append(_to_data(item, (*loc, i), loader, marks, problems, seen))
        return items
    return _scalar(node, loc, loader, problems)


def _scalar(node: yaml.Node, loc: Loc, loader: yaml.SafeLoader, problems: list[Problem]) -> Any:
    """A scalar's value; one the constructor cannot make (an integer longer than Python converts,
    a bad date, bad base64) or a non-finite number is a problem, not an exception."""
    try:
        value = loader.construct_object(node)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        why = str(getattr(exc, "problem", None) or exc).split(";")[0].splitlines()[0]
        problems.append(Problem(_pos(node), _label(loc), f"unreadable value: {why}", True))
        return None
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(
            Problem(
                _pos(node),
                _label(loc),
                "not a finite number (.inf and .nan are not allowed)",
                True,
            )
        )
        return None
    return value


def _compose(
    text: str, source: str
) -> tuple[Any, dict[Loc, tuple[Position, Position]], list[Problem]]:
    marks: dict[Loc, tuple[Position, Position]] = {}
    problems: list[Problem] = []
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            pos = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
            what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise ConfigError(
                f"malformed YAML at line {pos.line}, column {pos.column}: {what}",
                path=source,
                fix="fix the YAML syntax at that position",
            ) from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"malformed YAML at line 1, column 1: {exc}", path=source) from exc
        except RecursionError as exc:
            raise ConfigError(
                f"malformed YAML at line 1, column 1: nested more than {MAX_DEPTH} levels",
                path=source,
            ) from exc
        if node is None:
            raise ConfigError(
                "empty policy at line 1, column 1: the file has no content",
                path=source,
                fix="write a policy: id, version, title, written_against and at least one rule",
            )
        marks[()] = (_pos(node), _pos(node))
        data = _to_data(node, (), loader, marks, problems)
    finally:
        loader.dispose()
    return data, marks, problems


def _pydantic_problems(
    exc: ValidationError, marks: dict[Loc, tuple[Position, Position]]
) -> list[Problem]:
    out = []
    for err in exc.errors():
        cur: Loc = ()
        for part in err["loc"]:
            if (*cur, part) in marks:
                cur = (*cur, part)
        key_pos, value_pos = marks[cur]
        kind = err["type"]
        label_loc = cur
        if kind == "missing" and err["loc"]:
            label_loc = (*cur, err["loc"][-1])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = "unknown field (not allowed here)"
            pos = key_pos
        elif kind == "missing":
            msg = "required field is missing"
            pos = value_pos
        elif kind == "too_short" and cur == ("rules",):
            if err.get("input"):
                continue  # pydantic's echo of failing items, reported one by one above
            msg = "empty policy: a policy needs at least one rule"
            pos = value_pos
        else:
            pos = value_pos
        out.append(Problem(pos, _label(label_loc), msg))
    return out


def _raise(problems: list[Problem], source: str) -> None:
    if not problems:
        problems = [Problem(Position(1, 1), "", "invalid policy")]
    problems = sorted(problems, key=lambda p: (p.position.line, p.position.column))
    n = len(problems)
    body = "\n  ".join(p.render() for p in problems)
    raise ConfigError(
        f"invalid policy ({n} problem{'s' * (n != 1)}):\n  {body}",
        path=source,
        field=problems[0].field or None,
        fix="correct the listed fields; see docs/policies.md for the format",
    )


def load_policy(path: str | Path, *, lint: bool = True) -> LoadedPolicy:
    """Read, validate and (by default) lint a policy file; raises ConfigError listing every problem."""
    p = Path(path)
    text = read_text_strict(p)
    source = str(p)
    data, marks, problems = _compose(text, source)
    refused = [p for p in problems if p.refused]
    if refused:
        _raise(refused, source)
    if not isinstance(data, dict):
        _raise(
            [*problems, Problem(marks[()][1], "", "a policy must be a mapping of fields")], source
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        _raise(problems + _pydantic_problems(exc, marks), source)
        raise AssertionError("unreachable") from exc
    loaded = LoadedPolicy(policy, p, sha256_bytes(text.encode("utf-8")), marks)
    if lint:
        problems += lint_policy(loaded)
    if problems:
        _raise(problems, source)
    return loaded


def _lint_branch(rule: Rule, at: tuple[Any, ...], add: Any) -> None:
    """The path, operator, ref and 'where' checks of one rule (or one 'any_of' alternative)."""
    assert rule.path is not None and rule.op is not None
    check = evpaths.check_path(rule.path)
    if check.problem:
        add(f"unknown evidence path {rule.path!r}: {check.problem}", *at, "path")
    elif rule.op in ORDERING and not check.terminal & {"number", "any"}:
        add(
            f"operator {rule.op!r} compares numbers, but {rule.path} holds "
            f"{'/'.join(sorted(check.terminal))} values",
            *at,
            "op",
        )
    if rule.ref is not None:
        ref = evpaths.check_path(rule.ref)
        if ref.problem:
            add(f"unknown evidence path {rule.ref!r}: {ref.problem}", *at, "ref")
        elif rule.op in ORDERING and not ref.terminal & {"number", "any"}:
            add(
                f"operator {rule.op!r} compares numbers, but {rule.ref} holds "
                f"{'/'.join(sorted(ref.terminal))} values",
                *at,
                "ref",
            )
    if rule.where is not None and not check.problem:
        parsed = evpaths.parse_path(rule.path)
        prefix = evpaths.item_prefix(parsed)
        if not parsed.many and prefix is None:
            add(
                f"'where' filters the records of a list kind, or the items of a [*] inside "
                f"one record; {rule.path!r} has neither",
                *at,
                "where",
            )
        else:
            rel = (
                evpaths.check_relative(rule.path, rule.where.path)
                if parsed.many
                else evpaths.check_path(f"{prefix}.{rule.where.path}")
            )
            if rel.problem:
                add(
                    f"unknown evidence path {rule.where.path!r}: {rel.problem}",
                    *at,
                    "where",
                    "path",
                )


def lint_policy(loaded: LoadedPolicy) -> list[Problem]:
    """Checks against the evidence registry and across rules (ids, waivers, required evidence)."""
    pol = loaded.policy
    out: list[Problem] = []

    def add(msg: str, *loc: Any) -> None:
        out.append(Problem(loaded.position(*loc), _label(loc), msg))

    first_at: dict[str, int] = {}
    for i, rule in enumerate(pol.rules):
        if rule.id in first_at:
            line = loaded.position("rules", first_at[rule.id], "id").line
            add(f"duplicate rule id {rule.id!r} (first defined at line {line})", "rules", i, "id")
        else:
            first_at[rule.id] = i
        for j, branch in enumerate(rule.branches()):
            at: tuple[Any, ...] = ("rules", i, "any_of", j) if rule.any_of else ("rules", i)
            _lint_branch(branch, at, add)
    known = {k.name for k in registry.EVIDENCE_KINDS}  # file kinds; approvals cover reviews
    for j, kind in enumerate(pol.required_evidence):
        if kind not in known:
            add(
                f"unknown evidence kind {kind!r} (known kinds: {', '.join(sorted(known))})",
                "required_evidence",
                j,
            )
    if len(set(pol.required_evidence)) != len(pol.required_evidence):
        add("required evidence lists a kind twice", "required_evidence")
    waived: dict[str, int] = {}
    for k, waiver in enumerate(pol.waivers):
        if waiver.rule not in first_at:
            add(f"waiver names no rule of this policy: {waiver.rule!r}", "waivers", k, "rule")
        if waiver.rule in waived:
            add(f"a second waiver for rule {waiver.rule!r}", "waivers", k, "rule")
        waived[waiver.rule] = k
    if pol.approvals and len(set(pol.approvals.roles)) != len(pol.approvals.roles):
        add("a role is listed twice", "approvals", "roles")
    return out


# -- finding policy files ------------------------------------------------------------------------
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def shipped_policies() -> list[Path]:
    base = resources.files("finetrail.policies")
    return sorted(Path(str(p)) for p in base.iterdir() if p.name.endswith(".yaml"))


def resolve_policy(arg: str) -> Path:
    """A policy file path, or the name of a shipped policy (``eu-ai-act-high-risk``)."""
    p = Path(arg)
    if p.is_file():
        return p
    if os.path.lexists(p):
        read_text_strict(p)  # raises naming why: a directory, a symlink loop, no permission
        raise InputError("not a regular file", path=arg, fix="give a policy file")
    name = arg.removesuffix(".yaml")  # the shipped name, with or without its file suffix
    if _NAME.match(name):
        for shipped in shipped_policies():
            if shipped.stem == name:
                return shipped
    names = ", ".join(s.stem for s in shipped_policies())
    raise InputError(
        "policy file not found",
        path=arg,
        fix=f"give a policy file, or one of the shipped policies: {names}",
    )
