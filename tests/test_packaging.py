"""The wheel as a user installs it (``pip install .``, not editable).

The wheel is built from a copy of the sources, installed into a fresh virtual
environment whose only other import path is this environment's dependencies
(without its editable ``tritium``), and run there.
"""

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("hw", "sw", "sim", "boards")


def _source_modules():
    """``tritium/...`` paths of every Python file of the four package folders."""
    return {f"tritium/{path.relative_to(ROOT).as_posix()}"
            for folder in FOLDERS for path in (ROOT / folder).rglob("*.py")
            if "__pycache__" not in path.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("tritium-*.whl")
    return path


def test_wheel_holds_every_module_of_the_source_tree(wheel):
    with zipfile.ZipFile(wheel) as z:
        modules = {n for n in z.namelist() if n.endswith(".py")}
    assert modules == _source_modules()


def test_tritium_runs_from_the_installed_wheel(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--no-deps", "-q", str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # This environment's packages as a plain path entry: its .pth files (the editable
    # install of tritium among them) are not processed there.
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; "
                                         "print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    where = subprocess.run([str(python), "-c", "import tritium.sw.cli.commands.sim as m; print(m.__file__)"],
                           capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site)
    for argv in (["--help"], ["generate", "--help"], ["sim", "--help"]):
        run = subprocess.run([str(venv / "bin" / "tritium"), *argv], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert "usage: tritium" in run.stdout
