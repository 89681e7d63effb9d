"""The analyst's review console: ``finetrail serve``, a web app over a tree of workspaces.

Reviewers read a release's dossier sections with every statement linked to its evidence record,
comment per release and per rule (ledger events), and sign off in their own browser with an
Ed25519 key that never leaves it; the server checks each signature against the trust file and
appends the same review entry ``finetrail review approve`` appends.

- :mod:`.store`: accounts (argon2id), sessions, login throttling, signing requests (SQLAlchemy)
- :mod:`.releases`: the enumerated releases and what the queue and release pages show
- :mod:`.comments`: comment events; :mod:`.signoff`: browser sign-off
- :mod:`.app`: the Starlette application; :mod:`.cli`: ``finetrail serve``

Imports no torch, transformers, presidio or mlflow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Store", "create_app"]


def __getattr__(name: str) -> Any:
    # lazy: `finetrail.console.cli` is imported by every `finetrail` command, also on a core
    # install without starlette and SQLAlchemy (the console extra)
    if name == "create_app":
        from finetrail.console.app import create_app

        return create_app
    if name == "Store":
        from finetrail.console.store import Store

        return Store
    raise AttributeError(name)
