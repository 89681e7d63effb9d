"""The training config: unknown keys and bad values rejected before any work, naming key and line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from finetrail.errors import ConfigError
from finetrail.governance.io import sha256_file
from finetrail.governance.workspace import Workspace
from finetrail.training.config import PrivacyConfig, load_config, parse_config
from finetrail.training.data import dataset_record_path, preflight
from tests.support.tiny_training import make_texts, write_jsonl

GOOD = """\
base_model:
  path: base
method:
  name: lora
  rank: 4
privacy:
  target_epsilon: 8.0
  delta: 1.0e-5
data:
  train: data/train.jsonl
optim:
  batch_size: 4
  steps: 10
  learning_rate: 0.01
"""


def _write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_valid_config_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, GOOD))
    cfg = loaded.config
    assert cfg.base_model.path == (tmp_path / "base").resolve()
    assert cfg.data.train == (tmp_path / "data/train.jsonl").resolve()
    assert isinstance(cfg.privacy, PrivacyConfig) and cfg.privacy.accountant == "prv"
    assert cfg.privacy.clipping == "auto"
    assert len(loaded.sha256) == 64


def test_config_round_trips_through_its_json_form(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, GOOD)).config
    assert parse_config(cfg.model_dump(mode="json"), source="round trip") == cfg


def test_privacy_none_is_the_non_private_control(tmp_path: Path) -> None:
    text = GOOD.replace("privacy:\n  target_epsilon: 8.0\n  delta: 1.0e-5\n", "privacy: none\n")
    cfg = load_config(_write(tmp_path, text)).config
    assert cfg.privacy == "none" and not cfg.dp_enabled


def test_target_delta_is_accepted_as_the_delta(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, GOOD.replace("  delta:", "  target_delta:"))).config
    assert isinstance(cfg.privacy, PrivacyConfig) and cfg.privacy.delta == 1e-5


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("  rank: 4\n", "  rank: 4\n  rnk: 3\n"),
            "method.rnk (line 6): unknown key (not allowed)",
        ),
        (
            ("  learning_rate: 0.01\n", "  lerning_rate: 0.01\n"),
            "optim.lerning_rate (line 14): unknown key (not allowed)",
        ),
        (
            ("  learning_rate: 0.01\n", "  learning_rate: 0.01\nseeed: 3\n"),
            "seeed (line 15): unknown key (not allowed)",
        ),
        (
            ("  rank: 4\n", "  rank: 0\n"),
            "method.rank (line 5): Input should be greater than or equal to 1",
        ),
        (
            ("  learning_rate: 0.01\n", "  learning_rate: -1\n"),
            "optim.learning_rate (line 14): Input should be greater than 0",
        ),
        (
            ("  target_epsilon: 8.0\n", "  target_epsilon: 8.0\n  noise_multiplier: 1.0\n"),
            "privacy (line 6): give exactly one of target_epsilon and noise_multiplier",
        ),
        (
            ("  target_epsilon: 8.0\n", ""),
            "privacy (line 6): give exactly one of target_epsilon and noise_multiplier",
        ),
        (
            ("  delta: 1.0e-5\n", "  delta: 1.0e-5\n  accountant: gdp\n"),
            "privacy.accountant (line 9): the stated epsilon comes from the PRV accountant",
        ),
        (("  name: lora\n", "  name: adapters\n"), "method (line 3)"),
        (("  steps: 10\n", ""), "optim (line 11): give exactly one of epochs and steps"),
        (("device", "device"), None),
    ],
)
def test_bad_keys_and_values_are_named_with_their_line(
    tmp_path: Path, edit: tuple[str, str], expected: str | None
) -> None:
    text = GOOD.replace(*edit)
    if expected is None:
        load_config(_write(tmp_path, text))  # the unchanged config is valid
        return
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert info.value.path == str(tmp_path / "cfg.yaml")
    assert expected in info.value.what


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("  rank: 4\n", "  rank: -2\n  rnk: 3\n").replace(
        "  steps: 10\n", "  stepz: 10\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    what = info.value.what
    assert "method.rank" in what and "method.rnk" in what and "optim.stepz" in what
    assert info.value.field == "method.rank"


def test_privacy_off_is_explained(tmp_path: Path) -> None:
    text = GOOD.replace("privacy:\n  target_epsilon: 8.0\n  delta: 1.0e-5\n", "privacy: off\n")
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert (
        "privacy (line 6): must be 'none' or a mapping of DP settings, not False" in info.value.what
    )
    assert "YAML reads off/no/false as false" in info.value.what


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("base_model: {path: a}\nbase_model: {path: b}\n", "duplicate keys: base_model (line 2)"),
        ("base_model: [unclosed\n", "malformed YAML at line 2"),
        ("- just\n- a list\n", "the config must be a YAML mapping"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert expected in info.value.what


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  early_stopping: {patience: 2}\n", "optim.early_stopping needs data.validation"),
        ("  ewc: {strength: 1.0}\n", "optim.ewc needs data.generic"),
    ],
)
def test_cross_key_requirements(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, GOOD + extra))
    assert expected in info.value.what


def test_generic_fraction_needs_a_generic_corpus(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  train: data/train.jsonl\n", "  train: data/train.jsonl\n  generic_fraction: 0.1\n"
    )
    with pytest.raises(ConfigError, match=r"generic_fraction > 0 needs data\.generic"):
        load_config(_write(tmp_path, text))


# ---- preflight: the datasets, before any model is loaded --------------------------------------


def _setup(tmp_path: Path, *edits: tuple[str, str], n: int = 20) -> tuple[Path, Workspace]:
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data/train.jsonl", make_texts(n, seed=1))
    text = GOOD
    for old, new in edits:
        text = text.replace(old, new)
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="o")
    return _write(tmp_path, text), ws


def _preflight(cfg: Path, ws: Workspace):  # type: ignore[no-untyped-def]
    loaded = load_config(cfg)
    return preflight(loaded.config, workspace_root=ws.root, source=str(cfg))


def test_delta_must_be_below_one_over_n(tmp_path: Path) -> None:
    cfg, ws = _setup(tmp_path, ("delta: 1.0e-5", "delta: 0.05"), n=20)
    with pytest.raises(ConfigError) as info:
        _preflight(cfg, ws)
    assert (
        "privacy.delta: 0.05 is not below 1/N = 0.05 (N = 20 training records)" in info.value.what
    )
    assert "allows releasing a whole record" in info.value.what


def test_unregistered_datasets_are_refused_by_default(tmp_path: Path) -> None:
    cfg, ws = _setup(tmp_path)
    with pytest.raises(ConfigError) as info:
        _preflight(cfg, ws)
    sha = sha256_file(tmp_path / "data/train.jsonl")
    assert f"(sha256 {sha}) is not registered in the workspace" in info.value.what
    assert info.value.why and "data.unregistered is 'refuse'" in info.value.why
    # registered once its provenance record exists
    ws.write_bytes(dataset_record_path(sha), b"{}\n", event="dataset.registered", actor="t")
    datasets = _preflight(cfg, ws)
    assert datasets.train.registered and datasets.train.record == dataset_record_path(sha)


def test_unregistered_can_be_flagged_instead(tmp_path: Path) -> None:
    cfg, ws = _setup(
        tmp_path,
        ("  train: data/train.jsonl\n", "  train: data/train.jsonl\n  unregistered: flag\n"),
    )
    datasets = _preflight(cfg, ws)
    assert datasets.train.registered is False and len(datasets.train.texts) == 20


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"text": "ok"}\n{"text": \n', "line 2: malformed JSON"),
        (
            '{"text": "ok"}\n{"body": "x"}\n',
            "line 2: field 'text' is missing or not a non-empty string",
        ),
        ("\n\n", "the dataset is empty"),
        ('["a"]\n', "line 1: expected a JSON object"),
    ],
)
def test_bad_datasets_name_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    cfg, ws = _setup(
        tmp_path,
        ("  train: data/train.jsonl\n", "  train: data/train.jsonl\n  unregistered: flag\n"),
    )
    (tmp_path / "data/train.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        _preflight(cfg, ws)
    assert expected in info.value.what and "data.train" in info.value.what


def test_non_utf8_dataset_names_the_byte_and_line(tmp_path: Path) -> None:
    cfg, ws = _setup(
        tmp_path,
        ("  train: data/train.jsonl\n", "  train: data/train.jsonl\n  unregistered: flag\n"),
    )
    (tmp_path / "data/train.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(ConfigError) as info:
        _preflight(cfg, ws)
    assert "not valid UTF-8 (byte 0xe9 at offset 28, line 2)" in info.value.what


def test_missing_dataset_and_small_generic_corpus_are_reported_together(tmp_path: Path) -> None:
    cfg, ws = _setup(
        tmp_path,
        (
            "  train: data/train.jsonl\n",
            "  train: data/train.jsonl\n  validation: data/missing.jsonl\n  generic: data/g.jsonl\n"
            "  generic_fraction: 0.4\n  unregistered: flag\n",
        ),
    )
    write_jsonl(tmp_path / "data/g.jsonl", make_texts(3, seed=5))
    with pytest.raises(ConfigError) as info:
        _preflight(cfg, ws)
    assert "data.validation" in info.value.what and "dataset file not found" in info.value.what
    assert (
        "data.generic_fraction: 0.4 of the sampled set needs 13 generic records" in info.value.what
    )


def test_cli_rejects_a_bad_config_without_loading_torch(tmp_path: Path) -> None:
    cfg = _write(tmp_path, GOOD.replace("  learning_rate: 0.01\n", "  lerning_rate: 0.01\n"))
    Workspace.init(tmp_path / "ws", model="m", version="1", owner="o")
    code = (
        "import sys\nfrom finetrail.cli import main\n"
        f"rc = main(['train', {str(cfg)!r}, '--workspace', {str(tmp_path / 'ws')!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'peft', 'opacus', 'mlflow'))\n"
        "print('RC', rc, 'HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "RC 2 HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    assert f"error: {cfg}: field 'optim.learning_rate'" in proc.stderr
    assert "optim.lerning_rate (line 14): unknown key (not allowed)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_train_help_is_light() -> None:
    code = (
        "import sys\nfrom finetrail.cli import main\nrc = main(['train', '--help'])\n"
        "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mlflow', 'opacus')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "--check-dp" in proc.stdout and "--nproc" in proc.stdout
    assert "HEAVY []" in proc.stdout
