"""`finetrail verify`: every single-byte change to evidence, artifacts, manifest or ledger is caught."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from finetrail.governance.verify import verify_workspace
from finetrail.governance.workspace import Workspace


def _tracked_files(ws: Workspace) -> list[Path]:
    files = [ws.root / "workspace.json", ws.root / "manifest.json", ws.root / "ledger.jsonl"]
    files += sorted(p for p in (ws.root / "evidence").rglob("*") if p.is_file())
    files += sorted(p for p in (ws.root / "artifacts").rglob("*") if p.is_file())
    return files


def _flip(path: Path, pos: int) -> bytes:
    original = path.read_bytes()
    data = bytearray(original)
    data[pos] ^= 0x01 if data[pos] != 0x0A else 0x20  # never turn a byte into a newline
    path.write_bytes(bytes(data))
    return original


def test_clean_workspace_verifies(sample_workspace: Workspace) -> None:
    report = verify_workspace(sample_workspace.root)
    assert report.ok, report.render()
    assert report.files == 6
    assert report.entries == 7  # created + 3 records + 1 artifact + 2 folder files


def test_every_file_flip_is_detected_and_named(sample_workspace: Workspace) -> None:
    for path in _tracked_files(sample_workspace):
        original = _flip(path, len(path.read_bytes()) // 2)
        try:
            report = verify_workspace(sample_workspace.root)
            rel = path.relative_to(sample_workspace.root).as_posix()
            assert not report.ok, f"flip in {rel} went undetected"
            assert any(rel in f.location for f in report.errors), report.render()
        finally:
            path.write_bytes(original)
    assert verify_workspace(sample_workspace.root).ok


def test_every_ledger_line_flip_is_detected(sample_workspace: Workspace) -> None:
    path = sample_workspace.root / "ledger.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    offset = 0
    for lineno, line in enumerate(lines, start=1):
        original = _flip(path, offset + len(line) // 3)
        try:
            report = verify_workspace(sample_workspace.root)
            assert not report.ok
            assert any(f.location.startswith("ledger.jsonl") for f in report.errors)
            assert any(f.location == f"ledger.jsonl:{lineno}" for f in report.errors) or any(
                f.code == "truncated" for f in report.errors
            ), report.render()
        finally:
            path.write_bytes(original)
        offset += len(line) + 1


def test_200_random_single_byte_flips_are_all_detected(sample_workspace: Workspace) -> None:
    rng = random.Random(1234)
    files = _tracked_files(sample_workspace)
    for _ in range(200):
        path = rng.choice(files)
        size = len(path.read_bytes())
        original = _flip(path, rng.randrange(size))
        try:
            report = verify_workspace(sample_workspace.root)
            assert not report.ok, f"flip in {path.name} undetected"
        finally:
            path.write_bytes(original)


def test_missing_and_extra_files_are_both_reported(sample_workspace: Workspace) -> None:
    root = sample_workspace.root
    (root / "evidence" / "sample_1.json").unlink()
    (root / "artifacts" / "stray.txt").write_text("not recorded")
    report = verify_workspace(root)
    found = {(f.code, f.location) for f in report.errors}
    assert ("missing", "evidence/sample_1.json") in found
    assert ("extra", "artifacts/stray.txt") in found


def test_truncated_ledger_tail_is_caught_by_the_manifest_anchor(
    sample_workspace: Workspace,
) -> None:
    path = sample_workspace.root / "ledger.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-2]))  # drop the last two complete entries
    report = verify_workspace(sample_workspace.root)
    assert "truncated" in {f.code for f in report.errors}


def test_entry_appended_outside_finetrail_is_unanchored(sample_workspace: Workspace) -> None:
    sample_workspace.ledger.append("rogue.event", actor="mallory")
    report = verify_workspace(sample_workspace.root)
    assert "unanchored" in {f.code for f in report.errors}


def test_manifest_rewritten_to_match_a_modified_file_disagrees_with_the_ledger(
    sample_workspace: Workspace,
) -> None:
    root = sample_workspace.root
    target = root / "evidence" / "sample_0.json"
    data = json.loads(target.read_text())
    data["value"] = 42.0
    target.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    manifest = json.loads((root / "manifest.json").read_text())
    import hashlib

    manifest["files"]["evidence/sample_0.json"]["sha256"] = hashlib.sha256(
        target.read_bytes()
    ).hexdigest()
    (root / "manifest.json").write_text(
        json.dumps(manifest, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
    )
    report = verify_workspace(root)
    assert ("disagrees", "evidence/sample_0.json") in {(f.code, f.location) for f in report.errors}


@pytest.mark.parametrize("kind", ["missing_ws", "not_a_ws"])
def test_verify_on_a_non_workspace_is_bad_input(tmp_path: Path, run_cli, kind: str) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "nope"
    if kind == "not_a_ws":
        target.mkdir()
    code, out, err = run_cli("verify", str(target))
    assert code == 2
    assert str(target) in err
    assert "Traceback" not in err + out


def test_verify_cli_exit_codes_and_json(sample_workspace: Workspace, run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("verify", str(sample_workspace.root))
    assert code == 0 and "verify: OK" in out
    (sample_workspace.root / "evidence" / "sample_2.json").write_text("{}\n")
    code, out, _ = run_cli("verify", "--json", str(sample_workspace.root))
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert {"code": "modified", "location": "evidence/sample_2.json"}.items() <= data["findings"][
        0
    ].items()
