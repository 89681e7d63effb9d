"""The wheel installs one namespace, `finetrail`, with templates and policies as package data."""

from __future__ import annotations

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
