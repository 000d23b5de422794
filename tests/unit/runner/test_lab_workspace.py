"""`sttune lab`'s workspace: the notebooks copied on the first start, the user's copies kept after,
lab.yaml written once and changed only on request; the templates are never written."""

import hashlib
import json
from pathlib import Path

import nbformat
import pytest
from ipykernel.ipkernel import IPythonKernel

from sttune_helpers.core.errors import SettingError
from sttune_helpers.rundir import NOTEBOOKS, RunDirError
from sttune_helpers.runner.lab_workspace import prepare_workspace
from sttune_helpers.runner.pipeline import NOTEBOOKS_ENV, notebooks_dir
from sttune_helpers.stages.lab import LAB_FILE, read_lab_file, settings

NAMES = list(NOTEBOOKS.values())


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def templates(tmp_path, monkeypatch):
    """A copy of the template notebooks (STTUNE_NOTEBOOKS), so that a write to them would show."""
    folder = tmp_path / "templates"
    folder.mkdir()
    for name in NAMES:
        (folder / name).write_bytes((notebooks_dir() / name).read_bytes())
    monkeypatch.setenv(NOTEBOOKS_ENV, str(folder))
    monkeypatch.chdir(tmp_path)
    return folder


def without_language_info(path: Path) -> dict:
    notebook = json.loads(path.read_text())
    del notebook["metadata"]["language_info"]
    return notebook


def test_the_first_start_copies_the_notebooks_and_writes_lab_yaml(templates, tmp_path):
    before = digests(templates)
    workspace = prepare_workspace(Path("lab"))
    assert workspace.folder == tmp_path / "lab" and workspace.copied == NAMES and workspace.kept == []
    for name in NAMES:
        assert without_language_info(tmp_path / "lab" / name) == without_language_info(templates / name), name
    assert read_lab_file(tmp_path / "lab") == {"run_dir": "../runs/lab", "preset": "smoke"}
    # The notebooks' view of it: ./runs/lab, the quick preset.
    assert settings(folder=tmp_path / "lab") == (str(tmp_path / "runs" / "lab"), "smoke", None)
    assert workspace.lab_file == "created" and "lab.yaml (created): run_dir ../runs/lab, preset smoke" in \
        workspace.summary()
    assert digests(templates) == before


def test_the_copies_carry_the_language_info_the_kernel_reports(templates, tmp_path):
    """JupyterLab sets a notebook's language_info to the kernel's on opening, and marks the notebook
    changed when that differs from the file's; the copies must open clean."""
    prepare_workspace(Path("lab"))
    for name in NAMES:
        text = (tmp_path / "lab" / name).read_text()
        assert json.loads(text)["metadata"]["language_info"] == IPythonKernel.language_info, name
        # As JupyterLab saves it (nbformat's layout, a final newline): saving untouched rewrites nothing.
        assert text == nbformat.writes(nbformat.read(tmp_path / "lab" / name, as_version=4)) + "\n", name


def test_later_starts_keep_the_users_copies_and_restore_missing_ones(templates, tmp_path):
    prepare_workspace(Path("lab"))
    edited = tmp_path / "lab" / NAMES[2]
    edited.write_text(edited.read_text().replace("Training", "My training"))
    (tmp_path / "lab" / NAMES[0]).unlink()
    (tmp_path / "lab" / LAB_FILE).write_text("run_dir: ../runs/mine\npreset: default\n")
    user_files = digests(tmp_path / "lab")

    workspace = prepare_workspace(Path("lab"))
    assert workspace.copied == [NAMES[0]] and workspace.kept == NAMES[1:]
    after = digests(tmp_path / "lab")
    assert {k: v for k, v in after.items() if k != NAMES[0]} == user_files  # edits and lab.yaml untouched
    assert without_language_info(tmp_path / "lab" / NAMES[0]) == without_language_info(templates / NAMES[0])
    assert workspace.lab_file == "kept" and "never overwritten" in workspace.summary()
    assert "run_dir ../runs/mine, preset default" in workspace.summary()


def test_run_preset_and_config_options_rewrite_lab_yaml(templates, tmp_path):
    prepare_workspace(Path("ws/lab"))
    (tmp_path / "mine.yaml").write_text("{}\n")
    workspace = prepare_workspace(Path("ws/lab"), run="first-try", config_path=Path("mine.yaml"))
    assert workspace.lab_file == "updated"
    assert read_lab_file(tmp_path / "ws" / "lab") == {"run_dir": "../../runs/first-try", "preset": "smoke",
                                                      "config_path": "../../mine.yaml"}
    # A preset without a config clears the config, which would replace the preset.
    prepare_workspace(Path("ws/lab"), preset="default", runs_dir=Path("elsewhere"), run="b")
    assert read_lab_file(tmp_path / "ws" / "lab") == {"run_dir": "../../elsewhere/b", "preset": "default"}


def test_a_preset_for_a_run_that_exists_says_it_is_kept(templates, tmp_path):
    (tmp_path / "runs" / "old").mkdir(parents=True)
    (tmp_path / "runs" / "old" / "config.yaml").write_text("{}\n")
    workspace = prepare_workspace(Path("lab"), run="old", preset="default")
    assert any("which it keeps" in note for note in workspace.notes)
    assert not prepare_workspace(Path("lab"), run="new", preset="default").notes


def test_bad_workspaces_and_run_names_are_refused(templates, tmp_path):
    before = digests(templates)
    with pytest.raises(SettingError, match="is the folder of the template notebooks"):
        prepare_workspace(templates)
    (tmp_path / "afile").write_text("")
    with pytest.raises(SettingError, match="is a file"):
        prepare_workspace(tmp_path / "afile")
    with pytest.raises(RunDirError, match="not allowed"):
        prepare_workspace(tmp_path / "lab", run="../x")
    with pytest.raises(SettingError, match="is not a file"):
        prepare_workspace(tmp_path / "lab", config_path=tmp_path / "missing.yaml")
    assert digests(templates) == before and not (tmp_path / "lab").exists()  # refused before copying


def test_sttune_lab_starts_jupyter_on_the_workspace(templates, tmp_path, monkeypatch, capsys):
    from sttune_helpers import cli
    from sttune_helpers.runner import pipeline

    started = []
    monkeypatch.setattr(pipeline, "ensure_kernel", lambda: "sttune")
    monkeypatch.setattr(cli.subprocess, "call", lambda command, env: started.append(command) or 0)
    assert cli.main(["lab", "--workspace", "mylab", "--run", "a", "--preset", "default", "--",
                     "--no-browser"]) == 0
    assert started[0][-2:] == [f"--ServerApp.root_dir={tmp_path / 'mylab'}", "--no-browser"]
    assert read_lab_file(tmp_path / "mylab") == {"run_dir": "../runs/a", "preset": "default"}
    out = capsys.readouterr().out
    assert f"workspace {tmp_path / 'mylab'}" in out and "copied from" in out
