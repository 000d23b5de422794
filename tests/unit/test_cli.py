import pytest

from sttune_helpers.cli import build_parser
from sttune_helpers.config import load_preset
from sttune_helpers.rundir import STAGES, RunDirError
from sttune_helpers.runner.pipeline import parse_stage, prepare_run_dir, select_stages


@pytest.mark.parametrize("text", ["training", "3", "03", "03_training", "03_training.ipynb", " Training "])
def test_stage_names_and_numbers(text):
    assert parse_stage(text) == "training"


def test_unknown_stage_lists_the_stages():
    with pytest.raises(ValueError, match="unknown stage 'train'.*03 training"):
        parse_stage("train")


def test_stage_selection():
    assert select_stages(None, None) == list(STAGES)
    assert select_stages("evaluation", None) == ["evaluation", "embedding_viz"]
    assert select_stages(None, "2") == ["loss_selection"]


def test_run_options_parse():
    args = build_parser().parse_args(["run", "--preset", "smoke", "-p", "seed=1", "-p", "train.epochs=2",
                                      "--name", "x", "--from", "03"])
    assert args.overrides == ["seed=1", "train.epochs=2"] and args.from_stage == "03" and args.name == "x"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--preset", "smoke", "--config", "c.yaml"])  # one or the other


def test_prepare_run_dir_rules(tmp_path):
    config = load_preset("smoke")
    run = prepare_run_dir(tmp_path, "a", config, continuing=False, overwrite=False)
    assert run.config_path.is_file()
    with pytest.raises(RunDirError, match="already exists"):
        prepare_run_dir(tmp_path, "a", config, continuing=False, overwrite=False)
    (run.root / "stale").write_text("x")
    run = prepare_run_dir(tmp_path, "a", config, continuing=False, overwrite=True)
    assert not (run.root / "stale").exists()
    with pytest.raises(RunDirError, match="does not exist"):
        prepare_run_dir(tmp_path, "b", None, continuing=True, overwrite=False)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "precious.txt").write_text("keep me")
    with pytest.raises(RunDirError, match="not a run directory"):
        prepare_run_dir(tmp_path, "c", config, continuing=False, overwrite=True)
    assert (tmp_path / "c" / "precious.txt").exists()



def stand_in_notebooks(folder):
    """Five tiny stage notebooks: each fails if the previous stage's variables are still there,
    records its kernel's process id, and completes its stage."""
    import nbformat

    from sttune_helpers.rundir import NOTEBOOKS

    folder.mkdir()
    for stage, name in NOTEBOOKS.items():
        parameters = nbformat.v4.new_code_cell('run_dir = ""')
        parameters.metadata["tags"] = ["parameters"]
        body = nbformat.v4.new_code_cell(
            "import os\n"
            "from pathlib import Path\n"
            "from sttune_helpers.rundir import RunDir\n"
            "assert 'left_by_a_stage' not in globals(), 'a variable of the previous stage is still defined'\n"
            "left_by_a_stage = 1\n"
            f"run = RunDir(Path(run_dir))\nrun.start_stage({stage!r})\n"
            "with open(os.path.join(run_dir, 'kernel-pids.txt'), 'a') as pids:\n"
            "    pids.write(f'{os.getpid()}\\n')\n"
            f"run.complete_stage({stage!r})\n")
        notebook = nbformat.v4.new_notebook(cells=[parameters, body])
        notebook.metadata["kernelspec"] = {"name": "sttune", "display_name": "Python (sttune)", "language": "python"}
        nbformat.write(notebook, folder / name)
    return folder


@pytest.mark.parametrize("shared", [True, False])
def test_stages_share_one_kernel_with_a_clean_namespace(tmp_path, monkeypatch, capsys, shared):
    from sttune_helpers.runner.pipeline import NOTEBOOKS_ENV, run_stages

    monkeypatch.setenv(NOTEBOOKS_ENV, str(stand_in_notebooks(tmp_path / "notebooks")))
    monkeypatch.chdir(tmp_path)
    run = prepare_run_dir(tmp_path / "runs", "stand-in", load_preset("smoke"), continuing=False, overwrite=False)
    stages = STAGES if shared else STAGES[:2]  # a fresh kernel per stage is slow: two show it
    results = run_stages(run, stages, shared_kernel=shared)
    assert [r.status for r in results] == ["completed"] * len(stages), capsys.readouterr().out
    pids = (run.root / "kernel-pids.txt").read_text().split()
    assert len(pids) == len(stages)
    assert len(set(pids)) == (1 if shared else len(stages))
    # The runner records each stage's wall time (and the shared kernel's start) for the time report.
    entries = run.manifest()["stages"]
    assert all(entries[s]["wall_seconds"] >= entries[s]["seconds"] for s in stages)
    assert ("kernel_start_seconds" in entries[stages[0]]) == shared


# --- refused before anything starts: exit 2, the message, no run directory ----------------------------

@pytest.fixture
def no_stage_runs(monkeypatch):
    """Fail the test if a stage (a kernel) would start."""
    from sttune_helpers.runner import pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("a stage started")

    monkeypatch.setattr(pipeline, "run_stages", refuse)


def run_cli(*argv: str) -> int:
    from sttune_helpers.cli import main

    return main(list(argv))


def test_an_out_of_range_setting_stops_sttune_run_before_any_kernel_starts(tmp_path, capsys, no_stage_runs):
    runs = tmp_path / "runs"
    assert run_cli("run", "-p", "train.batch_size=0", "--name", "x", "--runs-dir", str(runs)) == 2
    assert "sttune: error: override: train.batch_size: 0 is out of range; expected an integer >= 1" in \
        capsys.readouterr().err
    assert not runs.exists()
    # The same from a config file, which the message names; and NaN, for a float.
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  learning_rate: .nan\n")
    assert run_cli("run", "--config", str(config), "--name", "x", "--runs-dir", str(runs)) == 2
    assert f"{config}: train.learning_rate: nan is out of range; expected a finite number > 0" in \
        capsys.readouterr().err
    assert not runs.exists()


def test_sttune_run_exits_2_for_an_out_of_range_setting(tmp_path):
    """The command as a user types it, in its own process (it fails before torch is imported)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "sttune_helpers.cli", "run", "-p", "train.batch_size=0",
                           "--name", "x"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert done.returncode == 2, done.stderr
    assert "train.batch_size: 0 is out of range; expected an integer >= 1" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no runs/ folder


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "   \n"])
def test_an_empty_config_file_is_refused(tmp_path, capsys, no_stage_runs, text):
    config = tmp_path / "empty.yaml"
    config.write_text(text)
    runs = tmp_path / "runs"
    assert run_cli("run", "--config", str(config), "--name", "x", "--runs-dir", str(runs)) == 2
    assert f"sttune: error: {config} is empty: it holds no settings" in capsys.readouterr().err
    assert not runs.exists()


@pytest.mark.parametrize("argv, flag", [
    (["run", "--name", ""], "--name"),
    (["run", "--name", "   "], "--name"),
    (["run", "--runs-dir", ""], "--runs-dir"),
    (["run", "--preset", ""], "--preset"),
    (["run", "--config", " "], "--config"),
    (["run", "--name", "x", "--from", ""], "--from"),
    (["run", "--name", "x", "--only", ""], "--only"),
    (["run", "-p", "train.learning_rate"], "-p/--param"),
    (["run", "-p", "=3e-5"], "-p/--param"),
    (["train", "--name", ""], "--name"),
    (["sweep", "--storage", ""], "--storage"),
    (["time", ""], "run"),
    (["data", "inspect", ""], "path"),
    (["data", "inspect", "x.csv", "--labels", ""], "--labels"),
])
def test_empty_options_are_refused_naming_the_option(tmp_path, monkeypatch, capsys, no_stage_runs, argv, flag):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as caught:
        run_cli(*argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: " in err and ("is empty" in err or "must look like KEY=VALUE" in err), err
    assert list(tmp_path.iterdir()) == []


def test_a_model_folder_without_a_model_fails_before_the_run_starts(tmp_path, capsys, no_stage_runs):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.txt").write_text("not a model")
    runs = tmp_path / "runs"
    assert run_cli("run", "--name", "x", "--runs-dir", str(runs), "-p", f"model.name={folder}") == 2
    err = capsys.readouterr().err
    assert (f"model.name: the folder {str(folder)!r} is not a model: expected modules.json (a folder saved by "
            "SentenceTransformer.save) or config.json") in err, err
    assert not runs.exists()
    # --only data_prep needs no model, but such a folder is still a mistake: refused the same way.
    assert run_cli("run", "--name", "x", "--runs-dir", str(runs), "--only", "data_prep",
                   "-p", f"model.name={folder}") == 2
    assert "is not a model" in capsys.readouterr().err and not runs.exists()


def test_open_run_refuses_a_model_folder_without_a_model_before_writing(tmp_path):
    from sttune_helpers.modeling import ModelNotFoundError
    from sttune_helpers.rundir import open_run

    folder = tmp_path / "empty-folder"
    folder.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"model\.name: the folder .*empty-folder' is not a model"):
        open_run(tmp_path / "run", "data_prep", preset="smoke", overrides=[f"model.name={folder}"])
    assert not (tmp_path / "run").exists()


def test_train_on_a_missing_run_suggests_only_commands_that_exist(tmp_path, capsys):
    """Each `sttune ...` command the message suggests parses, and every flag it mentions is in one."""
    import re
    import shlex

    assert run_cli("train", "--name", "nope", "--runs-dir", str(tmp_path)) == 2
    message = capsys.readouterr().err
    assert "does not exist" in message
    commands = re.findall(r"`(sttune [^`]*)`", message)
    assert commands
    for command in commands:
        argv = shlex.split(command)[1:]
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"the message suggests {command!r}, which `sttune` refuses:\n{message}")
    outside = re.sub(r"`[^`]*`", "", message)
    assert not re.findall(r"(?<!\w)--?[a-z][\w-]*", outside), message
    assert not (tmp_path / "nope").exists()


def test_sttune_run_shows_the_data_warnings_and_no_kernel_transport_warning(tmp_path, monkeypatch, capfd):
    """The data stage's warnings (a very long text, a dropped row) reach `sttune run`'s console, and
    the kernel, on IPC sockets, prints no warning that TCP is unencrypted (capfd: the kernel's own stderr)."""
    import csv

    rows = [("anchor", "positive"), *((f"question {i} about cats", f"answer {i} about dogs") for i in range(40)),
            ("a very long one", "word " * 2500), ("an empty positive", "")]
    with open(tmp_path / "pairs.csv", "w", newline="") as file:
        csv.writer(file).writerows(rows)
    monkeypatch.chdir(tmp_path)
    assert run_cli("run", "--preset", "smoke", "--name", "warned", "--only", "data_prep",
                   "-p", f"data.source={tmp_path / 'pairs.csv'}", "-p", "data.on_invalid=drop") == 0
    captured = capfd.readouterr()
    console = captured.out + captured.err
    assert "warning: 1 invalid row(s) dropped (data.on_invalid: drop)" in captured.out, console
    assert "warning: 1 text(s) longer than 10,000 characters" in captured.out, console
    assert "without encryption" not in console and "IPKernelApp" not in console, console
