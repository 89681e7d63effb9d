"""Comments and findings: ledger events of the release's workspace, never edited.

A comment is a ``console.comment`` event (``Workspace.append_event``, its own transaction) whose
payload names its thread (``release`` or ``rule:<rule id>`` of the last gate decision), its text,
the state it sets (``open``, ``answered``, ``resolved``) and, for a reply, the sequence number of
the comment it answers. A thread's state is the state its latest event set; a correction is a new
event. Comments are not review events (``review.*`` entries must carry a signed review payload,
which ``verify`` checks), and they never change the files an approval is bound to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finetrail.console.releases import COMMENT_KIND, COMMENT_STATES, ReleaseRef
from finetrail.errors import InputError

if TYPE_CHECKING:
    from finetrail.governance.evidence.workspace import LedgerEntry

MAX_TEXT = 10_000


def add_comment(
    ref: ReleaseRef,
    *,
    author: str,
    thread: str,
    text: str,
    state: str,
    reply_to: int | None,
    rule_ids: set[str],
) -> LedgerEntry:
    """Append one comment event; refuses unknown threads, states and replies to nothing."""
    from finetrail.governance.workspace import Workspace

    if thread != "release" and not (thread.startswith("rule:") and thread[5:] in rule_ids):
        raise InputError(f"unknown thread {thread[:80]!r}", fix="release or rule:<a rule id>")
    if state not in COMMENT_STATES:
        raise InputError(f"unknown state {state[:40]!r}", fix=", ".join(COMMENT_STATES))
    if not text.strip() or len(text) > MAX_TEXT:
        raise InputError(f"a comment has 1 to {MAX_TEXT} characters")
    ws = Workspace.open(ref.path)
    with ws.transaction() as tx:
        if reply_to is not None:
            target = [e for e in ws.ledger.entries() if e.seq == reply_to]
            if not target or target[0].kind != COMMENT_KIND:
                raise InputError(f"entry {reply_to} is not a comment of this release")
        payload: dict[str, object] = {"thread": thread, "text": text, "state": state}
        if reply_to is not None:
            payload["reply_to"] = reply_to
        return tx.event(COMMENT_KIND, actor=author, payload=payload)
