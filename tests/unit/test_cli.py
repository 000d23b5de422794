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
