"""`sttune compare`: runs side by side (the settings that differ, or all of them; each model's test
metrics with intervals, the difference from the base, the reference parts; the time) and a plot of
the primary metric with its intervals. Run directories are written by the stages' own calls
(tests/helpers/run_dirs.py), without a model."""

import json

import pytest
from helpers.run_dirs import PRIMARY, make_run, metrics_report

from sttune_helpers.cli import main
from sttune_helpers.rundir import STAGES, RunDirError
from sttune_helpers.runner.compare import compare_runs, format_comparison, run_labels

WALLS = {"data_prep": 2.0, "loss_selection": 1.0, "training": 30.0, "evaluation": 10.0, "embedding_viz": 4.0}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    runs = tmp_path_factory.mktemp("compared") / "runs"
    make_run(runs, "base", walls=WALLS, report=metrics_report(0.85, 0.80))
    make_run(runs, "lr", ["train.learning_rate=5e-5"], walls={**WALLS, "training": 45.0},
             report=metrics_report(0.88, 0.80, reference=None))
    make_run(runs, "broken", ["train.learning_rate=1e-3"], completed=STAGES[:2], failed="training")
    return runs


def test_only_the_settings_that_differ_unless_all_are_asked_for(runs_dir):
    comparison = compare_runs(["base", "lr"], runs_dir)
    assert comparison.settings == {"train.learning_rate": [2e-5, 5e-5]}
    every = compare_runs(["base", "lr"], runs_dir, all_settings=True)
    assert len(every.settings) == every.settings_total > 50
    assert every.settings["train.batch_size"] == [16, 16] and every.settings["train.learning_rate"] == [2e-5, 5e-5]


def test_metrics_side_by_side_with_intervals_and_the_difference_from_base(runs_dir):
    comparison = compare_runs(["base", "lr", "broken"], runs_dir)
    metrics = comparison.metrics
    base, lr, broken = metrics[("test", "fine_tuned", PRIMARY)]
    assert base == {"value": pytest.approx(0.85), "ci95": pytest.approx([0.80, 0.90])}
    assert lr["value"] == pytest.approx(0.88) and broken is None
    difference = metrics[("test", "fine_tuned - base", PRIMARY)][1]
    assert difference["difference"] == pytest.approx(0.08) and difference["p_value"] == 0.04
    assert metrics[("reference snli", "base", PRIMARY)][0]["value"] == pytest.approx(0.70)
    assert metrics[("reference snli", "base", PRIMARY)][1] is None  # lr ran without the reference
    rows = list(metrics)
    assert rows[0] == ("test", "base", PRIMARY) and rows.index(("test", "fine_tuned", "pearson_cosine")) > rows.index(
        ("test", "fine_tuned - base", PRIMARY))  # the primary metric first, then the others, then the reference
    assert rows[-1][0] == "reference snli"


def test_time_side_by_side_adds_up_to_each_run(runs_dir):
    comparison = compare_runs(["base", "lr", "broken"], runs_dir)
    assert comparison.time["total"][:2] == [pytest.approx(sum(WALLS.values())), pytest.approx(sum(WALLS.values()) + 15)]
    assert comparison.time["evaluation"][2] is None  # the broken run never got there
    for index in range(3):
        parts = [seconds[index] for part, seconds in comparison.time.items() if part != "total"]
        assert sum(s for s in parts if s is not None) == pytest.approx(comparison.time["total"][index], abs=0.05)


def test_the_text_shows_each_section(runs_dir):
    text = format_comparison(compare_runs(["base", "broken"], runs_dir))
    assert "broken: " in text and "(failed at training" in text
    assert "the settings that differ (1 of" in text
    setting = next(line for line in text.splitlines() if "train.learning_rate" in line)
    assert setting.split() == ["train.learning_rate", "2e-05", "0.001"]
    row = next(line for line in text.splitlines() if "fine_tuned - base" in line and "test" in line)
    assert "+0.0500 [+0.0400, +0.0600] p=0.040" in row and row.rstrip().endswith("-")


def test_runs_are_named_by_path_or_name_and_told_apart(runs_dir, tmp_path):
    other = make_run(tmp_path / "elsewhere" / "runs", "base", ["seed=7"])
    comparison = compare_runs(["base", str(other.root)], runs_dir)
    assert comparison.labels == [f"{runs_dir.parent.name}/runs/base", "elsewhere/runs/base"]
    assert comparison.settings == {"seed": [42, 7]}
    assert run_labels([runs_dir / "base", runs_dir / "lr"]) == ["base", "lr"]


@pytest.mark.parametrize("runs, message", [(["base", "nowhere"], "no run 'nowhere'"),
                                           (["base"], "two runs or more"),
                                           (["base", "./base"], "the same run")])
def test_bad_run_lists_are_refused_clearly(runs_dir, monkeypatch, runs, message):
    monkeypatch.chdir(runs_dir)
    with pytest.raises(RunDirError, match=message):
        compare_runs(runs, runs_dir)


def test_sttune_compare_prints_and_plots(runs_dir, tmp_path, capsys, monkeypatch):
    plot = tmp_path / "ab.png"
    assert main(["compare", "base", "lr", "--runs-dir", str(runs_dir), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"plot: {plot}") and "test metrics (95% CI):" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000

    monkeypatch.chdir(tmp_path)  # the default plot goes to the current folder
    assert main(["compare", "base", "lr", "--runs-dir", str(runs_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["plot"] == "compare-base-vs-lr.png" and (tmp_path / "compare-base-vs-lr.png").is_file()
    assert report["settings"] == {"train.learning_rate": {"base": 2e-5, "lr": 5e-5}}
    assert [run["label"] for run in report["runs"]] == ["base", "lr"]
    test_row = next(row for row in report["metrics"] if (row["part"], row["model"]) == ("test", "fine_tuned"))
    assert test_row["runs"]["lr"]["value"] == pytest.approx(0.88)
    assert report["time_seconds"]["total"]["base"] == pytest.approx(sum(WALLS.values()))

    assert main(["compare", "base", "lr", "--runs-dir", str(runs_dir), "--plot", "ab.txt"]) == 2
    assert "--plot ab.txt" in capsys.readouterr().err
    assert main(["compare", "base", "lr", "--runs-dir", str(runs_dir), "--no-plot"]) == 0
    assert "plot:" not in capsys.readouterr().out
