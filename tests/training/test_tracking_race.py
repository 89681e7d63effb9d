"""Two runs starting at once against one MLflow server, logging the same dataset (name and
digest), race in the server's check-then-insert of the dataset row; the loser's ``log_inputs``
fails with a unique-constraint error. The tracker logs again (the row then exists and is only
linked); any other error is raised at once."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from finetrail.training.tracking import MlflowTracker  # noqa: E402

UNIQUE = (
    "BAD_REQUEST: (psycopg.errors.UniqueViolation) duplicate key value violates unique "
    'constraint "dataset_pk"'
)


def _tracker(fail_with: list[str]) -> tuple[MlflowTracker, list[int]]:
    calls: list[int] = []

    class Client:
        def log_inputs(self, run_id: str, datasets: list[object]) -> None:
            calls.append(len(datasets))
            if len(calls) <= len(fail_with):
                raise mlflow.exceptions.MlflowException(fail_with[len(calls) - 1])

    tracker = object.__new__(MlflowTracker)
    tracker.mlflow = mlflow
    tracker.client = Client()  # type: ignore[assignment]
    tracker.run_id = "run"
    return tracker, calls


def _datasets(tmp_path: Path) -> object:
    f = tmp_path / "val.jsonl"
    f.write_text('{"text": "x"}\n')
    use = types.SimpleNamespace(
        path=str(f), sha256="ab" * 32, role="validation", texts=["x"], registered=False
    )
    return types.SimpleNamespace(all=lambda: [use])


def test_a_lost_dataset_insert_race_is_logged_again(tmp_path: Path) -> None:
    tracker, calls = _tracker([UNIQUE, UNIQUE])
    tracker._log_inputs(_datasets(tmp_path))  # type: ignore[arg-type]
    assert calls == [1, 1, 1]


def test_other_errors_and_a_persistent_race_are_raised(tmp_path: Path) -> None:
    tracker, calls = _tracker(["PERMISSION_DENIED: no"])
    with pytest.raises(mlflow.exceptions.MlflowException, match="PERMISSION_DENIED"):
        tracker._log_inputs(_datasets(tmp_path))  # type: ignore[arg-type]
    assert calls == [1]
    tracker, calls = _tracker([UNIQUE] * 4)
    with pytest.raises(mlflow.exceptions.MlflowException, match="UniqueViolation"):
        tracker._log_inputs(_datasets(tmp_path))  # type: ignore[arg-type]
    assert len(calls) == 4
