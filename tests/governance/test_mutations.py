"""Random mutations of every file of a release workspace: each one is caught by ``verify``.

One workspace (evidence, an adapter, a gate decision, a review, the dossier ``finetrail report``
rendered, the MLflow run artifacts training logged) is built once; then 1,200 seeded mutations
(bit flips, truncation, appended bytes, deleted, added and renamed files, JSON value edits with the
manifest's digest recomputed) are each applied, verified in-process, and undone. Every mutation
must make verify fail (``ok`` false, exit 1), with a finding that names the mutated file (or the
ledger / manifest the mutation broke), and never raise; a sample of 30 goes through the CLI in a
subprocess (exit 1, no traceback).

Not mutated: finetrail's own empty lock files and journal folder (no content to forge) and
``mlflow.db`` (the registry database; ``registry promote`` writes tags into it after the gate).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from finetrail.governance.coverage import MLFLOW_ARTIFACTS
from finetrail.governance.evidence.workspace import Manifest, ManifestFile
from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import INTERNAL_NAMES, MANIFEST_FILE

N_MUTATIONS = 1200
N_CLI = 30
SEED = 1515
EXPERIMENT, RUN = "7", "0123456789abcdef"
KINDS = ("bitflip", "truncate", "append", "delete", "add", "rename", "json-edit")
# documented recoverable state, not tampering: a torn last ledger line is a warning
# ("incomplete"); a mutation that only leaves one must still be named
TORN_OK = "incomplete"


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            h.update(f"L {rel} {os.readlink(p)}\n".encode())
        elif p.is_file():
            h.update(f"F {rel} ".encode() + hashlib.sha256(p.read_bytes()).digest() + b"\n")
        else:
            h.update(f"D {rel}\n".encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.trust import fixture_signing

    root = tmp_path_factory.mktemp("mut") / "ws"
    # every ledger entry and checkpoint signed by its role's key, as in production (unsigned
    # checkpoints carry no protection of their own: development mode)
    with fixture_signing():
        return _build_release(root)


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trust file outside the workspace naming the fixtures' role keys: what an analyst passes
    to ``verify --trust`` (without one, no signature can be checked against a trusted key)."""
    from tests.support.trust import trust_for

    folder = tmp_path_factory.mktemp("mut-trust")
    return trust_for(folder / "keys", folder / "trust.yaml", reviewers={})


def _build_release(root: Path) -> Path:
    from finetrail.reports.api import render_report
    from tests.support.workspaces import build_workspace

    mlflow = {
        "mlflow.run_id": RUN,
        "mlflow.experiment_id": EXPERIMENT,
        "mlflow.tracking_uri": f"sqlite:///{root}/mlflow.db",
    }
    built = build_workspace(root, override={"training": mlflow})
    ws = built.ws
    ws.write_bytes(
        "artifacts/adapter/adapter_config.json",
        b'{"r": 8, "target_modules": ["q_proj", "v_proj"]}\n',
        event="artifact.added",
        actor="alice",
    )
    res = render_report(workspace=root, formats=("html", "md", "cyclonedx"))
    assert res.recorded, res.not_recorded
    # what training logs to the workspace's own MLflow file store: the adapter copy and the record
    run = root / MLFLOW_ARTIFACTS / RUN / "artifacts"
    for f in sorted((root / "artifacts/adapter").iterdir()):
        (run / "adapter").mkdir(parents=True, exist_ok=True)
        (run / "adapter" / f.name).write_bytes(f.read_bytes())
    (run / "evidence").mkdir(parents=True)
    (run / "evidence/training.json").write_bytes((root / "evidence/training.json").read_bytes())
    report = verify_workspace(root)
    assert report.ok, report.render()  # the check can pass: the untouched release verifies
    return root


CHECKPOINTS = "checkpoints.jsonl"


def _targets(root: Path, only: str | None = None) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] in INTERNAL_NAMES or p.name.endswith(".lock") or p.name == "mlflow.db":
            continue
        if (rel.as_posix() == CHECKPOINTS) != (only == CHECKPOINTS):
            continue
        if p.is_file():
            out.append(p)
    return out


@dataclass
class Undo:
    saved: dict[Path, bytes | None]  # path -> original bytes (None: did not exist)

    def __call__(self) -> None:
        for p, data in self.saved.items():
            if data is None:
                if p.exists():
                    p.unlink()
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)


def _leaves(node: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [x for i, v in enumerate(node) for x in _leaves(v, (*path, i))]
    return [path]


def _changed(value: object, rng: random.Random) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice((1, -1, 1000))
    if isinstance(value, float):
        return value * 0.5 + 0.125
    if isinstance(value, str):
        return value + "x" if rng.random() < 0.5 else value[::-1] + "0"
    return 0  # null


def _edit_json(data: bytes, rng: random.Random) -> bytes | None:
    """One leaf of one JSON document (or one line of a JSON-lines file) changed."""
    text = data.decode("utf-8")
    lines = text.splitlines(keepends=True)
    jsonl = len(lines) > 1 and all(x.strip().startswith("{") for x in lines)
    idx = rng.randrange(len(lines)) if jsonl else 0
    doc_text = lines[idx] if jsonl else text
    try:
        doc = json.loads(doc_text)
    except ValueError:
        return None
    leaves = [p for p in _leaves(doc) if p]
    if not leaves:
        return None
    path = rng.choice(leaves)
    node = doc
    for k in path[:-1]:
        node = node[k]  # type: ignore[index]
    old = node[path[-1]]  # type: ignore[index]
    new = _changed(old, rng)
    if new == old:
        return None
    node[path[-1]] = new  # type: ignore[index]
    compact = "\n" not in doc_text.strip() and ": " not in doc_text
    out = (
        json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if compact
        else json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False)
    )
    end = "\n" if doc_text.endswith("\n") else ""
    if jsonl:
        lines[idx] = out + end
        return "".join(lines).encode()
    return (out + end).encode()


def mutate(root: Path, rng: random.Random, only: str | None = None) -> tuple[str, str, Undo]:
    """Apply one random mutation; returns (kind, the workspace-relative file, undo)."""
    targets = _targets(root, only)
    while True:
        kind = rng.choice(KINDS)
        target = rng.choice(targets)
        rel = target.relative_to(root).as_posix()
        data = target.read_bytes()
        undo = Undo({target: data})
        if kind == "bitflip" and data:
            buf = bytearray(data)
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
            target.write_bytes(bytes(buf))
        elif kind == "truncate" and data:
            target.write_bytes(data[: rng.randrange(len(data))])
        elif kind == "append":
            target.write_bytes(data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))))
        elif kind == "delete":
            target.unlink()
        elif kind == "add":
            folder = rng.choice([p.parent for p in targets])
            new = folder / f"added-{rng.randrange(10**6)}{rng.choice(('.json', '.html', ''))}"
            if new.exists():
                continue
            undo = Undo({new: None})
            new.write_bytes(b'{"x": 1}\n')
            rel = new.relative_to(root).as_posix()
        elif kind == "rename":
            new = target.with_name(f"renamed-{rng.randrange(10**6)}-{target.name}")
            undo = Undo({target: data, new: None})
            target.rename(new)
        elif kind == "json-edit" and target.suffix in (".json", ".jsonl"):
            edited = _edit_json(data, rng)
            if edited is None:
                continue
            manifest_path = root / MANIFEST_FILE
            m = Manifest.read(manifest_path)
            target.write_bytes(edited)
            if rel in m.files:  # recompute the file's digest in the manifest, as a forger would
                undo.saved[manifest_path] = manifest_path.read_bytes()
                files = dict(m.files)
                files[rel] = ManifestFile(
                    sha256=hashlib.sha256(edited).hexdigest(), size=len(edited)
                )
                manifest_path.write_bytes(m.model_copy(update={"files": files}).canonical_bytes())
        else:
            continue
        return kind, rel, undo


def _names(findings: list[object], rel: str) -> bool:
    """A finding names the mutated file, its folder, or the ledger/manifest that changed."""
    head = rel.split("/")[0]
    for f in findings:
        loc = getattr(f, "location", "")
        msg = getattr(f, "message", "")
        if rel in loc or rel in msg or loc == head or loc.startswith(("ledger.jsonl", "manifest")):
            return True
        if rel == MANIFEST_FILE and "manifest" in msg:  # the file whose entry was edited
            return True
    return False


def run_mutations(
    root: Path, n: int, check: Callable[[str, str], None], only: str | None = None
) -> dict[str, int]:
    rng = random.Random(SEED)
    counts = dict.fromkeys(KINDS, 0)
    for _ in range(n):
        kind, rel, undo = mutate(root, rng, only)
        try:
            check(kind, rel)
        finally:
            undo()
        counts[kind] += 1
    return counts


def test_every_mutation_is_caught(release: Path) -> None:
    before = _tree_digest(release)
    missed: list[str] = []
    torn: list[str] = []

    def check(kind: str, rel: str) -> None:
        report = verify_workspace(release)  # must not raise, whatever the mutation
        errors = report.errors
        if errors and _names(errors, rel):
            return
        if not errors and rel == "ledger.jsonl" and any(f.code == TORN_OK for f in report.findings):
            torn.append(f"{kind} {rel}")  # a torn last line: the documented recoverable state
            return
        missed.append(f"{kind} {rel}: {report.render()[-600:]}")

    counts = run_mutations(release, N_MUTATIONS, check)
    assert sum(counts.values()) == N_MUTATIONS >= 1000
    assert all(counts.values()), counts  # every kind of mutation ran
    assert not missed, f"{len(missed)} of {N_MUTATIONS} mutations missed:\n" + "\n".join(
        missed[:20]
    )
    # appended bytes without a newline look like a write torn by a kill: named, a warning
    assert len(torn) <= counts["append"] + counts["bitflip"], torn
    assert _tree_digest(release) == before  # every mutation was undone
    assert verify_workspace(release).ok


def test_every_checkpoint_mutation_is_caught(
    release: Path, trust: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signed checkpoints (``checkpoints.jsonl``): every field is inside the signed note, so
    with the trust file every mutation of a checkpoint is caught."""
    from datetime import UTC, datetime

    from tests.support.clock import set_release_clock

    if not (release / CHECKPOINTS).is_file():
        pytest.skip("no checkpoints in this finetrail")
    # the module's release was signed at the real time, before the test's pinned clock applies
    set_release_clock(monkeypatch, datetime.now(UTC).isoformat())
    assert verify_workspace(release, trust=trust).ok  # the check can pass
    missed: list[str] = []

    def check(kind: str, rel: str) -> None:
        if not verify_workspace(release, trust=trust).errors:
            missed.append(f"{kind} {rel}")

    run_mutations(release, 200, check, only=CHECKPOINTS)
    assert verify_workspace(release, trust=trust).ok
    assert not missed, missed


def test_a_sample_of_mutations_fails_the_cli(release: Path) -> None:
    rng = random.Random(SEED + 1)
    seen = 0
    while seen < N_CLI:
        kind, rel, undo = mutate(release, rng)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "finetrail", "verify", str(release)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            undo()
        if proc.returncode == 0 and "incomplete" in proc.stdout and rel == "ledger.jsonl":
            continue  # a torn last line (see above)
        assert proc.returncode == 1, f"{kind} {rel}: {proc.stdout[-800:]}{proc.stderr[-800:]}"
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "verify: FAILED" in proc.stdout
        seen += 1
    assert verify_workspace(release).ok


@pytest.mark.parametrize(
    ("mutation", "code", "where"),
    [
        ("edit-dossier", "modified", "dossier/index.html"),
        ("delete-dossier", "missing", "dossier/coverage.json"),
        ("add-dossier", "extra", "dossier/extra.html"),
        ("edit-mlflow", "modified", f"{MLFLOW_ARTIFACTS}/{RUN}/artifacts/adapter/"),
        ("delete-mlflow", "missing", f"{MLFLOW_ARTIFACTS}/{RUN}/artifacts/adapter/"),
        ("stray-root", "extra", "notes.txt"),
        ("fifo", "extra", "evidence/pipe"),
    ],
)
def test_named_cases(release: Path, mutation: str, code: str, where: str) -> None:
    """The cases an analyst or deployer cares about, each with the exact finding it gives."""
    run_art = release / MLFLOW_ARTIFACTS / RUN / "artifacts/adapter"
    adapter = sorted(run_art.iterdir())[0]
    saved: dict[Path, bytes | None] = {}

    def keep(p: Path) -> Path:
        saved[p] = p.read_bytes() if p.is_file() else None
        return p

    if mutation == "edit-dossier":
        p = keep(release / "dossier/index.html")
        p.write_bytes(p.read_bytes().replace(b"</html>", b"<p>PASS</p></html>"))
    elif mutation == "delete-dossier":
        keep(release / "dossier/coverage.json").unlink()
    elif mutation == "add-dossier":
        keep(release / "dossier/extra.html").write_text("<p>PASS</p>")
    elif mutation == "edit-mlflow":
        keep(adapter).write_bytes(adapter.read_bytes() + b"\0")
    elif mutation == "delete-mlflow":
        keep(adapter).unlink()
    elif mutation == "stray-root":
        keep(release / "notes.txt").write_text("hi")
    elif mutation == "fifo":
        os.mkfifo(release / "evidence/pipe")
    try:
        report = verify_workspace(release)
    finally:
        if mutation == "fifo":
            (release / "evidence/pipe").unlink()
        Undo(saved)()
    hits = [f for f in report.errors if f.code == code and f.location.startswith(where)]
    assert hits, report.render()
    assert verify_workspace(release).ok


def test_remote_store_is_not_checked_and_says_so(tmp_path: Path) -> None:
    from tests.support.workspaces import build_workspace

    root = build_workspace(
        tmp_path / "ws",
        override={
            "training": {
                "mlflow.run_id": RUN,
                "mlflow.experiment_id": EXPERIMENT,
                "mlflow.tracking_uri": "https://mlflow.example.org",
            }
        },
    ).root
    report = verify_workspace(root)
    warned = [f for f in report.findings if f.code == "not-checked"]
    assert report.ok and warned, report.render()
    assert warned[0].severity == "warning" and "not checked: remote store" in warned[0].message
