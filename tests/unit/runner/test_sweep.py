"""Optuna sweeps on the tiny model: trials as run directories in a stored study, pruning, the best
trial replayed by `sttune run --config`, the space's validation, and the sweep panel."""

import json
import os
import types
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import sttune
from helpers.tiny_model import build_tiny_model_folder

from sttune_helpers.config import ConfigError, RunConfig, load_config, load_preset
from sttune_helpers.core.io import read_json
from sttune_helpers.rundir import RunDir
from sttune_helpers.runner.sweep import PruningReporter, describe_trial, plot_importance, run_sweep, trials_table
from sttune_helpers.ui import SweepPanel, sweep_panel

SPACE = {
    "train.learning_rate": {"low": 1.0e-5, "high": 1.0e-3, "log": True},
    "train.batch_size": {"choices": [4, 8]},
    "train.warmup_ratio": {"low": 0.0, "high": 0.2},
}
METRIC = "eval_validation_spearman_cosine"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def tiny_config(tiny_folder, space=SPACE) -> RunConfig:
    """A few STS-B pairs and two training steps with two evaluations; the later stages kept small for the replay."""
    return load_preset("smoke").with_overrides({
        "model.name": tiny_folder, "data.max_train_rows": 48, "data.max_validation_rows": 24,
        "data.max_test_rows": 16, "train.max_steps": 2, "train.evaluations_per_epoch": 2, "train.logging_steps": 1,
        "train.early_stopping_patience": None, "eval.bootstrap_samples": 50, "eval.reference_max_pairs": 40,
        "eval.interpolation_alphas": [0.0, 1.0], "viz.max_points": 40, "viz.n_epochs": 20, "sweep.space": space,
    })


@pytest.fixture(scope="module")
def cli_sweep(tmp_path_factory, tiny_folder):
    """`sttune sweep --config FILE --trials 3`, as a user runs it."""
    workdir = tmp_path_factory.mktemp("sweep")
    config_file = workdir / "sweep.yaml"
    config_file.write_text(tiny_config(tiny_folder).to_yaml())
    result = sttune("sweep", "--config", str(config_file), "--name", "study", "--runs-dir", str(workdir / "runs"),
                    "--trials", "3", cwd=workdir, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir, workdir / "runs" / "study", result


def _get(config: RunConfig, key: str):
    node = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.slow
def test_sweep_stores_the_study_and_each_trial_is_a_run(cli_sweep):
    workdir, root, result = cli_sweep
    storage = f"sqlite:///{root / 'study.db'}"
    study = optuna.load_study(study_name="study", storage=storage)
    assert len(study.trials) == 3
    # The median pruner waits for 3 completed trials, so the first 3 all complete.
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # Spearman: higher is better
    shared = RunDir(root / "data-prep")
    for trial in study.trials:
        run = RunDir(root / f"trial-{trial.number:03d}")
        assert trial.user_attrs["run_dir"] == str(run.root)
        assert trial.user_attrs["config_path"] == str(run.config_path)
        config = load_config(run.config_path)
        assert set(trial.params) == set(SPACE)
        for key, value in trial.params.items():
            assert _get(config, key) == value, key
        stages = run.manifest()["stages"]
        assert [stages[s]["status"] for s in ("data_prep", "loss_selection", "training")] == ["completed"] * 3
        summary = read_json(run.training_summary_path)
        assert trial.value == pytest.approx(summary["best_metric"])  # the objective is the best validation metric
        assert summary["global_step"] == 2
        # Reported at each evaluation, numbered 1, 2 (not by optimiser step).
        assert sorted(trial.intermediate_values) == [1, 2]
        assert max(trial.intermediate_values.values()) == pytest.approx(trial.value)
        assert (run.model_dir / "config_sentence_transformers.json").is_file()
        assert not run.checkpoints_dir.exists()  # removed after the trial; model/ holds the best
        # The data was prepared once and linked into each trial.
        assert os.path.samefile(run.split_path("train"), shared.split_path("train"))
        assert "Trainer" not in result.stdout  # the trainer's output went into the trial's log
        assert (run.root / "trial.log").stat().st_size > 0

    # One line per trial, then the best trial and how to replay it.
    lines = result.stdout.splitlines()
    assert sum(line.startswith("trial ") for line in lines) == 3
    best = study.best_trial
    replay = f"sttune run --config runs/study/trial-{best.number:03d}/config.yaml --name study-best"
    assert f"best: trial {best.number} with validation_spearman_cosine {best.value:.4f}" in result.stdout
    assert f"replay: {replay}" in result.stdout

    summary = json.loads((root / "sweep.json").read_text())
    assert summary["best"]["number"] == best.number and summary["best"]["value"] == pytest.approx(best.value)
    assert summary["best"]["params"] == best.params and summary["best"]["replay"] == replay
    assert summary["states"] == {"complete": 3} and len(summary["trials"]) == 3
    assert summary["metric"] == METRIC and summary["space"] == SPACE


@pytest.mark.slow
def test_the_best_trial_replays_with_sttune_run(cli_sweep):
    workdir, root, _ = cli_sweep
    summary = json.loads((root / "sweep.json").read_text())
    result = sttune("run", "--config", summary["best"]["config_path"], "--name", "replay", "--runs-dir",
                    str(workdir / "runs"), cwd=workdir, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    replay = RunDir(workdir / "runs" / "replay")
    assert all(entry["status"] == "completed" for entry in replay.manifest()["stages"].values())
    assert load_config(replay.config_path).to_dict() == load_config(summary["best"]["config_path"]).to_dict()
    # Same config, seed and data: the notebook pipeline reaches the trial's validation score.
    assert read_json(replay.training_summary_path)["best_metric"] == pytest.approx(summary["best"]["value"], abs=1e-4)


@pytest.mark.slow
def test_results_table_and_importance_plot(cli_sweep, tmp_path):
    _, root, _ = cli_sweep
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{root / 'study.db'}")
    table = trials_table(study)
    assert len(table) == 3 and set(SPACE) <= set(table.columns)
    scores = table["validation_spearman_cosine"].tolist()
    assert scores == sorted(scores, reverse=True)  # best first
    assert table.loc[0, "trial"] == study.best_trial.number
    figure = plot_importance(study, path=tmp_path / "importance.png")
    assert figure is not None and (tmp_path / "importance.png").stat().st_size > 5_000
    figure.canvas.draw()
    assert sorted(label.get_text() for label in figure.axes[0].get_yticklabels()) == sorted(SPACE)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


@pytest.mark.slow
def test_a_pruned_trial_is_recorded_in_the_study_and_its_manifest(cli_sweep, tiny_folder, capsys):
    workdir, root, _ = cli_sweep
    result = run_sweep(tiny_config(tiny_folder), "pruned", workdir / "runs", trials=1, pruner=AlwaysPrune(),
                       data_from=RunDir(root / "data-prep"))
    lines = capsys.readouterr().out.splitlines()
    (trial,) = result.study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["pruned_at"]["evaluation"] == 1 and trial.user_attrs["pruned_at"]["step"] == 1
    run = RunDir(workdir / "runs" / "pruned" / "trial-000")
    training = run.manifest()["stages"]["training"]
    assert training["status"] == "failed" and "pruned at evaluation 1" in training["error"]
    assert not run.training_summary_path.exists()
    assert "pruned at evaluation 1 (step 1" in lines[-1]
    assert result.summary["best"] is None and result.summary["states"] == {"pruned": 1}
    assert plot_importance(result.study) is None
    assert "needs at least 2 completed trials" in capsys.readouterr().out


def test_the_median_pruner_stops_a_trial_worse_than_earlier_ones_at_the_same_evaluation():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    distribution = optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)
    study.add_trial(optuna.trial.create_trial(params={"train.learning_rate": 1e-4},
                                              distributions={"train.learning_rate": distribution}, value=0.8,
                                              intermediate_values={1: 0.6, 2: 0.8}))
    state = types.SimpleNamespace(global_step=7)

    good = study.ask()
    reporter = PruningReporter(good, METRIC)
    reporter.on_evaluate(None, state, None, metrics={METRIC: 0.7})  # above the median at evaluation 1: goes on
    assert study.trials[-1].intermediate_values == {1: 0.7}

    bad = study.ask()
    reporter = PruningReporter(bad, METRIC)
    with pytest.raises(optuna.TrialPruned, match="evaluation 1 \\(step 7\\)"):
        reporter.on_evaluate(None, state, None, metrics={METRIC: 0.2})
    assert study.trials[-1].user_attrs["pruned_at"] == {"evaluation": 1, "step": 7, "value": 0.2}
    assert study.trials[-1].intermediate_values == {1: 0.2}
    study.tell(bad, state=optuna.trial.TrialState.PRUNED)
    assert "pruned at evaluation 1 (step 7, 0.2000)" in describe_trial(study.trials[-1])


def test_an_empty_space_is_refused_with_an_example(tmp_path):
    with pytest.raises(ConfigError, match="sweep.space is empty") as error:
        run_sweep(load_preset("smoke"), "empty", tmp_path, trials=1)
    assert "train.learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}" in str(error.value)
    assert not (tmp_path / "empty").exists()


def test_sweeping_epochs_under_a_step_cap_is_refused(tmp_path):
    config = load_preset("smoke").with_overrides({"train.max_steps": 5,
                                                  "sweep.space": {"train.epochs": {"low": 1, "high": 3, "step": 1}}})
    with pytest.raises(ConfigError, match="train.max_steps=5 overrides"):
        run_sweep(config, "epochs", tmp_path, trials=1)


def test_a_budget_is_refused_in_a_sweep(tmp_path):
    # train.budget's recipe would replace the swept values in every trial.
    config = load_preset("auto").with_overrides({"sweep.space": {"train.learning_rate": {"low": 1e-5, "high": 1e-4}}})
    with pytest.raises(ConfigError, match="train.budget=20m runs the automatic recipe"):
        run_sweep(config, "budget", tmp_path, trials=1)
    assert not (tmp_path / "budget").exists()


@pytest.mark.parametrize("space,message", [
    ({"train.learnin_rate": {"low": 1e-5, "high": 1e-4}}, "unknown config key 'train.learnin_rate' "
                                                          "\\(did you mean 'train.learning_rate'\\?\\)"),
    ({"train": {"low": 1, "high": 2}}, "'train' is a section of settings"),
    ({"train.batch_size": {"low": 8.5, "high": 32}}, "'train.batch_size' is an integer setting"),
    ({"train.batch_size": {"low": 8, "hi": 32}}, "'train.batch_size' must be .* \\(unknown field 'hi'\\)"),
    ({"train.learning_rate": {"low": 1e-4}}, "'train.learning_rate' needs both low and high"),
    ({"train.learning_rate": {"low": 0.0, "high": 1e-4, "log": True}}, "'train.learning_rate': a log range needs"),
    ({"train.learning_rate": {"low": 1e-3, "high": 1e-4}}, "'train.learning_rate': low .* must be below high"),
    ({"train.scheduler": {"low": 1, "high": 2}}, "'train.scheduler' expects one of .* give it \\{choices"),
    ({"train.scheduler": {"choices": ["linear", "cosinus"]}}, "'train.scheduler' expects one of .* got 'cosinus'"),
    ({"loss.name": {"choices": []}}, "'loss.name': choices must be a non-empty list"),
    ({"loss.matryoshka_dims": {"choices": [64]}}, "'loss.matryoshka_dims' expects a list"),
    ({"sweep.trials": {"low": 1, "high": 5}}, "'sweep.trials' is a setting of the sweep itself"),
    ({"train.early_stopping_metric": {"choices": ["loss"]}}, "'train.early_stopping_metric' cannot be swept"),
    ({"train.warmup_ratio": [0.0, 0.1]}, "'sweep.space.train.warmup_ratio' expects a mapping"),
])
def test_space_errors_name_the_key(tmp_path, space, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"sweep": {"space": space}}))
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_space_types_follow_the_config_keys():
    params = {p.key: p for p in RunConfig.search_space({
        "train.learning_rate": {"low": "1e-5", "high": 1e-4, "log": True},  # YAML reads 1e-5 as text
        "train.batch_size": {"choices": [16, 32.0]},
        "train.evaluations_per_epoch": {"low": 1, "high": 4},
        "train.epochs": {"low": 1, "high": 4, "step": 1},
        "loss.params.margin": {"low": 0.1, "high": 1},
        "loss.temperature": {"choices": [None, 0.05]},
    })}
    assert (params["train.learning_rate"].kind, params["train.learning_rate"].low) == ("float", 1e-5)
    assert params["train.batch_size"].choices == (16, 32)
    assert all(type(c) is int for c in params["train.batch_size"].choices)
    assert params["train.evaluations_per_epoch"].kind == "int"
    assert (params["train.epochs"].kind, params["train.epochs"].step) == ("float", 1.0)  # epochs is a float key
    assert params["loss.params.margin"].kind == "float"
    trial = optuna.create_study().ask()
    values = {key: param.suggest(trial) for key, param in params.items()}
    assert isinstance(values["train.evaluations_per_epoch"], int) and 1 <= values["train.evaluations_per_epoch"] <= 4
    assert values["train.epochs"] in (1.0, 2.0, 3.0, 4.0)
    # The sampled values are valid overrides of the config.
    config = RunConfig().with_overrides(values)
    assert config.train.batch_size == values["train.batch_size"]
    assert config.loss.params["margin"] == values["loss.params.margin"]


def test_sweep_panel_edits_the_space(tmp_path):
    config = load_preset("smoke").with_overrides({"sweep.space": {
        **SPACE, "train.evaluations_per_epoch": {"low": 1, "high": 4}}})
    panel = SweepPanel(config, "panel", tmp_path)
    assert set(panel.controls) == {"trials", "storage", "train.learning_rate.low", "train.learning_rate.high",
                                   "train.warmup_ratio.low", "train.warmup_ratio.high",
                                   "train.evaluations_per_epoch.low", "train.evaluations_per_epoch.high"}
    assert panel.controls["train.learning_rate.low"].value == pytest.approx(1e-5)
    assert panel.controls["train.warmup_ratio.high"].value == pytest.approx(0.2)

    panel.controls["train.learning_rate.high"].value = 3e-4
    panel.controls["train.warmup_ratio.low"].value = 0.05
    panel.controls["train.evaluations_per_epoch.high"].value = 6
    panel.controls["trials"].value = 7
    panel.controls["storage"].value = "sqlite:////tmp/elsewhere.db"
    space = config.sweep.space
    assert space["train.learning_rate"] == {"low": 1e-5, "high": pytest.approx(3e-4), "log": True}
    assert space["train.warmup_ratio"]["low"] == pytest.approx(0.05)
    assert space["train.evaluations_per_epoch"]["high"] == 6
    assert type(space["train.evaluations_per_epoch"]["high"]) is int
    assert (config.sweep.trials, config.sweep.storage) == (7, "sqlite:////tmp/elsewhere.db")
    assert space["train.batch_size"] == {"choices": [4, 8]}  # choices are shown, not edited

    panel.controls["train.warmup_ratio.low"].value = 0.3  # above high (0.2): refused, named
    assert space["train.warmup_ratio"]["low"] == pytest.approx(0.05)
    assert "train.warmup_ratio" in panel.status.value and "must be below high" in panel.status.value
    panel.controls["train.warmup_ratio.low"].value = 0.1
    assert space["train.warmup_ratio"]["low"] == pytest.approx(0.1) and panel.status.value == ""
    # What the panel made is a valid config (it is what the sweep and config.yaml get).
    assert RunConfig.from_dict(config.to_dict()).sweep.space == space
    panel.controls["storage"].value = " "
    assert config.sweep.storage is None

    assert sweep_panel(config, "panel", tmp_path, interactive=False) is None


def test_sweep_panel_without_a_space_shows_an_example(tmp_path):
    panel = SweepPanel(load_preset("smoke"), "panel", tmp_path)
    assert panel.run_button.disabled
    assert "train.learning_rate: {low: 1.0e-5" in panel.status.value


@pytest.mark.slow
def test_sweep_panel_runs_the_sweep(cli_sweep, tiny_folder):
    workdir, root, _ = cli_sweep
    config = tiny_config(tiny_folder)
    config.sweep.trials = 2
    panel = SweepPanel(config, "panel", workdir / "runs", data_from=RunDir(root / "data-prep"))
    panel.controls["trials"].value = 1
    panel.run_button.click()
    assert panel.result is not None and len(panel.result.study.trials) == 1
    assert (workdir / "runs" / "panel" / "sweep.json").is_file()
    assert not panel.run_button.disabled


def test_a_storage_that_is_no_url_is_refused_before_any_work(tmp_path):
    config = load_preset("smoke").with_overrides({"sweep.space": SPACE})
    with pytest.raises(ConfigError, match="storage 'not a database' is not an SQLAlchemy URL"):
        run_sweep(config, "bad", tmp_path, trials=1, storage="not a database")
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_notebook_03_runs_a_sweep_headless(cli_sweep, tmp_path):
    import shutil

    from sttune_helpers.runner.pipeline import run_stages

    _, root, _ = cli_sweep
    run = RunDir(tmp_path / "runs" / "nb")
    shutil.copytree(root / "trial-000", run.root)  # a run whose data and loss stages completed, with a sweep.space
    results = run_stages(run, ["training"], parameters={"sweep_trials": 2})
    assert results[-1].status == "completed", results[-1].error
    sweep_root = tmp_path / "runs" / "nb-sweep"
    study = optuna.load_study(study_name="nb-sweep", storage=f"sqlite:///{sweep_root / 'study.db'}")
    assert len(study.trials) == 2
    # The trials reuse the notebook run's data instead of preparing it again.
    assert os.path.samefile(RunDir(sweep_root / "trial-000").split_path("train"), run.split_path("train"))
    assert not (sweep_root / "data-prep").exists()
    assert (sweep_root / "importance.png").stat().st_size > 5_000
    executed = json.loads((run.notebooks_dir / "03_training.ipynb").read_text())
    printed = "".join(output.get("text", "") if isinstance(output.get("text"), str) else "".join(output.get("text", []))
                      for cell in executed["cells"] if cell["cell_type"] == "code" for output in cell["outputs"])
    assert "best: sttune run --config" in printed


def test_two_workers_share_one_journal_study(tmp_path, tiny_folder):
    """Two `sttune sweep` processes at once on one journal file, as on two machines sharing a filesystem."""
    import subprocess

    from conftest import sttune_command, sttune_env

    config_file = tmp_path / "sweep.yaml"
    # No pruning: which trial the median pruner stops depends on how the two workers' trials interleave.
    config = tiny_config(tiny_folder, {"train.learning_rate": SPACE["train.learning_rate"]})
    config_file.write_text(config.with_overrides({"sweep.pruning": False}).to_yaml())
    journal = tmp_path / "shared" / "study.log"
    command = sttune_command("sweep", "--config", str(config_file), "--name", "shared", "--runs-dir", "runs",
                             "--trials", "2", "--storage", f"journal:{journal}")
    workers = [subprocess.Popen(command, cwd=tmp_path, env=sttune_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=900) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, out + err

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [(t.number, t.state) for t in trials]
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == 4
    for trial in trials:
        run = RunDir(Path(trial.user_attrs["run_dir"]))
        assert run.root.name == f"trial-{trial.number:03d}"
        assert run.manifest()["stages"]["training"]["status"] == "completed"
        assert load_config(run.config_path).train.learning_rate == trial.params["train.learning_rate"]
    # The workers' seeds differ, though both joined an empty study: four different values.
    assert len({t.params["train.learning_rate"] for t in trials}) == 4
    summary = json.loads((tmp_path / "runs" / "shared" / "sweep.json").read_text())
    best = study.best_trial
    assert (summary["n_trials"], summary["best"]["number"]) == (4, best.number)
    assert summary["best"]["replay"] == (f"sttune run --config runs/shared/trial-{best.number:03d}/config.yaml "
                                         "--name shared-best")
    assert all("best: trial" in out and "replay: sttune run --config runs/shared/trial-" in out for out, _ in outputs)
