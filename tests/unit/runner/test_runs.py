"""`sttune runs`: every run directory of a runs folder in one line, oldest first, with its status,
metric and time, the settings that differ between the runs, and damaged or unfinished runs listed
with what is wrong rather than a traceback. Run directories are written by the stages' own calls
(tests/helpers/run_dirs.py), without a model."""

import json
import os

import pytest
from helpers.run_dirs import PRIMARY, make_run, metrics_report

from sttune_helpers.cli import main
from sttune_helpers.rundir import STAGES, RunDir
from sttune_helpers.runner.runs import differing_settings, flatten, list_runs, run_status, summarise_run

WALLS = {"data_prep": 3.0, "loss_selection": 1.5, "training": 40.0, "evaluation": 12.0, "embedding_viz": 5.0}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Two completed runs that differ in two settings, a run that failed in training, a run whose
    manifest is damaged, one not started, a sweep's trial, a folder that holds no run, and a hidden one."""
    runs = tmp_path_factory.mktemp("listed") / "runs"
    make_run(runs, "b-lr", ["train.learning_rate=3e-5", "train.batch_size=32"], created="2026-01-02T09:00:00+00:00",
             walls=WALLS, report=metrics_report(0.87, 0.80))
    make_run(runs, "a-base", created="2026-01-01T09:00:00+00:00", walls=WALLS)
    make_run(runs, "c-failed", ["train.learning_rate=3e-5"], completed=STAGES[:2], failed="training",
             created="2026-01-03T09:00:00+00:00")
    damaged = make_run(runs, "d-damaged", created="2026-01-04T09:00:00+00:00")
    damaged.manifest_path.write_text('{"stages": {"data_prep": ')  # cut off mid-write by hand
    (runs / "e-new").mkdir()
    RunDir(runs / "e-new").save_config(RunDir(runs / "a-base").load_config())
    make_run(runs / "sweep", "trial-000", ["train.learning_rate=5e-5"], completed=STAGES[:3],
             created="2026-01-05T09:00:00+00:00")
    (runs / "notes").mkdir()
    (runs / ".ipynb_checkpoints").mkdir()
    return runs


def by_name(summaries):
    return {s.name: s for s in summaries}


def test_every_run_is_listed_with_its_status_without_a_traceback(runs_dir):
    runs = by_name(list_runs(runs_dir))
    assert set(runs) == {"a-base", "b-lr", "c-failed", "d-damaged", "e-new", "sweep/trial-000", "notes"}
    assert runs["a-base"].status == runs["b-lr"].status == "completed"
    assert runs["c-failed"].status == "failed at training"
    assert runs["sweep/trial-000"].status == "incomplete: evaluation pending"
    assert runs["e-new"].status == "not started"
    assert runs["notes"].status.startswith("not a run")
    damaged = runs["d-damaged"]
    assert damaged.status == "unreadable manifest.json"
    assert any(p.startswith("manifest.json: JSONDecodeError") for p in damaged.problems)
    assert damaged.task == "pair_score" and damaged.value == pytest.approx(0.85)  # the other files still read


def test_runs_are_sorted_by_date(runs_dir):
    dated = [s for s in list_runs(runs_dir) if s.name in ("a-base", "b-lr", "c-failed", "d-damaged")]
    assert [s.name for s in dated] == ["a-base", "b-lr", "c-failed", "d-damaged"]  # not by name: b before a


def test_task_loss_metric_and_time_come_from_the_run_files(runs_dir):
    runs = by_name(list_runs(runs_dir))
    tuned = runs["b-lr"]
    assert (tuned.task, tuned.loss, tuned.metric) == ("pair_score", "CoSENTLoss", PRIMARY)
    assert tuned.value == pytest.approx(0.87) and tuned.ci95 == pytest.approx([0.82, 0.92])
    assert tuned.base_value == pytest.approx(0.80)
    assert tuned.seconds == pytest.approx(sum(WALLS.values()))  # each stage's wall time, as `sttune time`
    failed = runs["c-failed"]
    assert failed.loss == "CoSENTLoss" and failed.value is None and failed.metric is None


def test_only_the_settings_that_differ_are_reported(runs_dir):
    runs = by_name(list_runs(runs_dir))
    two = [runs["a-base"], runs["b-lr"]]
    assert differing_settings(two) == ["train.learning_rate", "train.batch_size"]
    assert differing_settings([runs["a-base"], runs["e-new"]]) == []
    a, b = (flatten(RunDir(runs_dir / n).load_config().to_dict()) for n in ("a-base", "b-lr"))
    assert {k for k in a if a[k] != b[k]} == set(differing_settings(two))


def test_metrics_of_an_evaluation_reset_by_a_rerun_are_marked_stale(tmp_path):
    run = make_run(tmp_path, "rerun")
    run.start_stage("loss_selection")  # re-running a stage marks the later ones pending; metrics.json stays
    run.complete_stage("loss_selection")
    summary = summarise_run(run.root)
    assert summary.status == "incomplete: training pending"
    assert summary.value == pytest.approx(0.85) and not summary.metrics_current


def test_a_running_stage_is_told_from_one_whose_process_is_gone():
    gone = {"status": "running", "pid": 2 ** 22 + 7, "host": os.uname().nodename}
    assert run_status({"data_prep": {"status": "completed"}, "loss_selection": gone}) == "interrupted at loss_selection"
    from sttune_helpers.rundir import current_process

    alive = {"status": "running", **current_process()}
    assert run_status({"data_prep": alive}) == "running data_prep"


def test_sttune_runs_prints_the_table_and_json(runs_dir, capsys):
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["run", "date", "status", "task", "loss"]
    row = next(line for line in lines if line.startswith("b-lr "))
    assert "0.8700 [0.8200, 0.9200]" in row and "train.learning_rate=3e-05" in row and "train.batch_size=32" in row
    assert "61.5 s" in row  # the stages' wall times
    assert any(line.startswith("d-damaged: manifest.json: JSONDecodeError") for line in lines)

    assert main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed["a-base"]["settings"]["train.learning_rate"] == pytest.approx(2e-5)
    assert listed["b-lr"]["settings"]["train.batch_size"] == 32
    assert listed["notes"]["settings"] is None  # no config to compare


def test_sttune_runs_names_a_missing_folder(tmp_path, capsys):
    assert main(["runs", "--runs-dir", str(tmp_path / "nowhere")]) == 2
    assert "runs folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["runs", "--runs-dir", str(tmp_path / "empty")]) == 0
    assert "no runs in" in capsys.readouterr().out
