"""The wheel installs one namespace, `finetrail`, with templates and policies as package data."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (whl,) = out.glob("finetrail-*.whl")
    return whl


def test_wheel_holds_only_the_finetrail_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"finetrail", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert any(n.startswith("finetrail/templates/") and n.endswith(".j2") for n in names)
    assert any(n.startswith("finetrail/policies/") and n.endswith(".yaml") for n in names)


def test_wheel_installs_into_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # Dependencies come from this environment's site-packages, added as plain paths so that no
    # editable finder of the development checkout is loaded.
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    target = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(target) / "zz_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    check = textwrap.dedent(
        f"""
        import importlib.resources as r, finetrail, finetrail.governance, finetrail.training, finetrail.reports
        assert finetrail.__file__.startswith({str(env_dir)!r}), finetrail.__file__
        tpl = [p for p in r.files('finetrail.templates').iterdir() if p.name.endswith('.j2')]
        pol = [p for p in r.files('finetrail.policies').iterdir() if p.name.endswith('.yaml')]
        assert tpl and pol
        print(len(tpl[0].read_text('utf-8')) > 0, len(pol[0].read_text('utf-8')) > 0)
        import training
        """
    )
    proc = subprocess.run(
        [str(py), "-c", check], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    # `import training` must fail: nothing generic is installed at the top of site-packages.
    assert "True True" in proc.stdout, proc.stderr
    assert "No module named 'training'" in proc.stderr
    proc = subprocess.run(
        [str(env_dir / "bin" / "finetrail"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "finetrail" in proc.stdout, proc.stderr


META = ("--source", "s", "--license", "MIT", "--collection", "c", "--legal-basis", "b")
META += ("--purpose", "p")
# Each command that needs an extra, run in a venv holding the core wheel and its declared core
# dependencies only: exit 2, the exact `install finetrail[...]`, no traceback.
NEEDS_EXTRA: list[tuple[tuple[str, ...], str]] = [
    (("demo", "--out", "demo-out"), "finetrail[train,data,audit,reports]"),
    (("synth", "synthetic"), "finetrail[train]"),
    (("base-model", "build", "base"), "finetrail[train]"),
    (("train", "ws", "config.yaml"), "finetrail[train]"),
    (
        (
            "data",
            "register",
            "ws",
            "data.jsonl",
            *META,
            "--name",
            "n",
            "--scan",
        ),
        "finetrail[data]",
    ),
    (("data", "scan", "data.jsonl"), "finetrail[data]"),
    (("data", "register", "ws", "data.parquet", *META, "--name", "pq"), "finetrail[data]"),
    (("data", "digest", "data.parquet"), "finetrail[data]"),
    (
        ("data", "sanitize", "ws", "n0", "--input", "data.jsonl", "--output", "clean.jsonl"),
        "finetrail[data]",
    ),
    (("canaries", "plan", "--count", "10", "--delta", "1e-5"), "finetrail[audit]"),
    (("probe", "ws"), "finetrail[train]"),
    (("audit", "bias", "ws", "--eval", "data.jsonl", "--sensitive", "g"), "finetrail[train,audit]"),
    (
        ("audit", "bias", "ws", "--predictions", "data.jsonl", "--sensitive", "g"),
        "finetrail[audit]",
    ),
    (("report", "ws"), "finetrail[reports]"),
    (("report", "ws", "--format", "md"), "finetrail[reports]"),
    (("report", "ws", "--format", "pdf"), "finetrail[reports,pdf]"),
    (("report", "ws", "--check"), "finetrail[reports]"),
    (("diff", "ws", "ws"), "finetrail[reports]"),
]
# ... and what the core alone does (exit 0, or 1 for a gate that fails on an empty workspace)
CORE_ONLY: list[tuple[tuple[str, ...], int]] = [
    (
        (
            "data",
            "register",
            "ws",
            "data.jsonl",
            *META,
            "--name",
            "n0",
        ),
        0,
    ),
    (("canaries", "plant", "ws", "--data", "data.jsonl", "--out", "aug.jsonl", "--m", "4"), 0),
    (("policy", "lint", "eu-ai-act-high-risk"), 0),
    (("keys", "generate", "--reviewer", "ci", "--out", "keys"), 0),
    (("gate", "ws", "--policy", "development"), 1),
    (("review", "status", "ws"), 0),
    (("data", "list", "ws"), 0),
    (("verify", "ws"), 0),
]


@pytest.fixture(scope="module")
def core_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its core dependencies from the package index."""
    env_dir = tmp_path_factory.mktemp("core") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    proc = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return env_dir


@pytest.mark.slow
def test_a_core_install_names_the_extra_each_command_needs(core_venv: Path, tmp_path: Path) -> None:
    py = core_venv / "bin" / "python"
    extras = subprocess.run(
        [
            str(py),
            "-c",
            "import importlib.util as u; print([m for m in ('torch', 'numpy', "
            "'presidio_analyzer', 'matplotlib', 'huggingface_hub') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert extras.strip() == "[]", f"the core venv holds optional packages: {extras}"
    exe = str(core_venv / "bin" / "finetrail")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "FINETRAIL_DEV_UNSIGNED": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args], capture_output=True, text=True, check=False, cwd=tmp_path, env=env
        )

    (tmp_path / "data.jsonl").write_text('{"text": "a", "g": "x"}\n{"text": "b", "g": "y"}\n')
    (tmp_path / "config.yaml").write_text("base_model: {path: base}\n")
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    init = run("init", "ws", "--model", "m", "--version", "1", "--owner", "o")
    assert init.returncode == 0, init.stderr
    problems = []
    for args, code in CORE_ONLY:
        proc = run(*args)
        if proc.returncode != code or "Traceback" in proc.stderr:
            problems.append(f"finetrail {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}")
    for args, extra in NEEDS_EXTRA:
        proc = run(*args)
        text = proc.stdout + proc.stderr
        if proc.returncode != 2 or f"install {extra}:" not in text or "Traceback" in text:
            problems.append(f"finetrail {' '.join(args)}: exit {proc.returncode}\n{text}")
    assert not problems, "\n\n".join(problems)
