"""lab.yaml and the notebooks' parameters cells: papermill's values > the cell's > lab.yaml > defaults;
a stage's error in JupyterLab shows as one line and still fails the cell."""

import json
import os
from pathlib import Path

import nbformat
import pytest
import yaml

from sttune_helpers.core.errors import SettingError
from sttune_helpers.rundir import NOTEBOOKS, RunDir, StageOrderError
from sttune_helpers.stages import lab

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def outside_jupyter(monkeypatch):
    monkeypatch.delenv(lab.SESSION_ENV, raising=False)


def test_lab_file_round_trip_resolves_paths_from_its_folder(tmp_path):
    (tmp_path / "ws").mkdir()
    path = lab.write_lab_file(tmp_path / "ws", "../runs/first", "default", "configs/mine.yaml")
    assert yaml.safe_load(path.read_text()) == {"run_dir": "../runs/first", "preset": "default",
                                                "config_path": "configs/mine.yaml"}
    assert lab.settings(folder=tmp_path / "ws") == (str(tmp_path / "runs" / "first"), "default",
                                                     str(tmp_path / "ws" / "configs" / "mine.yaml"))
    lab.write_lab_file(tmp_path / "ws", "/abs/run", "smoke")
    assert lab.read_lab_file(tmp_path / "ws") == {"run_dir": "/abs/run", "preset": "smoke"}  # null config left out


@pytest.mark.parametrize("text, named", [
    ("run_dir: [unclosed", "not valid YAML"),
    ("- run_dir\n", "must hold a mapping"),
    ("run: ../runs/x\n", "unknown key(s) run"),
    ("preset: huge\n", "unknown preset 'huge'"),
    ("run_dir: 3\n", "run_dir must be text"),
    ("run_dir: ''\n", "run_dir must be text"),
])
def test_a_bad_lab_file_is_refused_naming_the_file(tmp_path, text, named):
    (tmp_path / lab.LAB_FILE).write_text(text)
    with pytest.raises(SettingError) as caught:
        lab.settings(folder=tmp_path)
    assert str(tmp_path / lab.LAB_FILE) in str(caught.value) and named in str(caught.value)


def test_writing_an_unknown_preset_is_refused(tmp_path):
    with pytest.raises(SettingError, match="unknown preset 'huge'"):
        lab.write_lab_file(tmp_path, "../runs/lab", "huge")
    assert not (tmp_path / lab.LAB_FILE).exists()


def test_values_given_win_over_lab_yaml_which_wins_over_the_defaults(tmp_path):
    assert lab.settings(folder=tmp_path) == (lab.DEFAULT_RUN_DIR, lab.DEFAULT_PRESET, None)  # no lab.yaml
    lab.write_lab_file(tmp_path, "runs/a", "default")
    assert lab.settings(folder=tmp_path) == (str(tmp_path / "runs" / "a"), "default", None)
    assert lab.settings("mine", folder=tmp_path) == ("mine", "default", None)
    assert lab.settings(None, "auto", "c.yaml", folder=tmp_path) == (str(tmp_path / "runs" / "a"), "auto", "c.yaml")


def test_lab_yaml_config_is_for_a_new_run_only(tmp_path):
    lab.write_lab_file(tmp_path, "run", "smoke", "other.yaml")
    assert lab.settings(folder=tmp_path)[2] == str(tmp_path / "other.yaml")
    RunDir(tmp_path / "run").root.mkdir()
    (tmp_path / "run" / "config.yaml").write_text("{}\n")
    assert lab.settings(folder=tmp_path)[2] is None  # the run keeps its own config.yaml
    assert lab.settings(config_path="given.yaml", folder=tmp_path)[2] == "given.yaml"


def test_lab_yaml_is_read_only_in_a_jupyter_session(tmp_path, monkeypatch):
    lab.write_lab_file(tmp_path, "runs/a", "default")
    monkeypatch.chdir(tmp_path)
    assert lab.settings() == (lab.DEFAULT_RUN_DIR, lab.DEFAULT_PRESET, None)  # papermill: no session
    monkeypatch.setenv(lab.SESSION_ENV, str(tmp_path / "01_data_prep.ipynb"))
    monkeypatch.chdir("/")  # the session's path, not the working directory, names the notebook's folder
    assert lab.settings() == (str(tmp_path / "runs" / "a"), "default", None)


# --- the notebooks' parameters cells ----------------------------------------------------------------


def parameters_cell(notebook: str) -> nbformat.NotebookNode:
    cells = nbformat.read(REPO / "notebooks" / notebook, as_version=4).cells
    return next(cell for cell in cells if "parameters" in cell.metadata.get("tags", []))


def run_parameters(notebook: str, injected: dict | None = None, edit: tuple[str, str] | None = None) -> dict:
    """Execute a notebook's parameters cell (with ``edit`` applied to its text) and the cell that
    papermill injects after it; returns the variables."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    node = load_notebook_node(str(REPO / "notebooks" / notebook))
    cell = next(cell for cell in node.cells if "parameters" in cell.metadata.get("tags", []))
    if edit:
        assert edit[0] in cell.source
        cell.source = cell.source.replace(*edit)
    if injected:
        node = parameterize_notebook(node, injected)
    wanted = {"parameters", "injected-parameters"}
    sources = [c.source for c in node.cells if wanted & set(c.metadata.get("tags", []))]
    assert len(sources) == (2 if injected else 1)
    namespace: dict = {}
    for source in sources:
        exec(compile(source, notebook, "exec"), namespace)
    return namespace


@pytest.mark.parametrize("notebook", list(NOTEBOOKS.values()))
def test_each_parameters_cell_follows_lab_yaml_unless_papermill_or_the_cell_sets_a_value(tmp_path, monkeypatch,
                                                                                          notebook):
    workspace = tmp_path / "lab"
    workspace.mkdir()
    lab.write_lab_file(workspace, "../runs/mine", "default")

    # Under papermill (no Jupyter session): the injected run_dir, the default preset; lab.yaml is not read.
    monkeypatch.chdir(workspace)
    values = run_parameters(notebook, injected={"run_dir": "/runs/injected"})
    assert (values["run_dir"], values["preset"], values["config_path"]) == ("/runs/injected", "smoke", None)

    # In JupyterLab: lab.yaml's run and preset; a value written in the cell, then one injected, win.
    monkeypatch.setenv(lab.SESSION_ENV, str(workspace / notebook))
    values = run_parameters(notebook)
    assert (values["run_dir"], values["preset"]) == (str(tmp_path / "runs" / "mine"), "default")
    values = run_parameters(notebook, edit=("preset = None", "preset = 'auto'"))
    assert (values["run_dir"], values["preset"]) == (str(tmp_path / "runs" / "mine"), "auto")
    values = run_parameters(notebook, injected={"preset": "smoke"})
    assert (values["run_dir"], values["preset"]) == (str(tmp_path / "runs" / "mine"), "smoke")


@pytest.mark.parametrize("notebook", list(NOTEBOOKS.values()))
def test_each_notebook_says_where_to_set_the_run_first(notebook):
    first = nbformat.read(REPO / "notebooks" / notebook, as_version=4).cells[0]
    assert first.cell_type == "markdown"
    assert "Set run and preset in `lab.yaml` (or here), then Run All" in first.source


# --- one-line errors ---------------------------------------------------------------------------------


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    yield shell
    shell.set_custom_exc((), None)
    # A live shell makes get_ipython() answer in later tests (ipywidgets' Output then swallows errors).
    InteractiveShell.clear_instance()


def test_an_sttune_error_shows_as_one_line_and_still_fails_the_cell(shell, capsys):
    assert lab.show_errors_as_one_line(shell)
    result = shell.run_cell("from sttune_helpers.rundir import StageOrderError\n"
                            "def start():\n    raise StageOrderError('run 01_data_prep.ipynb first')\n"
                            "start()\n")
    assert isinstance(result.error_in_exec, StageOrderError) and not result.success
    shown = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(shown) == 1 and shown[0].endswith("StageOrderError\x1b[0m: run 01_data_prep.ipynb first"), shown

    result = shell.run_cell("def bug():\n    raise KeyError('a bug')\nbug()\n")  # not the user's: a traceback
    assert isinstance(result.error_in_exec, KeyError)
    assert "Traceback" in capsys.readouterr().out


def test_the_handler_is_left_out_without_a_jupyter_session():
    assert lab.show_errors_as_one_line() is False  # papermill: the run fails with the traceback


def kernel_outputs(code: str, env: dict) -> tuple[dict, list[dict]]:
    """Run ``code`` in a fresh kernel of this Python started with ``env``; the reply and the outputs."""
    from jupyter_client.manager import start_new_kernel

    from sttune_helpers.runner.pipeline import ensure_kernel

    manager, client = start_new_kernel(kernel_name=ensure_kernel(), env=env)
    outputs = []
    try:
        reply = client.execute_interactive(code, timeout=120, output_hook=lambda msg: outputs.append(msg))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return reply["content"], [m for m in outputs if m["msg_type"] in ("error", "stream")]


def stage_before_its_input(tmp_path: Path) -> str:
    run = tmp_path / "run"
    return ("from sttune_helpers.stages import lab\nlab.show_errors_as_one_line()\n"
            "from sttune_helpers.rundir import open_run\n"
            f"open_run({str(run)!r}, 'training', preset='smoke')\n")


def with_repo_on_path() -> str:
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def test_in_a_jupyter_kernel_the_error_is_one_line_and_the_cell_fails(tmp_path):
    env = {**os.environ, "PYTHONPATH": with_repo_on_path(), lab.SESSION_ENV: str(tmp_path / "03_training.ipynb")}
    reply, outputs = kernel_outputs(stage_before_its_input(tmp_path), env)
    assert reply["status"] == "error" and reply["ename"] == "StageOrderError"  # Run All stops here
    errors = [m["content"] for m in outputs if m["msg_type"] == "error"]
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1, errors
    assert "needs stage 'data_prep' (01_data_prep.ipynb) to complete first" in errors[0]["traceback"][0]


def test_under_papermill_the_error_fails_the_run_with_its_message(tmp_path, monkeypatch):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from sttune_helpers.runner.pipeline import ensure_kernel

    notebook = nbformat.v4.new_notebook(cells=[parameters_cell(NOTEBOOKS["training"]),
                                               nbformat.v4.new_code_cell(stage_before_its_input(tmp_path))])
    notebook.metadata["kernelspec"] = {"name": "sttune", "display_name": "Python (sttune)", "language": "python"}
    nbformat.write(notebook, tmp_path / "in.ipynb")
    monkeypatch.setenv("PYTHONPATH", with_repo_on_path())
    with pytest.raises(PapermillExecutionError) as caught:
        papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"run_dir": str(tmp_path / "run")}, kernel_name=ensure_kernel(),
                                   progress_bar=False, cwd=str(tmp_path))
    assert caught.value.ename == "StageOrderError" and "needs stage 'data_prep'" in caught.value.evalue
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    error = executed["cells"][-1]["outputs"][-1]
    assert len(error["traceback"]) > 1  # the full traceback: a headless run keeps it
