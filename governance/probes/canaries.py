"""Canary planting: part of data preparation, before training.

m canaries of declared formats (:mod:`.formats`) are drawn; each is included independently with
probability 1/2 (the one-run audit needs that coin) and an included canary is repeated 1, 4 or 16
times (configurable; the exposure study). The augmented training JSONL is written, and the canary
set with its inclusion vector is committed to the workspace as ``artifacts/canaries.json``; the
ledger event ``canaries.committed`` carries the digests of the set and of the inclusion vector, so
anyone can later check that the canaries were fixed before training started.

Designs (``--design``): ``pin`` (the declared formats given, six-digit pins by default),
``new-token`` (secrets of symbols absent from the data, the rare-token form of Panda et al.'s
new-token canaries) and ``bigram`` (lowercase secrets whose letter pairs are the rarest in the data,
their model-free bigram canaries). ``--heldout-out`` draws a seeded random part of the source data
as the membership probe's non-members, from the same pool as the members, before training.

The canary set is synthetic and lives under ``artifacts/`` (restricted); evidence refers to
canaries by id only.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from finetrail.errors import InputError
from finetrail.governance.evidence.base import EvidenceRecord, Frozen
from finetrail.governance.evidence.registry import location
from finetrail.governance.io import (
    atomic_write_bytes,
    canonical_json,
    read_text_strict,
    sha256_bytes,
)
from finetrail.governance.probes.formats import (
    BIGRAM6,
    LETTERS,
    RARE6,
    CanaryFormat,
    format_by_name,
)
from finetrail.governance.workspace import Workspace, default_actor

CANARIES_ARTIFACT = "artifacts/canaries.json"
COMMIT_EVENT = "canaries.committed"
DESIGNS = ("pin", "new-token", "bigram")
Design = Literal["pin", "new-token", "bigram"]
DataFormat = Literal["text", "messages"]
DATA_FORMATS = {"text": "text", "chat": "messages", "messages": "messages"}


class Canary(Frozen):
    id: str = Field(pattern=r"^c[0-9]{4,}$")
    format: str
    secret: str = Field(min_length=1)
    text: str
    repetitions: int = Field(ge=1, description="copies inserted when included")
    included: bool

    @property
    def copies(self) -> int:
        return self.repetitions if self.included else 0


class FileLineage(Frozen):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    records: int = Field(ge=0)


class Lineage(Frozen):
    """What the augmented dataset was derived from (for the provenance layer to register)."""

    transform: Literal["finetrail canaries plant"] = "finetrail canaries plant"
    source: FileLineage
    output: FileLineage
    text_field: str
    data_format: DataFormat = Field(
        default="text", description="text: {text_field: ...}; messages: chat conversations"
    )
    examples_added: int = Field(ge=0)
    heldout: FileLineage | None = Field(
        default=None, description="source records held out at random (the non-members)"
    )
    heldout_texts_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class CanarySet(EvidenceRecord):
    """``artifacts/canaries.json``: the canaries, their inclusion coins and the lineage."""

    record_type: Literal["canary_set"] = "canary_set"
    design: Design = "pin"
    inclusion_probability: float = Field(gt=0, lt=1)
    repetition_cycle: tuple[int, ...]
    formats: dict[str, str] = Field(description="format name -> template")
    canaries: tuple[Canary, ...] = Field(min_length=1)
    canaries_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inclusion_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    lineage: Lineage | None = None
    data_format: DataFormat = Field(
        default="text",
        description="messages: each canary copy is a conversation, the user turn "
        "chat_user_turn then the canary text as the assistant's reply",
    )
    chat_user_turn: str | None = Field(
        default=None, description="the user turn before every chat canary (drawn from the data)"
    )

    @model_validator(mode="after")
    def _digests_match(self) -> CanarySet:
        if (self.data_format == "messages") != (self.chat_user_turn is not None):
            raise ValueError("chat_user_turn is set exactly when data_format is messages")
        if self.canaries_sha256 != canary_digest(self.canaries):
            raise ValueError("canaries_sha256 does not match the canaries")
        if self.inclusion_sha256 != inclusion_digest(self.canaries):
            raise ValueError("inclusion_sha256 does not match the inclusion vector")
        return self

    def format_of(self, canary: Canary) -> CanaryFormat:
        return format_by_name(canary.format)

    @property
    def included(self) -> tuple[Canary, ...]:
        return tuple(c for c in self.canaries if c.included)


def canary_digest(canaries: Sequence[Canary]) -> str:
    body = [
        {
            "id": c.id,
            "format": c.format,
            "secret": c.secret,
            "text": c.text,
            "repetitions": c.repetitions,
        }
        for c in canaries
    ]
    return sha256_bytes(canonical_json(body))


def inclusion_digest(canaries: Sequence[Canary]) -> str:
    return sha256_bytes("".join("1" if c.included else "0" for c in canaries).encode("ascii"))


def texts_digest(texts: Sequence[str]) -> str:
    """Digest of a set of texts (order and duplicates ignored)."""
    return sha256_bytes(canonical_json(sorted(set(texts))))


def design_formats(design: str, formats: Sequence[str] = ("pin6",)) -> tuple[CanaryFormat, ...]:
    """The formats a design plants: the given ones for ``pin``, a fixed one otherwise."""
    if design == "pin":
        return tuple(format_by_name(f) for f in formats)
    if design == "new-token":
        return (RARE6,)
    if design == "bigram":
        return (BIGRAM6,)
    raise InputError(
        f"unknown canary design {design!r}", field="design", fix=f"choose from {', '.join(DESIGNS)}"
    )


class BigramSampler:
    """Letters drawn so that each pair is among the rarest letter pairs of the data (Panda et
    al. 2025's bigram canaries, model-free). ``pool`` letters tie for rarest at each step."""

    def __init__(self, texts: Sequence[str], *, pool: int = 5):
        from collections import Counter

        pairs: Counter[tuple[str, str]] = Counter()
        firsts: Counter[str] = Counter()
        for t in texts:
            low = t.lower()
            for a, b in itertools.pairwise(low):
                if a in LETTERS and b in LETTERS:
                    pairs[a, b] += 1
            for word in low.split():
                if word[:1] in LETTERS:
                    firsts[word[0]] += 1
        self._first = self._rarest(lambda b: firsts[b], pool)
        self._next = {a: self._rarest(lambda b, a=a: pairs[a, b], pool) for a in LETTERS}

    @staticmethod
    def _rarest(count: Any, pool: int) -> tuple[str, ...]:
        ranked = sorted(LETTERS, key=lambda b: (count(b), b))
        cut = count(ranked[pool - 1])
        return tuple(b for b in ranked if count(b) <= cut)

    def __call__(self, fmt: CanaryFormat, rng: random.Random) -> str:
        out = [rng.choice(self._first)]
        while len(out) < len(fmt.slots):
            out.append(rng.choice(self._next[out[-1]]))
        return "".join(out)


def check_design_data(design: str, texts: Sequence[str], *, path: str | None = None) -> None:
    """``new-token`` needs symbols the data never holds: refuse data that contains one."""
    if design != "new-token":
        return
    seen = sorted({ch for t in texts for ch in t if ch in "".join(RARE6.slots[0])})
    if seen:
        raise InputError(
            f"the data contains {', '.join(repr(c) for c in seen)}, which the new-token design's "
            "secrets are made of",
            path=path,
            field="design",
            fix="use --design pin or bigram for this data",
        )


def draw_canaries(
    *,
    formats: Sequence[CanaryFormat],
    m: int,
    repetitions: Sequence[int] = (1, 4, 16),
    inclusion_probability: float = 0.5,
    seed: int | None = None,
    avoid: Sequence[str] = (),
    sampler: Any = None,
) -> list[Canary]:
    """Draw m canaries: format and repetition count by position, inclusion by a fair coin each.

    Secrets are unique and never occur in ``avoid`` (the texts they are planted into). Without a
    seed the draw uses the operating system's randomness. ``sampler(fmt, rng)`` replaces the
    uniform draw of a secret (the bigram design); the inclusion coin stays a fair one.
    """
    if m < 1:
        raise InputError("need at least one canary", field="m")
    if not formats:
        raise InputError("no canary format given", field="formats")
    if not repetitions or any(r < 1 for r in repetitions):
        raise InputError("repetitions must be positive integers", field="repetitions")
    rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
    seen: set[str] = set()
    haystack = "\n".join(avoid)
    out = []
    for i in range(m):
        fmt = formats[i % len(formats)]
        reps = repetitions[(i // len(formats)) % len(repetitions)]
        for _ in range(1000):
            secret = sampler(fmt, rng) if sampler is not None else fmt.random_secret(rng)
            if secret not in seen and secret not in haystack:
                break
        else:  # pragma: no cover - needs a space nearly exhausted by the data
            raise InputError(f"could not draw a fresh {fmt.name} secret", field="m")
        seen.add(secret)
        out.append(
            Canary(
                id=f"c{i:04d}",
                format=fmt.name,
                secret=secret,
                text=fmt.render(secret),
                repetitions=reps,
                included=rng.random() < inclusion_probability,
            )
        )
    return out


def build_canary_set(
    canaries: Sequence[Canary],
    *,
    repetitions: Sequence[int],
    inclusion_probability: float = 0.5,
    lineage: Lineage | None = None,
    design: Design = "pin",
    chat_user_turn: str | None = None,
) -> CanarySet:
    names = sorted({c.format for c in canaries})
    return CanarySet(
        design=design,
        data_format="text" if chat_user_turn is None else "messages",
        chat_user_turn=chat_user_turn,
        inclusion_probability=inclusion_probability,
        repetition_cycle=tuple(repetitions),
        formats={n: format_by_name(n).template for n in names},
        canaries=tuple(canaries),
        canaries_sha256=canary_digest(canaries),
        inclusion_sha256=inclusion_digest(canaries),
        lineage=lineage,
    )


def augment(
    records: Sequence[dict[str, Any]],
    canaries: Sequence[Canary],
    *,
    text_field: str,
    seed: int | None,
) -> list[dict[str, Any]]:
    """The training records with each included canary's copies inserted at random positions."""
    rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
    out = [dict(r) for r in records]
    for c in canaries:
        for _ in range(c.copies):
            out.insert(rng.randrange(len(out) + 1), {text_field: c.text})
    return out


def chat_user_turns(
    records: Sequence[dict[str, Any]], *, messages_field: str = "messages"
) -> list[str]:
    """The user turns of chat-format records (a canary's user turn is drawn from them)."""
    users: list[str] = []
    for i, r in enumerate(records):
        messages = r.get(messages_field)
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise InputError(
                f"record {i + 1} has no list of message objects",
                field=messages_field,
                fix="chat canaries go into chat-format data: one {'messages': [...]} per line",
            )
        users += [
            str(m["content"])
            for m in messages
            if m.get("role") == "user" and isinstance(m.get("content"), str)
        ]
    if not users:
        raise InputError("the data has no user turn to put before a canary", field=messages_field)
    return users


def canary_conversation(canary: Canary, user_turn: str) -> list[dict[str, str]]:
    """The conversation a chat canary's copy is: the user turn, then the canary as the reply."""
    return [
        {"role": "user", "content": user_turn},
        {"role": "assistant", "content": canary.text},
    ]


def augment_chat(
    records: Sequence[dict[str, Any]],
    canaries: Sequence[Canary],
    *,
    seed: int | None,
    messages_field: str = "messages",
    user_turn: str | None = None,
) -> list[dict[str, Any]]:
    """Chat-format records (``{"messages": [...]}``) with each included canary's copies inserted
    at random positions, each copy its own conversation: a user turn, then the canary text as the
    assistant's reply (the loss is on assistant tokens, so a canary in any other turn would never
    be trained on). The user turn is ``user_turn`` for every copy (what ``plant_file`` records, so
    the probes score every canary, included or not, in one framing), or without it drawn from the
    data's user turns per copy."""
    users = chat_user_turns(records, messages_field=messages_field)
    rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
    out = [dict(r) for r in records]
    for c in canaries:
        for _ in range(c.copies):
            turn = user_turn if user_turn is not None else rng.choice(users)
            out.insert(rng.randrange(len(out) + 1), {messages_field: canary_conversation(c, turn)})
    return out


def detect_format(path: str | os.PathLike[str], *, text_field: str) -> DataFormat:
    """``messages`` when the first record holds a ``messages`` list and no ``text_field``."""
    for line in read_text_strict(path).splitlines():
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                return "text"  # read_jsonl names the line
            if isinstance(obj, dict) and isinstance(obj.get("messages"), list):
                return "text" if text_field in obj else "messages"
            return "text"
    return "text"


def _read_records(
    path: str | os.PathLike[str],
    check: Callable[[Any], str | None],
    *,
    what: str,
    field: str,
    fix: str,
) -> list[dict[str, Any]]:
    """Read JSONL strictly: each non-blank line parsed and ``check``-ed (an error or None); every
    problem named by line (the first five shown), and an empty file refused."""
    text = read_text_strict(path)
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {lineno}: malformed JSON ({exc.msg})")
            continue
        problem = check(obj)
        if problem is None:
            records.append(obj)
        else:
            problems.append(f"line {lineno}: {problem}")
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise InputError(f"{what}: {shown}", path=str(path), field=field, fix=fix)
    if not records:
        raise InputError(
            "the dataset is empty", path=str(path), fix="give a JSONL file with records"
        )
    return records


def read_chat_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read chat JSONL strictly: every line a conversation training accepts (the training
    layer's own record parser), else an error naming the file, the lines and the field."""
    from finetrail.training.formats import parse_record

    def check(obj: Any) -> str | None:
        parsed = parse_record(obj, "messages", "text")
        return parsed if isinstance(parsed, str) else None

    return _read_records(
        path,
        check,
        what="invalid chat dataset",
        field="messages",
        fix="each line must be {'messages': [{'role': ..., 'content': ...}, ...]} with an "
        "assistant turn",
    )


def record_texts(records: Sequence[dict[str, Any]], fmt: DataFormat, text_field: str) -> list[str]:
    """The text of each record: its ``text_field``, or every turn's content of a conversation."""
    if fmt == "text":
        return [str(r[text_field]) for r in records]
    return ["\n".join(str(m["content"]) for m in r["messages"]) for r in records]


def read_jsonl(path: str | os.PathLike[str], *, text_field: str) -> list[dict[str, Any]]:
    """Read a JSONL dataset strictly: every line an object with a string ``text_field``."""

    def check(obj: Any) -> str | None:
        if not isinstance(obj, dict):
            return "expected an object"
        if not isinstance(obj.get(text_field), str):
            return f"field '{text_field}' missing or not a string"
        return None

    return _read_records(
        path,
        check,
        what="invalid dataset",
        field=text_field,
        fix=f"each line must be a JSON object with a string '{text_field}'",
    )


def jsonl_bytes(records: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n" for r in records
    )


def commit_canaries(ws: Workspace, canary_set: CanarySet, *, actor: str) -> None:
    """Write ``artifacts/canaries.json`` and the ``canaries.committed`` ledger event."""
    _check_before_training(ws)
    lineage = canary_set.lineage
    ws.write_bytes(
        CANARIES_ARTIFACT,
        canary_set.canonical_bytes(),
        event=COMMIT_EVENT,
        actor=actor,
        extra={
            "canaries_sha256": canary_set.canaries_sha256,
            "inclusion_sha256": canary_set.inclusion_sha256,
            "canaries": len(canary_set.canaries),
            "included": len(canary_set.included),
            "formats": sorted(canary_set.formats),
            "augmented_sha256": lineage.output.sha256 if lineage else None,
            "source_sha256": lineage.source.sha256 if lineage else None,
        },
    )


def _check_before_training(ws: Workspace) -> None:
    if ws.path(location("training")).exists():
        raise InputError(
            "training evidence already exists: canaries must be committed before training",
            path=str(ws.path(location("training"))),
            fix="plant canaries in a fresh workspace, then train on the augmented data",
        )
    if ws.path(CANARIES_ARTIFACT).exists():
        raise InputError(
            "this workspace already holds a committed canary set",
            path=str(ws.path(CANARIES_ARTIFACT)),
            fix="one canary set per workspace; start a new workspace to plant again",
        )


def split_heldout(
    records: Sequence[dict[str, Any]], *, fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, held out): a seeded random ``fraction`` of the records held out, order kept."""
    if not 0 < fraction < 1:
        raise InputError(
            f"held-out fraction must be in (0, 1), got {fraction:g}", field="heldout_fraction"
        )
    n = round(fraction * len(records))
    if n < 1 or n >= len(records):
        raise InputError(
            f"a held-out fraction of {fraction:g} of {len(records)} records leaves no members or "
            "no non-members",
            field="heldout_fraction",
        )
    chosen = set(random.Random(seed).sample(range(len(records)), n))
    kept = [r for i, r in enumerate(records) if i not in chosen]
    held = [r for i, r in enumerate(records) if i in chosen]
    return kept, held


def plant_file(
    workspace: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    formats: Sequence[str] = ("pin6",),
    m: int = 90,
    repetitions: Sequence[int] = (1, 4, 16),
    seed: int | None = None,
    text_field: str = "text",
    actor: str | None = None,
    design: Design = "pin",
    heldout_out: str | os.PathLike[str] | None = None,
    heldout_fraction: float = 0.2,
    data_format: str = "auto",
) -> CanarySet:
    """Plant canaries into ``data`` (JSONL), write ``out`` and commit the set to the workspace.

    With ``heldout_out``, a seeded random ``heldout_fraction`` of the source records is written
    there instead of being trained on: the membership probe's non-members, from the same pool.
    ``data_format``: ``text``, ``chat`` (``messages`` conversations: :func:`augment_chat`, one
    user turn drawn from the shorter half of the data's user turns for every canary) or ``auto``
    (from the first record)."""
    ws = Workspace.open(workspace)
    actor = default_actor(actor, owner=ws.metadata.owner)
    _check_before_training(ws)
    fmts = design_formats(design, formats)
    if data_format == "auto":
        fmt: DataFormat = detect_format(data, text_field=text_field)
    elif data_format in DATA_FORMATS:
        fmt = DATA_FORMATS[data_format]  # type: ignore[assignment]
    else:
        raise InputError(
            f"unknown data format {data_format!r}",
            field="data_format",
            fix="choose from auto, text, chat",
        )
    source = read_chat_jsonl(data) if fmt == "messages" else read_jsonl(data, text_field=text_field)
    field_name = "messages" if fmt == "messages" else text_field
    all_texts = record_texts(source, fmt, text_field)
    check_design_data(design, all_texts, path=str(data))
    if seed is None:
        seed = secrets.randbits(63)
    records, held = (
        split_heldout(source, fraction=heldout_fraction, seed=seed + 2)
        if heldout_out is not None
        else (list(source), [])
    )
    texts = record_texts(records, fmt, text_field)
    sampler = BigramSampler(texts) if design == "bigram" else None
    canaries = draw_canaries(
        formats=fmts, m=m, repetitions=repetitions, seed=seed, avoid=all_texts, sampler=sampler
    )
    user_turn = None
    if fmt == "messages":
        # among the shorter half of the user turns: a canary's conversation must fit within the
        # training's max_length with its secret, or the secret is truncated away unseen
        users = sorted(set(chat_user_turns(records)), key=lambda u: (len(u), u))
        user_turn = random.Random(seed + 3).choice(users[: max(1, (len(users) + 1) // 2)])
        augmented = augment_chat(records, canaries, seed=seed + 1, user_turn=user_turn)
    else:
        augmented = augment(records, canaries, text_field=text_field, seed=seed + 1)
    payload = jsonl_bytes(augmented)
    for target in (out, heldout_out):
        if target is not None and Path(target).resolve() == Path(data).resolve():
            raise InputError(
                "refusing to overwrite the source dataset",
                path=str(target),
                fix="write the augmented data to a new file",
            )
    heldout_lineage = None
    if heldout_out is not None:
        held_payload = jsonl_bytes(held)
        atomic_write_bytes(heldout_out, held_payload)
        heldout_lineage = FileLineage(
            path=str(heldout_out), sha256=sha256_bytes(held_payload), records=len(held)
        )
    atomic_write_bytes(out, payload)
    lineage = Lineage(
        source=FileLineage(
            path=str(data), sha256=sha256_bytes(Path(data).read_bytes()), records=len(source)
        ),
        output=FileLineage(path=str(out), sha256=sha256_bytes(payload), records=len(augmented)),
        text_field=field_name,
        data_format=fmt,
        examples_added=len(augmented) - len(records),
        heldout=heldout_lineage,
        heldout_texts_sha256=texts_digest(record_texts(held, fmt, text_field)) if held else None,
    )
    canary_set = build_canary_set(
        canaries,
        repetitions=repetitions,
        lineage=lineage,
        design=design,
        chat_user_turn=user_turn,
    )
    commit_canaries(ws, canary_set, actor=actor)
    return canary_set


def load_canaries(workspace: Workspace) -> CanarySet | None:
    path = workspace.path(CANARIES_ARTIFACT)
    if not path.exists():
        return None
    return CanarySet.read(path)
