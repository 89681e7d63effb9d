"""Reading the audit's inputs: an evaluation set (prompts + labels) or a predictions file.

Every problem is collected, then raised once as :class:`InputError` naming the file, the line and
the column or label (exit 2): a missing sensitive column, an empty group value, a label outside
the verbaliser set, a non-binary task, a feature with a single group.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from finetrail.errors import InputError
from finetrail.governance.io import read_text_strict, sha256_bytes

MAX_LISTED = 8


@dataclass(frozen=True)
class AuditRows:
    """Rows of an audit input: true labels (1 = positive), sensitive columns, and either
    prompts (to be scored by a model) or predictions (with optional scores)."""

    path: str
    sha256: str
    y_true: npt.NDArray[np.int64]
    sensitive: dict[str, npt.NDArray[np.str_]]
    prompts: tuple[str, ...] = ()
    y_pred: npt.NDArray[np.int64] | None = None
    score: npt.NDArray[np.float64] | None = None


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[tuple[str, str]] = []  # (field, message)

    def add(self, field: str, message: str) -> None:
        self.items.append((field, message))

    def raise_if_any(self, fix: str) -> None:
        if not self.items:
            return
        shown = [m for _, m in self.items[:MAX_LISTED]]
        more = len(self.items) - len(shown)
        what = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        raise InputError(what, path=self.path, field=self.items[0][0], fix=fix)


def read_jsonl(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], str]:
    """Rows of a JSON Lines file and the file's SHA-256; errors name the file and line."""
    text = read_text_strict(path)
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {i}: malformed JSON: {exc.msg}", path=str(path)) from exc
        if not isinstance(row, dict):
            raise InputError(f"line {i}: expected a JSON object", path=str(path))
        rows.append(row)
    if not rows:
        raise InputError(
            "no rows: the file is empty",
            path=str(path),
            fix="give a JSON Lines file with one example per line",
        )
    return rows, sha256_bytes(Path(path).read_bytes())


def _sensitive(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], problems: _Problems
) -> dict[str, npt.NDArray[np.str_]]:
    out: dict[str, npt.NDArray[np.str_]] = {}
    for col in columns:
        missing = [i for i, r in enumerate(rows, start=1) if col not in r]
        if missing:
            where = "every row" if len(missing) == len(rows) else f"lines {_lines(missing)}"
            problems.add(col, f"sensitive column {col!r} is missing ({where})")
            continue
        values: list[str] = []
        for i, r in enumerate(rows, start=1):
            v = r[col]
            if v is None or (isinstance(v, str) and not v.strip()):
                problems.add(col, f"line {i}: empty group in sensitive column {col!r}")
            elif isinstance(v, dict | list | float):
                problems.add(
                    col, f"line {i}: sensitive column {col!r} must be a string, int or bool"
                )
            values.append(str(v).strip() if v is not None else "")
        arr = np.array(values, dtype=np.str_)
        groups = sorted(set(values) - {""})
        if len(groups) == 1 and not missing:
            problems.add(
                col,
                f"sensitive column {col!r} has a single group {groups[0]!r}: nothing to compare",
            )
        out[col] = arr
    return out


def _lines(nums: Sequence[int]) -> str:
    head = ", ".join(str(n) for n in nums[:5])
    return head + (f" (+{len(nums) - 5} more)" if len(nums) > 5 else "")


def _label_code(value: Any, labels: tuple[str, str]) -> int | None:
    """1 for the positive label, 0 for the negative; bools and 0/1 are accepted as such."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str):
        if value == labels[0]:
            return 1
        if value == labels[1]:
            return 0
    return None


def _labels(
    rows: Sequence[dict[str, Any]], field: str, labels: tuple[str, str], problems: _Problems
) -> npt.NDArray[np.int64]:
    codes = np.zeros(len(rows), dtype=np.int64)
    outside: dict[str, list[int]] = {}
    for i, r in enumerate(rows, start=1):
        if field not in r:
            problems.add(field, f"line {i}: field {field!r} is missing")
            continue
        code = _label_code(r[field], labels)
        if code is None:
            outside.setdefault(repr(r[field]), []).append(i)
        else:
            codes[i - 1] = code
    if outside:
        found = sorted({repr(lab) for lab in labels} | set(outside))
        if len(found) > 2:
            problems.add(
                field,
                f"non-binary task: {field} takes {', '.join(found)}; bias metrics "
                "need exactly two labels",
            )
        for label, lines in outside.items():
            problems.add(
                field,
                f"label {label} in {field!r} is outside the verbaliser set "
                f"{list(labels)} (lines {_lines(lines)})",
            )
    return codes


def load_eval(
    path: str | os.PathLike[str], *, sensitive: Sequence[str], labels: tuple[str, str]
) -> AuditRows:
    """An evaluation set: ``prompt`` (or ``text``), ``label`` and the sensitive columns."""
    rows, digest = read_jsonl(path)
    problems = _Problems(str(path))
    prompts: list[str] = []
    for i, r in enumerate(rows, start=1):
        prompt = r.get("prompt", r.get("text"))
        if not isinstance(prompt, str) or not prompt.strip():
            problems.add("prompt", f"line {i}: needs a non-empty 'prompt' (or 'text') string")
            prompt = ""
        prompts.append(prompt)
    y_true = _labels(rows, "label", labels, problems)
    groups = _sensitive(rows, sensitive, problems)
    problems.raise_if_any(
        "fix the named lines; labels must be one of the verbaliser labels "
        "(--labels POSITIVE,NEGATIVE) and every sensitive column present"
    )
    return AuditRows(
        path=str(path), sha256=digest, y_true=y_true, sensitive=groups, prompts=tuple(prompts)
    )


def load_predictions(
    path: str | os.PathLike[str], *, sensitive: Sequence[str], labels: tuple[str, str]
) -> AuditRows:
    """Predictions made elsewhere: ``y_true``, ``y_pred``, optional ``score`` (P(positive))."""
    rows, digest = read_jsonl(path)
    problems = _Problems(str(path))
    y_true = _labels(rows, "y_true", labels, problems)
    y_pred = _labels(rows, "y_pred", labels, problems)
    with_score = [("score" in r) for r in rows]
    score: npt.NDArray[np.float64] | None = None
    if any(with_score):
        if not all(with_score):
            problems.add("score", "'score' must be given on every row or on none")
        values = []
        for i, r in enumerate(rows, start=1):
            v = r.get("score", 0.0)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= float(v) <= 1.0:
                problems.add("score", f"line {i}: score must be a probability in [0, 1]")
                v = 0.0
            values.append(float(v))
        score = np.array(values, dtype=np.float64)
    groups = _sensitive(rows, sensitive, problems)
    problems.raise_if_any(
        "fix the named lines; y_true/y_pred must be one of the two labels "
        "(--labels POSITIVE,NEGATIVE), 0/1 or true/false"
    )
    return AuditRows(
        path=str(path), sha256=digest, y_true=y_true, sensitive=groups, y_pred=y_pred, score=score
    )


def check_same_rows(a: AuditRows, b: AuditRows, columns: Sequence[str]) -> None:
    """Base predictions must describe the same rows as the fine-tuned model's."""
    if (
        len(a.y_true) != len(b.y_true)
        or not np.array_equal(a.y_true, b.y_true)
        or any(not np.array_equal(a.sensitive[c], b.sensitive[c]) for c in columns)
    ):
        raise InputError(
            "base predictions do not describe the same rows (y_true and sensitive columns must "
            "match line by line)",
            path=b.path,
            fix="write base and fine-tuned predictions for the same evaluation rows in the same order",
        )
