"""A sound pre-filter for Presidio recognisers: skip a recogniser on text it cannot match.

For each regex a recogniser runs, :func:`requirement` derives a *necessary condition*: a small
regex (one to three adjacent characters) that every match of the pattern must contain. If a
text contains none of a recogniser's conditions, that recogniser cannot report anything in it,
so it need not run; findings stay identical to running every recogniser (the equality test
compares with Presidio's own ``BatchAnalyzerEngine``).

The condition is computed from the parsed pattern (``re._parser``), so it follows Presidio's
patterns as they change. Anything the analysis does not understand yields no condition, and the
recogniser then always runs: unknown means "run it", never "skip it".

How it picks a condition: in a sequence every item must match, so any single item's condition
is necessary; runs of adjacent single-character items (``\\.`` then the first letter of a TLD)
give multi-character conditions. An alternation needs one condition per branch (their union).
Among the candidates it keeps the one least likely to occur in ordinary text, by a fixed
character-frequency table (which only affects speed, never correctness).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser as _p  # type: ignore[attr-defined]
from typing import Any

MAX_RUN = 3

_ZERO_WIDTH = {_c.AT, _c.ASSERT, _c.ASSERT_NOT}
_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)}
_CATEGORIES = {
    _c.CATEGORY_DIGIT: r"\d",
    _c.CATEGORY_NOT_DIGIT: r"\D",
    _c.CATEGORY_SPACE: r"\s",
    _c.CATEGORY_NOT_SPACE: r"\S",
    _c.CATEGORY_WORD: r"\w",
    _c.CATEGORY_NOT_WORD: r"\W",
}

# A rough character distribution of prose (weights, not probabilities).
_WEIGHTS: dict[str, float] = {" ": 15.0, "\n": 0.5, ".": 1.0, ",": 1.0}
for _ch in "abcdefghijklmnopqrstuvwxyz":
    _WEIGHTS[_ch] = 3.0
for _ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _WEIGHTS[_ch] = 0.4
for _ch in "0123456789":
    _WEIGHTS[_ch] = 0.3
for _ch in "!\"#$%&'()*+-/:;<=>?@[\\]^_`{|}~":
    _WEIGHTS.setdefault(_ch, 0.1)
for _ch in "éèàüöäñçß":
    _WEIGHTS[_ch] = 0.05
_TOTAL = sum(_WEIGHTS.values())

Compiler = Callable[[str, int], Any]  # re.compile or regex.compile


@dataclass(frozen=True)
class Requirement:
    """Every match contains a match of at least one of ``fragments`` (regex sources)."""

    fragments: tuple[str, ...]
    flags: int
    likelihood: float

    def source(self) -> str:
        return "|".join(f"(?:{f})" for f in self.fragments)


# A position is one character a match must have there: the regex source of a one-character
# matcher, or a union of such sources (the first character of each branch).
_Pos = tuple[str, ...]


def _esc(code: int) -> str:
    return f"\\U{code:08x}"


def _class_source(items: Sequence[tuple[Any, Any]]) -> str | None:
    parts: list[str] = []
    negate = ""
    for op, av in items:
        if op is _c.NEGATE:
            negate = "^"
        elif op is _c.LITERAL:
            parts.append(_esc(av))
        elif op is _c.RANGE:
            parts.append(f"{_esc(av[0])}-{_esc(av[1])}")
        elif op is _c.CATEGORY and av in _CATEGORIES:
            parts.append(_CATEGORIES[av])
        else:
            return None
    return f"[{negate}{''.join(parts)}]" if parts else None


def _atom(op: Any, av: Any) -> str | None:
    """Source of a matcher for exactly one character, if (op, av) is one."""
    if op is _c.LITERAL:
        return _esc(av)
    if op is _c.NOT_LITERAL:
        return f"[^{_esc(av)}]"
    if op is _c.IN:
        return _class_source(av)
    return None


def _items(sub: Any) -> list[tuple[Any, Any]]:
    """Items of a parsed sequence with plain groups inlined."""
    out: list[tuple[Any, Any]] = []
    for op, av in sub:
        if op is _c.SUBPATTERN and not av[1] and not av[2]:
            out.extend(_items(av[3]))
        else:
            out.append((op, av))
    return out


def _union(*positions: _Pos | None) -> _Pos | None:
    if any(p is None for p in positions):
        return None
    return tuple(dict.fromkeys(a for p in positions if p is not None for a in p))


def _edge(items: Sequence[tuple[Any, Any]], *, last: bool) -> _Pos | None:
    """Matchers for the first (or last) character of every match of ``items``; None if unknown."""
    seq = list(reversed(items)) if last else list(items)
    for i, (op, av) in enumerate(seq):
        if op in _ZERO_WIDTH:
            continue
        atom = _atom(op, av)
        if atom is not None:
            return (atom,)
        if op in _REPEATS:
            body = _edge(_items(av[2]), last=last)
            if av[0] >= 1:
                return body
            rest = seq[i + 1 :]
            return _union(body, _edge(list(reversed(rest)) if last else rest, last=last))
        if op is _c.BRANCH:
            return _union(*(_edge(_items(alt), last=last) for alt in av[1]))
        return None
    return None  # empty: the match may be empty here


class _Scorer:
    def __init__(self, compile_: Compiler, flags: int) -> None:
        self._compile = compile_
        self._flags = flags

    @lru_cache(maxsize=4096)  # noqa: B019 - a short-lived helper object
    def position(self, pos: _Pos) -> float:
        rx = self._compile("|".join(f"(?:{a})" for a in pos), self._flags)
        hit = sum(w for ch, w in _WEIGHTS.items() if rx.fullmatch(ch))
        return hit / _TOTAL

    def run(self, run: Sequence[_Pos]) -> tuple[float, str]:
        best: tuple[float, str] | None = None
        for i in range(len(run)):
            window = run[i : i + MAX_RUN]
            likelihood = 1.0
            for pos in window:
                likelihood *= self.position(pos)
            src = "".join(p[0] if len(p) == 1 else "(?:" + "|".join(p) + ")" for p in window)
            if best is None or likelihood < best[0]:
                best = (likelihood, src)
        assert best is not None
        return best


def _requirement(
    items: Sequence[tuple[Any, Any]], scorer: _Scorer
) -> tuple[float, tuple[str, ...]] | None:
    candidates: list[tuple[float, tuple[str, ...]]] = []
    run: list[_Pos] = []

    def flush() -> None:
        if run:
            likelihood, src = scorer.run(run)
            candidates.append((likelihood, (src,)))
            run.clear()

    for op, av in items:
        if op in _ZERO_WIDTH:
            continue  # zero-width: the characters around it are still adjacent
        atom = _atom(op, av)
        if atom is not None:
            run.append((atom,))
            continue
        if op in _REPEATS:
            lo, hi, body = av
            body_items = _items(body)
            single = _atom(*body_items[0]) if len(body_items) == 1 else None
            if lo == 0:
                flush()
                continue
            if single is not None:
                copies = [(single,)] * min(lo, MAX_RUN)
                run.extend(copies)
                if hi != lo or lo > MAX_RUN:
                    flush()
                    run.extend(copies)  # the repeat's last characters touch what follows
                continue
            first = _edge(body_items, last=False)
            if first is not None:
                run.append(first)
            flush()
            inner = _requirement(body_items, scorer)
            if inner is not None:
                candidates.append(inner)
            last = _edge(body_items, last=True)
            if last is not None:
                run.append(last)
            continue
        if op is _c.BRANCH:
            first = _edge([(op, av)], last=False)
            if first is not None:
                run.append(first)
            flush()
            union: list[str] = []
            likelihood = 0.0
            for alt in av[1]:
                req = _requirement(_items(alt), scorer)
                if req is None:
                    union = []
                    break
                likelihood += req[0]
                union.extend(req[1])
            if union:
                candidates.append((min(likelihood, 1.0), tuple(dict.fromkeys(union))))
            last = _edge([(op, av)], last=True)
            if last is not None:
                run.append(last)
            continue
        flush()  # anything else (groups with flags, backreferences, ...) breaks adjacency
    flush()
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[0])


# Flags whose bits mean the same in ``re`` and ``regex``; anything else is not analysed.
_SHARED_FLAGS = re.IGNORECASE | re.LOCALE | re.MULTILINE | re.DOTALL | re.UNICODE | re.VERBOSE


def compiler(engine: str) -> Compiler:
    if engine == "regex":
        import regex

        return regex.compile  # type: ignore[no-any-return]
    return re.compile


def requirement(pattern: str, flags: int = 0, *, engine: str = "re") -> Requirement | None:
    """A necessary condition for ``pattern`` to match, or None when none can be derived.

    ``engine`` is the regex module the pattern runs under (``"regex"`` for Presidio's pattern
    recognisers, ``"re"`` for python-phonenumbers); the condition is compiled with the same
    engine and flags, so its character classes mean exactly what the pattern's do.
    """
    if flags & ~_SHARED_FLAGS:
        return None
    try:
        parsed = _p.parse(pattern, flags)
    except (re.error, OverflowError, RecursionError, TypeError):
        return None
    all_flags = flags | parsed.state.flags
    if all_flags & re.ASCII:
        if engine == "regex":
            return None  # inline (?a): a different bit in ``regex``; leave such patterns alone
    elif all_flags & ~_SHARED_FLAGS:
        return None
    scorer = _Scorer(compiler(engine), all_flags)
    try:
        found = _requirement(_items(parsed), scorer)
    except Exception:
        return None
    if found is None:
        return None
    likelihood, fragments = found
    return Requirement(fragments=fragments, flags=all_flags, likelihood=likelihood)


def combine(requirements: Iterable[Requirement | None], *, engine: str) -> Any | None:
    """One compiled search pattern for "any requirement holds"; None if any pattern has none."""
    compile_ = compiler(engine)
    reqs = list(requirements)
    if not reqs or any(r is None for r in reqs):
        return None
    by_flags: dict[int, list[str]] = {}
    for r in reqs:
        assert r is not None
        by_flags.setdefault(r.flags, []).append(r.source())
    if len(by_flags) == 1:
        ((flags, sources),) = by_flags.items()
        return compile_("|".join(sources), flags)
    return _AnyOf([compile_("|".join(s), f) for f, s in by_flags.items()])


class _AnyOf:
    def __init__(self, patterns: Sequence[Any]) -> None:
        self.patterns = list(patterns)
        self.pattern = " || ".join(p.pattern for p in self.patterns)

    def search(self, text: str) -> bool:
        return any(p.search(text) for p in self.patterns)
