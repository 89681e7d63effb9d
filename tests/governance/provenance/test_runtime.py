"""Runtime properties: light imports, flat memory, MLflow dataset inputs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from finetrail.governance.provenance import list_datasets

HEAVY = (
    "presidio_analyzer",
    "presidio_anonymizer",
    "torch",
    "transformers",
    "mlflow",
    "spacy",
    "pyarrow",
)

META = [
    "--name",
    "d",
    "--source",
    "s",
    "--license",
    "MIT",
    "--collection",
    "c",
    "--legal-basis",
    "b",
    "--purpose",
    "p",
]


# Peak resident memory of the child's own process image. (ru_maxrss would also count the
# parent's memory, inherited at fork before exec: pytest's, here.)
PEAK_RSS = """
def peak_rss_mb():
    with open("/proc/self/status") as fh:
        return int(fh.read().split("VmHWM:")[1].split()[0]) // 1024
"""


def run_python(code: str) -> dict[str, object]:
    source = PEAK_RSS + textwrap.dedent(code)
    proc = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_commands_that_do_not_scan_import_nothing_heavy(
    workspace: Path,
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
) -> None:
    path = jsonl_dataset(tmp_path / "d.jsonl", 20)
    out = run_python(f"""
        import contextlib, io, json, sys
        from finetrail.cli import main
        codes = []
        with contextlib.redirect_stdout(io.StringIO()):
            codes.append(main(["data", "register", {str(path)!r}, "-w", {str(workspace)!r}, *{META!r}]))
            codes.append(main(["data", "prove", {str(workspace)!r}, "d", "--record", "3",
                               "-o", {str(tmp_path / "p.json")!r}]))
            codes.append(main(["data", "list", {str(workspace)!r}]))
            codes.append(main(["verify", {str(workspace)!r}]))
            root = json.load(open({str(tmp_path / "p.json")!r}))["merkle_root"]
            codes.append(main(["data", "check-proof", {str(tmp_path / "p.json")!r}, "--root", root]))
        print(json.dumps({{"codes": codes, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """)
    assert out == {"codes": [0, 0, 0, 0, 0], "heavy": []}


@pytest.mark.slow
def test_scanning_keeps_torch_out_and_memory_small(
    tmp_path: Path, jsonl_dataset: Callable[..., Path]
) -> None:
    path = jsonl_dataset(tmp_path / "d.jsonl", 60, pii_share=0.5)
    out = run_python(f"""
        import contextlib, io, json, sys
        from finetrail.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(["data", "scan", {str(path)!r}, "--workers", "2"])
        print(json.dumps({{"rc": rc, "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules,
                           "presidio": "presidio_analyzer" in sys.modules,
                           "rss_mb": peak_rss_mb()}}))
    """)
    assert out["rc"] == 0 and out["presidio"] is True
    assert out["torch"] is False and out["transformers"] is False
    assert isinstance(out["rss_mb"], int) and out["rss_mb"] < 200


@pytest.mark.slow
def test_register_memory_is_flat_in_file_size(tmp_path: Path) -> None:
    """Register (hash, Merkle, schema) a ~40 MB and a ~120 MB file: peak RSS stays under 200 MB
    and does not grow with the file (the 1 GB figure is in docs/provenance.md)."""

    def make(path: Path, mb: int) -> None:
        line = json.dumps({"prompt": "word " * 60, "completion": "reply " * 40}).encode() + b"\n"
        block = line * 2000
        with open(path, "wb") as fh:
            for i in range(mb * (1 << 20) // len(block)):
                fh.write(block.replace(b'"prompt"', b'"prompt%d"' % (i % 7), 1))

    peaks = []
    for mb in (40, 120):
        path = tmp_path / f"d{mb}.jsonl"
        make(path, mb)
        ws = tmp_path / f"ws{mb}"
        out = run_python(f"""
            import contextlib, io, json
            from finetrail.cli import main
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(["init", {str(ws)!r}, "--model", "m", "--version", "1", "--owner", "o"]) == 0
                rc = main(["data", "register", {str(path)!r}, "-w", {str(ws)!r}, *{META!r}])
            print(json.dumps({{"rc": rc, "rss_mb": peak_rss_mb()}}))
        """)
        assert out["rc"] == 0
        peaks.append(int(out["rss_mb"]))  # type: ignore[call-overload]
        path.unlink()
    assert max(peaks) < 200, peaks
    assert peaks[1] - peaks[0] < 25, peaks  # three times the data, about the same memory


@pytest.mark.slow
def test_log_datasets_to_mlflow_with_the_full_digest_in_a_tag(
    workspace: Path,
    register: Callable[..., int],
    jsonl_dataset: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from finetrail.governance.provenance import log_datasets_to_mlflow

    assert register(jsonl_dataset(tmp_path / "a.jsonl", 10, seed=1), "train-set") == 0
    assert register(jsonl_dataset(tmp_path / "b.jsonl", 10, seed=2), "eval-set") == 0
    records = list_datasets(workspace=workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:
            assert log_datasets_to_mlflow(records) == run.info.run_id
        got = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    by_name = {d.dataset.name: d for d in got}
    assert set(by_name) == {"train-set", "eval-set"}
    for rec in records:
        tags = {t.key: t.value for t in by_name[rec.name].tags}
        assert tags["finetrail.dataset.sha256"] == rec.sha256 and len(rec.sha256) == 64
        assert tags["finetrail.dataset.merkle_root"] == rec.merkle_root
        assert tags["mlflow.data.context"] == "training"
        assert by_name[rec.name].dataset.digest == rec.sha256[:16]
        assert json.loads(by_name[rec.name].dataset.profile)["records"] == 10


def test_log_datasets_to_mlflow_needs_a_run() -> None:
    from finetrail.errors import InputError
    from finetrail.governance.provenance import log_datasets_to_mlflow

    with pytest.raises(InputError, match="no MLflow run to log the datasets to"):
        log_datasets_to_mlflow([])
