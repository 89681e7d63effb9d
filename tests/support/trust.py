"""Test support for trust roots: write a trust file naming test keys by role, outside a workspace.

The window of every key (:data:`WINDOW`) brackets the pinned test clock (2026-01-15T12:00Z).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetrail.governance import keys as ed25519
from finetrail.governance.trust import TrustRoot, load_trust

WINDOW = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def key_entry(
    public: Path,
    name: str,
    *,
    roles: Iterable[str] | None = None,
    not_before: datetime = WINDOW[0],
    not_after: datetime = WINDOW[1],
    revoked_at: datetime | None = None,
) -> dict[str, Any]:
    """One trust-file key entry for the public key file ``public`` (PEM)."""
    entry: dict[str, Any] = {
        "name": name,
        "public_key": ed25519.public_b64(ed25519.load_public_key(public)),
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
    }
    if roles is not None:
        entry["roles"] = list(roles)
    if revoked_at is not None:
        entry["revoked_at"] = revoked_at.isoformat()
    return entry


def write_trust(path: Path, **sections: Iterable[Mapping[str, Any]]) -> Path:
    """Write a trust file (YAML) with the given sections (gate=, reviewers=, training=, ...)."""
    import yaml

    data: dict[str, Any] = {"finetrail_trust": 1}
    data |= {k: [dict(e) for e in v] for k, v in sections.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def trust_for(
    keydir: Path,
    path: Path,
    *,
    gate: Iterable[str] = ("ci-gate",),
    reviewers: Mapping[str, tuple[str, ...]] | None = None,
) -> Path:
    """A trust file naming ``keydir/<name>.pub`` as gate keys and reviewer keys (with roles),
    and the fixtures' role keys (:func:`fixture_signing`) for training, probes and gate."""
    from tests.support.workspaces import REVIEWERS, make_key

    for name in gate:
        if not (keydir / f"{name}.pub").is_file():
            make_key(keydir, name)
    return write_trust(
        path,
        gate=[key_entry(keydir / f"{n}.pub", n) for n in gate] + fixture_entries("gate"),
        training=fixture_entries("training"),
        probes=fixture_entries("probes"),
        reviewers=[
            key_entry(keydir / f"{n}.pub", n, roles=r)
            for n, r in (REVIEWERS if reviewers is None else reviewers).items()
            if (keydir / f"{n}.pub").is_file()
        ],
    )


def gate_only_trust(folder: Path) -> TrustRoot:
    """A trust root with one gate key (``folder/keys/ci-gate.*``), for gate tests that sign
    nothing else; ``folder`` must lie outside the workspace."""
    return load_trust(trust_for(folder / "keys", folder / "trust.yaml", reviewers={}))


# -- the fixtures' own role keys -------------------------------------------------------------------
# The workspaces the fixtures build (tests/support/workspaces.py, sample_release.py) sign every
# ledger entry with these deterministic keys (the same bytes on every run: goldens stay stable),
# each named in its role in every trust file :func:`trust_for` writes.
FIXTURE_KEYS: dict[str, str] = {
    "training": "fixture-training",
    "probes": "fixture-probes",
    "gate": "fixture-gate",
}


def fixture_key(role: str) -> ed25519.Ed25519PrivateKey:
    """The fixtures' deterministic key for ``role`` (training, probes, gate)."""
    from tests.support.evidence import fixed_key

    key: ed25519.Ed25519PrivateKey = fixed_key(FIXTURE_KEYS[role])
    return key


def fixture_entries(role: str) -> list[dict[str, Any]]:
    """The trust-file entries naming the fixtures' key for ``role``."""
    key = fixture_key(role)
    return [
        {
            "name": FIXTURE_KEYS[role],
            "public_key": ed25519.public_b64(key.public_key()),
            "not_before": WINDOW[0].isoformat(),
            "not_after": WINDOW[1].isoformat(),
        }
    ]


@contextmanager
def fixture_signing(signed: bool = True) -> Iterator[None]:
    """Sign the block's ledger entries with the fixtures' role keys, unless the caller already
    set a key (``keys.signing_with`` or ``$FINETRAIL_LEDGER_KEY``: a signing test's own) or
    ``signed`` is false (an unsigned, development-mode workspace)."""
    if not signed:
        with ed25519.development_mode(True), ed25519.signing_with(None):
            yield
        return
    if ed25519.active_signer("workspace.created") is not None:
        yield
        return
    with ed25519.signing_by_role({role: fixture_key(role) for role in FIXTURE_KEYS}):
        yield
