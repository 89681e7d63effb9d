"""Evidence paths: the one convention by which policies address values in evidence records.

Grammar::

    path  := kind [index] ('.' step)*
    kind  := a name from EVIDENCE_KINDS (it may contain dots: ``probes.exposure``)
             or a computed kind (``reviews``)
    step  := name index*         name := [A-Za-z0-9_-]+
    index := '[*]' | '[N]'

A kind with ``many=True`` (``datasets``, ``gate``) is a list of records and must be followed by
``[*]`` (every record) or ``[N]`` (the N-th record in file-name order). Inside a record, ``[*]``
addresses every item of a list or every value of a mapping, ``[N]`` one item of a list. A dotted
name after a mapping is a key (``pii.counts.US_SSN``, ``by_repetition.16.max_bits``).

Two uses, one parser:

- :func:`check_path` (``policy lint``): the path must name a registered kind and walk the record
  class's pydantic fields (mappings accept any key). Problems are returned, not raised.
- :func:`resolve` (``gate``): the path is evaluated over the records loaded from a workspace
  (:class:`EvidenceSet`); it yields every concrete value with the file and digest it came from,
  and says precisely what resolved to nothing.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from pydantic import BaseModel

from finetrail.governance.evidence import registry
from finetrail.governance.evidence.store import EvidenceSet, LoadedRecord

Index = Literal["*"] | int
Token = tuple[Literal["key"], str] | tuple[Literal["item"], Index]

_SEGMENT = re.compile(r"^([A-Za-z0-9_-]+)((?:\[(?:\*|\d+)\])*)$")
_INDEX = re.compile(r"\[(\*|\d+)\]")


class PathError(ValueError):
    """A path that does not parse or names no kind."""


@dataclass(frozen=True)
class EvidencePath:
    text: str
    kind: str
    many: bool
    computed: bool
    kind_index: Index | None
    tokens: tuple[Token, ...]


def kind_names() -> list[str]:
    return [k.name for k in registry.EVIDENCE_KINDS] + [k.name for k in registry.COMPUTED_KINDS]


_computed = registry.computed_kind


def parse_path(text: str) -> EvidencePath:
    """Parse ``text``; raises :class:`PathError` naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise PathError("empty evidence path")
    segments: list[tuple[str, list[Index]]] = []
    for raw in text.split("."):
        m = _SEGMENT.match(raw)
        if not m:
            raise PathError(f"malformed path segment {raw!r} in {text!r}")
        idx: list[Index] = ["*" if i == "*" else int(i) for i in _INDEX.findall(m.group(2))]
        segments.append((m.group(1), idx))
    # the longest prefix of plain names that is a kind; only its last segment may carry an index
    for n in range(len(segments), 0, -1):
        head = segments[:n]
        if any(idx for _, idx in head[:-1]):
            continue
        name = ".".join(s for s, _ in head)
        kind = registry.kind_by_name(name)
        comp = _computed(name)
        if kind is None and comp is None:
            continue
        many = bool(kind and kind.many)
        kind_idx = head[-1][1]
        if many and len(kind_idx) != 1:
            raise PathError(
                f"{name!r} is a list of records: write {name}[*] (every record) or {name}[N]"
            )
        if not many and kind_idx:
            raise PathError(f"{name!r} is a single record: it takes no [index]")
        tokens: list[Token] = []
        for seg, idx in segments[n:]:
            tokens.append(("key", seg))
            tokens.extend(("item", i) for i in idx)
        return EvidencePath(
            text, name, many, comp is not None, kind_idx[0] if many else None, tuple(tokens)
        )
    known = ", ".join(sorted(kind_names()))
    raise PathError(f"unknown evidence kind in {text!r} (known kinds: {known})")


def parse_tokens(text: str) -> tuple[Token, ...]:
    """Parse a path relative to one record (``pii.residual``, ``derived_from``)."""
    if not isinstance(text, str) or not text.strip():
        raise PathError("empty path")
    tokens: list[Token] = []
    for raw in text.split("."):
        m = _SEGMENT.match(raw)
        if not m:
            raise PathError(f"malformed path segment {raw!r} in {text!r}")
        tokens.append(("key", m.group(1)))
        tokens.extend(("item", "*" if i == "*" else int(i)) for i in _INDEX.findall(m.group(2)))
    return tuple(tokens)


def check_relative(kind_path: str, text: str) -> PathCheck:
    """Check a path relative to a record of the kind that ``kind_path`` names."""
    try:
        path = parse_path(kind_path)
        tokens = parse_tokens(text)
        cls = model_for(path)
    except PathError as exc:
        return PathCheck(str(exc), frozenset())
    except (ImportError, AttributeError, TypeError) as exc:
        return PathCheck(f"the record class cannot be loaded: {exc}", frozenset())
    ends: set[str] = set()
    return PathCheck(_walk(cls, tokens, path.kind, ends), frozenset(ends))


def values_at(data: Any, tokens: Sequence[Token], at: str = "") -> Resolution:
    """Resolve record-relative ``tokens`` inside one record's data."""
    res = Resolution()
    _descend(data, tokens, at, LoadedRecord("", "", None, None), res)
    return res


def render_tokens(tokens: Sequence[Token]) -> str:
    out = ""
    for tag, val in tokens:
        out += f".{val}" if tag == "key" else f"[{val}]"
    return out


def model_for(path: EvidencePath) -> type[BaseModel]:
    if path.computed:
        comp = _computed(path.kind)
        assert comp is not None
        return comp.model
    kind = registry.kind_by_name(path.kind)
    assert kind is not None
    return registry.record_class(kind)


# -- lint: walk the record class's fields ----------------------------------------------------
ValueKind = Literal["number", "string", "bool", "null", "object", "list", "any"]


@dataclass(frozen=True)
class PathCheck:
    problem: str | None
    terminal: frozenset[str]  # ValueKind names the path can end on


def check_path(text: str) -> PathCheck:
    """Check a path against the registry and the record class's fields (for ``policy lint``)."""
    try:
        path = parse_path(text)
        cls = model_for(path)
    except PathError as exc:
        return PathCheck(str(exc), frozenset())
    except (ImportError, AttributeError, TypeError) as exc:
        return PathCheck(
            f"the record class of kind {text.split('.')[0]!r} cannot be loaded: {exc}", frozenset()
        )
    ends: set[str] = set()
    problem = _walk(cls, path.tokens, path.kind, ends)
    return PathCheck(problem, frozenset(ends))


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _branches(tp: Any) -> list[Any]:
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return [b for b in typing.get_args(tp) if b is not type(None)]
    return [tp]


def _scalar_kind(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is Any:
        return "any"
    if origin is Literal:
        vals = typing.get_args(tp)
        if all(isinstance(v, bool) for v in vals):
            return "bool"
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            return "number"
        return "string"
    if tp is bool:
        return "bool"
    if isinstance(tp, type) and issubclass(tp, int | float):
        return "number"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "object"
    if origin in (dict, Mapping) or tp is dict:
        return "object"
    if origin in (list, tuple, set, frozenset, Sequence) or tp in (list, tuple):
        return "list"
    return "string"  # str, datetime, date, enums and other scalars serialise as strings


def _walk(tp: Any, tokens: Sequence[Token], where: str, ends: set[str]) -> str | None:
    """Follow ``tokens`` through type ``tp``; None when some branch of the type accepts them."""
    problems: list[str] = []
    for branch in _branches(tp):
        problem = _walk_branch(branch, tokens, where, ends)
        if problem is None:
            return None
        problems.append(problem)
    return problems[0] if problems else f"{where}: no type"


def _walk_branch(tp: Any, tokens: Sequence[Token], where: str, ends: set[str]) -> str | None:
    if not tokens:
        ends.add(_scalar_kind(tp))
        return None
    if tp is Any:
        ends.add("any")
        return None
    (tag, val), rest = tokens[0], tokens[1:]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tag != "key":
            return f"{where} is a record, not a list: [{val}] does not apply"
        assert isinstance(val, str)
        fields = tp.model_fields
        if val not in fields:
            known = ", ".join(sorted(fields))
            return f"{where} has no field {val!r} ({tp.__name__} fields: {known})"
        return _walk(fields[val].annotation, rest, f"{where}.{val}", ends)
    if origin in (dict, Mapping) or tp is dict:
        value_tp = args[1] if len(args) == 2 else Any
        if tag == "item" and val != "*":
            return f"{where} is a mapping: use .KEY or [*], not [{val}]"
        label = f"{where}.{val}" if tag == "key" else f"{where}[*]"
        return _walk(value_tp, rest, label, ends)
    if origin in (list, tuple, set, frozenset, Sequence) or tp in (list, tuple):
        if tag != "item":
            return f"{where} is a list: address its items with [*] or [N] before .{val}"
        if origin is tuple and args and args[-1] is not Ellipsis:
            elem: Any = Union[tuple(args)] if len(args) > 1 else args[0]  # noqa: UP007
        else:
            elem = args[0] if args else Any
        return _walk(elem, rest, f"{where}[{val}]", ends)
    kind = _scalar_kind(tp)
    step = f".{val}" if tag == "key" else f"[{val}]"
    return f"{where} is a {kind} value: {step} goes past its end"


# -- loading records from a workspace ----------------------------------------------------------
# -- resolving ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    pointer: str  # the concrete path, e.g. datasets[1].pii.residual
    value: Any
    record: LoadedRecord


@dataclass
class Resolution:
    matches: list[Match] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what resolved to nothing, and why
    errors: list[str] = field(default_factory=list)  # records that could not be read
    records: list[LoadedRecord] = field(default_factory=list)  # every record consulted


Predicate = typing.Callable[[Any, str], bool]


def resolve(
    path: EvidencePath,
    evidence: EvidenceSet,
    *,
    keep: Predicate | None = None,
    keep_items: Predicate | None = None,
) -> Resolution:
    """Every value ``path`` addresses; ``keep(record_data, pointer)`` filters records first,
    ``keep_items(item, pointer)`` the items of the path's first ``[*]`` inside a record."""
    res = Resolution()
    records = evidence.records(path.kind)
    if path.many:
        idx = path.kind_index
        chosen = (
            list(enumerate(records))
            if idx == "*"
            else ([(idx, records[idx])] if isinstance(idx, int) and idx < len(records) else [])
        )
        if not chosen:
            res.missing.append(
                f"{path.kind}[{idx}]: no such record in the workspace"
                if records
                else f"no {path.kind} records in the workspace"
            )
    else:
        chosen = [(0, records[0])] if records else []
        if not chosen:
            res.missing.append(f"no {path.kind} evidence in the workspace")
    kept = 0
    for i, rec in chosen:
        base = f"{path.kind}[{i}]" if path.many else path.kind
        res.records.append(rec)
        if rec.data is None:
            res.errors.append(f"{rec.rel}: {rec.error}")
            continue
        if keep is not None and not keep(rec.data, base):
            continue
        kept += 1
        if keep_items is None:
            _descend(rec.data, path.tokens, base, rec, res)
        else:
            _descend_filtered(rec.data, path.tokens, base, rec, res, keep_items)
    if keep is not None and chosen and kept == 0 and not res.errors:
        res.missing.append(f"no {path.kind} record satisfies the rule's 'where' condition")
    return res


STAR: Token = ("item", "*")


def item_prefix(path: EvidencePath) -> str | None:
    """The path up to and including its first ``[*]`` inside the record (what an item-level
    ``where`` filters), or None when the path has none."""
    if STAR not in path.tokens:
        return None
    head = path.tokens[: path.tokens.index(STAR) + 1]
    return path.kind + render_tokens(head)


def _descend_filtered(
    value: Any,
    tokens: Sequence[Token],
    at: str,
    rec: LoadedRecord,
    res: Resolution,
    keep_items: Predicate,
) -> None:
    if STAR not in tokens:
        res.errors.append(f"{at}: an item-level 'where' needs a [*] in the path")
        return
    star = list(tokens).index(STAR)
    head = Resolution()
    _descend(value, tokens[: star + 1], at, rec, head)
    res.missing += head.missing
    kept = 0
    for m in head.matches:
        if keep_items(m.value, m.pointer):
            kept += 1
            _descend(m.value, tokens[star + 1 :], m.pointer, rec, res)
    if head.matches and kept == 0:
        res.missing.append(f"no item of {at}{render_tokens(tokens[:star])} satisfies 'where'")


def _descend(
    value: Any, tokens: Sequence[Token], at: str, rec: LoadedRecord, res: Resolution
) -> None:
    if not tokens:
        res.matches.append(Match(at, value, rec))
        return
    (tag, key), rest = tokens[0], tokens[1:]
    if value is None:
        res.missing.append(f"{at} is null")
        return
    if tag == "key":
        if not isinstance(value, dict) or key not in value:
            res.missing.append(f"{at}.{key} is absent")
            return
        _descend(value[key], rest, f"{at}.{key}", rec, res)
        return
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = [(f"{at}.{k}", v) for k, v in sorted(value.items())]
    elif isinstance(value, list):
        items = [(f"{at}[{i}]", v) for i, v in enumerate(value)]
    else:
        res.missing.append(f"{at} is not a list")
        return
    if key == "*":
        if not items:
            res.missing.append(f"{at} is empty")
        for label, item in items:
            _descend(item, rest, label, rec, res)
        return
    assert isinstance(key, int)
    if isinstance(value, dict) or key >= len(items):
        res.missing.append(f"{at}[{key}] is absent")
        return
    _descend(items[key][1], rest, items[key][0], rec, res)
