"""A real install: the wheel built from this tree, installed (not editable) into a fresh virtual
environment, runs `sttune run --preset smoke` from an empty folder without the source tree.

The venv reuses the dependencies already installed here through a .pth file (no download); its own
site-packages comes first, so sttune_helpers is imported from the wheel's copy."""

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, SMOKE_TIMEOUT_S, sttune_env
from helpers.tiny_model import build_tiny_model_folder

from sttune_helpers.rundir import NOTEBOOKS, STAGES

pytestmark = [pytest.mark.slow, pytest.mark.install]

# What the build reads: the top-level files (pyproject.toml, setup.py, MANIFEST.in, README.md) and these.
BUILD_FOLDERS = ("sttune_helpers", "notebooks")
NOT_SOURCE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


def build_wheel(workdir: Path) -> Path:
    """The wheel, built offline from a copy of the tree, so that the build's build/ and egg-info
    never land in the checkout."""
    source = workdir / "source"
    source.mkdir()
    for path in REPO.iterdir():
        if path.is_file():
            shutil.copy2(path, source / path.name)
    for folder in BUILD_FOLDERS:
        shutil.copytree(REPO / folder, source / folder, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "--wheel-dir", str(workdir / "dist"), str(source)], check=True, env=pip_env())
    return next((workdir / "dist").glob("sttune-*.whl"))


def pip_env() -> dict:
    return {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def dependency_dirs() -> list[str]:
    """This interpreter's site-packages (where the dependencies are), never the source tree."""
    dirs = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])]
    return [d for d in dirs if Path(d).is_dir()]


def fresh_venv(folder: Path) -> Path:
    """A venv without the source tree on its path, that sees this interpreter's dependencies after its own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "sttune-test-dependencies.pth").write_text("\n".join(dependency_dirs()) + "\n")
    return python


def installed_env() -> dict:
    """As a user's shell: no PYTHONPATH pointing at a checkout."""
    return {k: v for k, v in sttune_env().items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the venv's python, the wheel, an empty folder to run in, the tiny model)."""
    workdir = tmp_path_factory.mktemp("install")
    wheel = build_wheel(workdir)
    python = fresh_venv(workdir / "venv")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True, env=pip_env())
    empty = workdir / "empty"
    empty.mkdir()
    return python, wheel, empty, build_tiny_model_folder(workdir / "tiny")


def test_the_wheel_holds_the_package_its_data_and_the_notebooks(installed):
    _, wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {path.relative_to(REPO).as_posix() for path in (REPO / "sttune_helpers").rglob("*")
               if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")}
    # Presets, the embedded STS-B, the reference sets: every file of the package, not only its code.
    assert {"sttune_helpers/config/presets/smoke.yaml", "sttune_helpers/datasets/stsb/sts-test.tsv"} <= sources
    assert sources - names == set()
    assert {f"sttune_helpers/notebooks/{nb}" for nb in NOTEBOOKS.values()} <= names
    for notebook in NOTEBOOKS.values():  # the repository's notebooks, byte for byte
        assert zipfile.ZipFile(wheel).read(f"sttune_helpers/notebooks/{notebook}") == (
            REPO / "notebooks" / notebook).read_bytes()


def test_installed_sttune_runs_the_smoke_preset_from_an_empty_folder(installed):
    python, _, empty, tiny = installed
    bin_dir = python.parent
    where = subprocess.run([str(python), "-c", "import sttune_helpers; from sttune_helpers.runner.pipeline import "
                            "notebooks_dir; print(sttune_helpers.__file__); print(notebooks_dir())"],
                           cwd=empty, env=installed_env(), capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    package_file, notebooks = map(Path, where.stdout.split())
    install_root = bin_dir.parent.resolve()
    assert package_file.resolve().is_relative_to(install_root) and not package_file.resolve().is_relative_to(REPO)
    assert notebooks.resolve() == package_file.resolve().parent / "notebooks"

    lab_help = subprocess.run([str(bin_dir / "sttune"), "lab", "--help"], cwd=empty, env=installed_env(),
                              capture_output=True, text=True, timeout=120)
    assert lab_help.returncode == 0 and "usage: sttune lab" in lab_help.stdout, lab_help.stderr
    # Past the argument parsing: the kernel registered in the venv, the notebooks found, JupyterLab started.
    lab = subprocess.run([str(bin_dir / "sttune"), "lab", "--", "--version"], cwd=empty, env=installed_env(),
                         capture_output=True, text=True, timeout=300)
    assert lab.returncode == 0 and lab.stdout.strip().splitlines()[-1][:1].isdigit(), lab.stdout + lab.stderr
    # The workspace's notebooks are copies of the installed ones, not of a source tree.
    assert f"copied from {notebooks}" in lab.stdout and len(list((empty / "lab").glob("0*.ipynb"))) == 5

    overrides = [f"model.name={tiny}", "data.max_train_rows=48", "data.max_validation_rows=24",
                 "data.max_test_rows=16", "train.batch_size=8", "train.max_steps=2", "eval.select_model=false",
                 "eval.bootstrap_samples=50", "eval.reference_max_pairs=40", "eval.interpolation_alphas=[0, 1]",
                 "viz.max_points=40", "viz.n_epochs=30", "viz.n_clusters=3"]
    run = subprocess.run([str(bin_dir / "sttune"), "run", "--preset", "smoke", "--name", "installed",
                          *[part for override in overrides for part in ("-p", override)]],
                         cwd=empty, env=installed_env(), capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    assert run.returncode == 0, run.stdout + run.stderr
    run_dir = empty / "runs" / "installed"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [manifest["stages"][stage]["status"] for stage in STAGES] == ["completed"] * len(STAGES)
    assert sorted(p.name for p in (run_dir / "notebooks").glob("*.ipynb")) == sorted(NOTEBOOKS.values())
    assert (run_dir / "eval" / "metrics.json").is_file() and (run_dir / "model" / "config.json").is_file()
    # The stages ran in the venv's kernel, i.e. on the installed package.
    kernel = json.loads((install_root / "share" / "jupyter" / "kernels" / "sttune" / "kernel.json").read_text())
    assert os.path.abspath(kernel["argv"][0]) == os.path.abspath(python)  # not resolved: a venv's python is a link
