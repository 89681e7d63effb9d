"""Training record formats and the tokens the loss is taken on.

Three JSONL formats (``data.format``), one record per line, one record the privacy unit:

- ``text``: ``{"text": "..."}`` (the field is ``data.text_field``); the loss is on every token.
- ``prompt_completion``: ``{"prompt": "...", "completion": "..."}`` (TRL's standard
  prompt-completion form); the text is the prompt followed directly by the completion.
- ``messages``: ``{"messages": [{"role": "user", "content": "..."}, ...]}`` (TRL's
  conversational form), rendered with the tokenizer's chat template when it has one, else with
  finetrail's plain template (``role: content`` lines; :data:`PLAIN_TEMPLATE`).

With ``data.loss_on: completion`` (the default for the last two) the loss is taken on the
completion's tokens, or on the assistant turns' tokens (what the model would generate after the
generation prompt), and on an end token that directly follows them; ``all`` takes it on every
token. Which tokens count is found from character offsets of the rendered text, so the tokens
are those of the whole text (no tokenization seams at the prompt/completion boundary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from finetrail.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "FORMATS",
    "PLAIN_TEMPLATE",
    "Record",
    "encode_records",
    "parse_record",
    "rendering_note",
]

Format = Literal["text", "prompt_completion", "messages"]
FORMATS: tuple[str, ...] = ("text", "prompt_completion", "messages")
ROLES = ("system", "user", "assistant", "tool")
PLAIN_TEMPLATE = "one line '{role}: {content}' per message; the generation prompt is 'assistant: '"


@dataclass(frozen=True)
class Record:
    """One training record: plain text, a prompt and its completion, or chat messages."""

    format: Format
    text: str = ""  # text; for prompt_completion: the prompt
    completion: str = ""
    messages: tuple[tuple[str, str], ...] = ()  # (role, content)

    @property
    def plain(self) -> str:
        """The record as one string (chat messages in the plain template)."""
        if self.format == "text":
            return self.text
        if self.format == "prompt_completion":
            return self.text + self.completion
        return "".join(f"{r}: {c}\n" for r, c in self.messages)


def parse_record(obj: Any, fmt: str, text_field: str) -> Record | str:
    """A :class:`Record`, or the reason the JSON value is not one of ``fmt``."""
    if not isinstance(obj, dict):
        return "expected a JSON object"
    if fmt == "text":
        value = obj.get(text_field)
        if not isinstance(value, str) or not value.strip():
            return f"field '{text_field}' is missing or not a non-empty string"
        return Record("text", text=value)
    if fmt == "prompt_completion":
        prompt, completion = obj.get("prompt"), obj.get("completion")
        if not isinstance(prompt, str):
            return "field 'prompt' is missing or not a string"
        if not isinstance(completion, str) or not completion.strip():
            return "field 'completion' is missing or not a non-empty string"
        return Record("prompt_completion", text=prompt, completion=completion)
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return "field 'messages' is missing or not a non-empty list"
    out = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        content = m.get("content") if isinstance(m, dict) else None
        if role not in ROLES or not isinstance(content, str):
            return (
                f"messages[{i}] must be an object with 'role' ({', '.join(ROLES)}) and a "
                "string 'content'"
            )
        out.append((str(role), content))
    if not any(r == "assistant" and c.strip() for r, c in out):
        return "no assistant message with content (nothing to learn)"
    return Record("messages", messages=tuple(out))


# ---- rendering ---------------------------------------------------------------------------------


def _has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def rendering_note(tokenizer: Any, records: Sequence[Record], loss_on: str) -> str | None:
    """The evidence sentence saying how records became tokens, or None for plain text."""
    formats = {r.format for r in records}
    if formats <= {"text"}:
        return None
    where = "completion tokens" if "prompt_completion" in formats else "assistant turns' tokens"
    loss = f"loss on the {where} only" if loss_on == "completion" else "loss on every token"
    if "messages" in formats:
        if _has_template(tokenizer):
            from finetrail.governance.io import sha256_bytes

            digest = sha256_bytes(str(tokenizer.chat_template).encode("utf-8"))
            how = f"chat messages rendered with the tokenizer's chat template (sha256 {digest})"
        else:
            how = f"chat messages rendered with finetrail's plain template ({PLAIN_TEMPLATE})"
        return f"{how}; {loss}"
    return f"prompt/completion records, the completion appended to the prompt; {loss}"


def _chat(tokenizer: Any, messages: Sequence[tuple[str, str]], prompt: bool) -> str:
    msgs = [{"role": r, "content": c} for r, c in messages]
    if _has_template(tokenizer):
        return str(
            tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=prompt)
        )
    return "".join(f"{r}: {c}\n" for r, c in messages) + ("assistant: " if prompt else "")


def render(tokenizer: Any, record: Record) -> tuple[str, list[tuple[int, int]], bool]:
    """(text, character spans the loss is on, whether the tokenizer adds special tokens)."""
    if record.format == "text":
        return record.text, [(0, len(record.text))], True
    if record.format == "prompt_completion":
        text = record.text + record.completion
        return text, [(len(record.text), len(text))], True
    full = _chat(tokenizer, record.messages, prompt=False)
    spans = []
    for i, (role, _) in enumerate(record.messages):
        if role != "assistant":
            continue
        start = _chat(tokenizer, record.messages[:i], prompt=True) if i else ""
        upto = _chat(tokenizer, record.messages[: i + 1], prompt=False)
        if not (full.startswith(upto) and upto.startswith(start)):
            raise InputError(
                "the chat template does not render a conversation's turns as prefixes of it, "
                "so finetrail cannot tell which tokens are the assistant's",
                field="data.format",
                fix="use data.loss_on: all, or a tokenizer whose chat template renders "
                "prefixes consistently (most do)",
            )
        spans.append((len(start), len(upto)))
    # a chat template writes its own special tokens; the tokenizer must not add more
    return full, spans, not _has_template(tokenizer)


def _loss_flags(
    offsets: Sequence[tuple[int, int]], special: Sequence[int], spans: Sequence[tuple[int, int]]
) -> list[int]:
    flags = []
    for (s, e), is_special in zip(offsets, special, strict=True):
        if e > s:
            flags.append(int(any(s < b and e > a for a, b in spans)))
        else:  # a token the tokenizer inserted (bos, eos): on the loss right after a loss token
            flags.append(int(bool(is_special) and bool(flags) and flags[-1] == 1))
    return flags


def encode_records(
    tokenizer: Any, records: Sequence[Record], max_length: int, *, loss_on: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``loss_mask`` (1 where the loss is
    taken), and how many records keep no loss token within ``max_length``."""
    import torch

    rows: list[tuple[list[int], list[int]]] = []
    for record in records:
        text, spans, add_special = render(tokenizer, record)
        enc = tokenizer(
            text,
            truncation=True,
            max_length=max_length,
            add_special_tokens=add_special,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        ids = list(enc["input_ids"])
        if not ids:
            raise InputError("a record tokenises to no tokens", fix="remove empty records")
        if loss_on == "all" or record.format == "text":
            flags = [1] * len(ids)
        else:
            flags = _loss_flags(enc["offset_mapping"], enc["special_tokens_mask"], spans)
        rows.append((ids, flags))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    loss = torch.zeros((len(rows), width), dtype=torch.long)
    empty = 0
    for i, (ids, flags) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        loss[i, : len(ids)] = torch.tensor(flags)
        # the first token is never a target: a record needs a loss token after it
        empty += int(sum(flags[1:]) == 0)
    return input_ids, attention, loss, empty
