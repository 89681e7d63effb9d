"""One answer to "which sign-offs count?", shared by the gate, ``review status`` and the reports.

:func:`review_status` reads the ledger, the manifest and the keyring once and returns every
review's state (current, stale, invalid), the four-eyes verdict for a policy's approval rule and
the :class:`~finetrail.governance.evidence.review.ReviewSummary` the gate evaluates. The dossier
shows exactly what the gate counted, because both call this function.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from finetrail.errors import FinetrailError
from finetrail.governance.evidence.review import Keyring, ReviewSummary
from finetrail.governance.evidence.workspace import LedgerEntry, Manifest
from finetrail.governance.review.assess import (
    Assessment,
    FourEyes,
    ReviewState,
    assess,
    authors,
    four_eyes,
    summary,
)
from finetrail.governance.review.keyring import keyring_path, load_keyring

if TYPE_CHECKING:
    from finetrail.governance.policy.rules import Approvals
    from finetrail.governance.trust import TrustRoot

State = Literal["current", "stale", "invalid"]


@dataclass(frozen=True)
class ReviewRow:
    """One review event as a reader sees it."""

    seq: int
    time: str
    reviewer: str
    role: str | None
    decision: str
    note: str
    state: State
    problems: tuple[str, ...]
    manifest_sha256: str | None
    signer: str | None


@dataclass(frozen=True)
class ReviewStatus:
    """Every review of a workspace and whether a policy's approval requirement is met."""

    rows: tuple[ReviewRow, ...]
    assessment: Assessment
    four_eyes: FourEyes
    summary: ReviewSummary
    keyring: Path | None
    keyring_problem: str | None
    author_names: frozenset[str]
    trust: Path | None = None  # the trust file the signatures were checked against

    @property
    def satisfied(self) -> bool:
        return self.four_eyes.satisfied and self.keyring_problem is None


def state_of(s: ReviewState) -> State:
    if not s.valid:
        return "invalid"
    return "current" if s.current else "stale"


def _row(s: ReviewState) -> ReviewRow:
    p = s.payload
    return ReviewRow(
        seq=s.entry.seq,
        time=s.entry.time.isoformat(),
        reviewer=p.reviewer if p else s.entry.actor,
        role=p.role if p else None,
        decision=p.decision if p else s.entry.kind.removeprefix("review."),
        note=p.note if p else "",
        state=state_of(s),
        problems=tuple(s.problems),
        manifest_sha256=p.manifest_sha256 if p else None,
        signer=s.entry.signer,
    )


def review_status(
    *,
    root: str | os.PathLike[str],
    entries: list[LedgerEntry],
    manifest: Manifest | None,
    owner: str | None,
    rule: Approvals | None = None,
    keyring_file: str | os.PathLike[str] | None = None,
    trust: TrustRoot | None = None,
) -> ReviewStatus:
    """Assess every review in ``entries`` against ``manifest`` and the keyring, or the trust
    root when one is given (then the keyring is not consulted).

    A keyring that cannot be read is reported in ``keyring_problem`` (and every signature is
    then unverifiable), never ignored.
    """
    from finetrail.governance.trust import read_identity

    kr_path = None if trust is not None else keyring_path(root, keyring_file)
    keyring: Keyring | None = None
    problem: str | None = None
    if kr_path is not None:
        try:
            keyring = load_keyring(kr_path)
        except FinetrailError as err:
            problem = f"keyring {kr_path}: {err.what}"
    a = assess(entries, manifest, keyring, trust=trust, identity=read_identity(root))
    names = authors(owner, entries)
    fe = four_eyes(a, rule, names)
    return ReviewStatus(
        rows=tuple(_row(s) for s in a.states),
        assessment=a,
        four_eyes=fe,
        summary=summary(a, manifest, names, rule),
        keyring=kr_path,
        keyring_problem=problem,
        author_names=frozenset(names),
        trust=trust.path if trust is not None else None,
    )


def workspace_review_status(
    root: str | os.PathLike[str],
    *,
    rule: Approvals | None = None,
    keyring_file: str | os.PathLike[str] | None = None,
    trust: TrustRoot | str | os.PathLike[str] | None = None,
) -> ReviewStatus:
    """:func:`review_status` for a workspace on disk (reads its ledger and manifest); ``trust``
    is a trust file outside the workspace (or a loaded root)."""
    from finetrail.governance.trust import as_trust_root
    from finetrail.governance.workspace import Workspace

    ws = Workspace.open(root)
    trust_root = as_trust_root(trust, ws.root)
    if keyring_file and trust_root is None:
        load_keyring(keyring_file)  # a keyring the caller named must be readable
    return review_status(
        root=ws.root,
        entries=ws.ledger.entries(),
        manifest=ws.read_manifest(),
        owner=ws.metadata.owner,
        rule=rule,
        keyring_file=keyring_file,
        trust=trust_root,
    )
