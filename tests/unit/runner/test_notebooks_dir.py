"""Where `sttune run` and `sttune lab` find the stage notebooks: $STTUNE_NOTEBOOKS, the copy a wheel
installs beside the package, else the checkout's notebooks/ (tests/end_to_end/test_install.py runs a wheel)."""

from pathlib import Path

import pytest
from conftest import REPO

from sttune_helpers.rundir import NOTEBOOKS, RunDirError
from sttune_helpers.runner import pipeline


def installed_package(folder: Path) -> Path:
    """A stand-in for sttune_helpers as a wheel installs it, with its notebooks/."""
    (folder / "notebooks").mkdir(parents=True)
    for name in NOTEBOOKS.values():
        (folder / "notebooks" / name).write_text("{}")
    return folder


def test_a_checkout_uses_its_notebooks_folder(monkeypatch):
    monkeypatch.delenv(pipeline.NOTEBOOKS_ENV, raising=False)
    assert pipeline.notebooks_dir() == REPO / "notebooks"


def test_the_notebooks_installed_with_the_package_come_first(monkeypatch, tmp_path):
    monkeypatch.delenv(pipeline.NOTEBOOKS_ENV, raising=False)
    package = installed_package(tmp_path / "sttune_helpers")
    monkeypatch.setattr(pipeline.resources, "files", lambda name: package)
    assert pipeline.notebooks_dir() == package / "notebooks"


def test_an_incomplete_folder_is_refused_with_the_setting_to_fix(monkeypatch, tmp_path):
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "01_data_prep.ipynb").write_text("{}")
    monkeypatch.setenv(pipeline.NOTEBOOKS_ENV, str(tmp_path / "partial"))
    with pytest.raises(RunDirError, match=f"not in {tmp_path / 'partial'}; set {pipeline.NOTEBOOKS_ENV}"):
        pipeline.notebooks_dir()
