"""The time report from a run directory's manifest and training.json (no training): the parts add
up to the run, the hints go to the largest parts, and a run that stopped early is reported as far
as it got; `sttune time` prints it."""

import json

import pytest

from sttune_helpers.cli import main
from sttune_helpers.config import RunConfig, load_preset
from sttune_helpers.core.io import atomic_write_json, read_json
from sttune_helpers.rundir import STAGES, RunDir
from sttune_helpers.runner.time_report import (
    AUTO_SEARCH_HINT,
    HINTS,
    OVERHEAD,
    REPORT_FILE,
    format_time_report,
    record_stage_wall,
    time_report,
    write_time_report,
)

# seconds of the stage's own work (manifest "seconds") and as the runner saw it (papermill)
STAGE_SECONDS = {"data_prep": (10.0, 14.0), "loss_selection": (2.0, 3.0), "training": (300.0, 306.0),
                 "evaluation": (60.0, 65.0), "embedding_viz": (20.0, 22.0)}


def training_summary(**changes):
    summary = {
        "train_seconds": 250.0,
        "resumed_from_step": None,
        "log_history": [{"step": 10, "loss": 0.5}, {"step": 10, "eval_runtime": 30.0, "eval_spearman": 0.8},
                        {"step": 20, "loss": 0.4}, {"step": 20, "eval_runtime": 40.0, "eval_spearman": 0.82},
                        {"step": 20, "train_runtime": 250.0}],
        "timing": {"checkpoint_saves": [{"step": 10, "seconds": 5.0}, {"step": 20, "seconds": 7.0}],
                   "checkpoint_save_seconds": 12.0},
        "checkpoint_choice": {"kept": "best", "seconds": 8.0},
        "selection": {"chosen": "best", "seconds": 25.0},
    }
    summary.update(changes)
    return summary


def fake_run(root, completed=STAGES, summary=None, walls=True, config=None):
    run = RunDir(root / "run")
    run.root.mkdir(parents=True)
    run.save_config(config or load_preset("smoke"))
    stages = {}
    for stage in STAGES:
        if stage in completed:
            seconds, wall = STAGE_SECONDS[stage]
            stages[stage] = {"status": "completed", "seconds": seconds, **({"wall_seconds": wall} if walls else {})}
        else:
            stages[stage] = {"status": "pending"}
    if walls and completed:
        stages[completed[0]]["kernel_start_seconds"] = 4.0
    atomic_write_json(run.manifest_path, {"stages": stages})
    if "training" in completed:
        atomic_write_json(run.training_summary_path, summary or training_summary())
    return run


def by_part(rows):
    return {row.part: row for row in rows}


def test_the_parts_add_up_to_the_run(tmp_path):
    rows = by_part(time_report(fake_run(tmp_path)))
    walls = sum(wall for _, wall in STAGE_SECONDS.values()) + 4.0  # + the kernel's start
    assert sum(r.seconds for r in rows.values()) == pytest.approx(walls)
    assert sum(r.share for r in rows.values()) == pytest.approx(1.0)
    assert rows["validation"].seconds == 70.0  # the evaluations' eval_runtime
    assert rows["checkpoint saving"].seconds == 12.0
    assert rows["training steps"].seconds == 250.0 - 70.0 - 12.0
    assert rows["best vs last checkpoint"].seconds == 8.0 and rows["model selection"].seconds == 25.0
    assert rows["training setup and saving"].seconds == 300.0 - 250.0 - 8.0 - 25.0
    assert sum(r.seconds for r in rows.values() if r.stage == "training") == pytest.approx(300.0)
    # papermill and the kernel: each stage's wall time minus its work, and the kernel's start
    assert rows[OVERHEAD].seconds == pytest.approx(4 + 1 + 6 + 5 + 2 + 4.0)
    assert rows["data"].seconds == 10.0 and rows["evaluation"].seconds == 60.0 and rows["viz"].seconds == 20.0


def test_the_largest_part_gets_its_hint_with_the_runs_values(tmp_path):
    config = load_preset("smoke").with_overrides(["train.evaluations_per_epoch=7"])
    summary = training_summary(log_history=[{"step": 10, "eval_runtime": 200.0}])  # validation dominates
    rows = time_report(fake_run(tmp_path, summary=summary, config=config))
    largest = max(rows, key=lambda r: r.seconds)
    assert largest.part == "validation"
    assert "train.evaluations_per_epoch=7" in largest.hint
    assert by_part(rows)["data"].hint is None  # small parts get none
    table = format_time_report(rows)
    lines = table.splitlines()
    assert lines[2].split()[0] == "validation" and lines[3].lstrip().startswith("-> ")
    assert "train.evaluations_per_epoch=7" in table and max(len(line) for line in lines) <= 100
    assert lines[-1].split()[0] == "total"
    # aligned: every part's seconds end in the same column
    columns = {line.index(f"{r.seconds:.1f}") + len(f"{r.seconds:.1f}") for r in rows for line in lines
               if line.strip().startswith(r.part + "  ")}
    assert len(columns) == 1


@pytest.mark.parametrize("part, summary_changes", [
    ("model selection", {"selection": {"seconds": 240.0}, "train_seconds": 20.0, "log_history": []}),
    ("training steps", {"train_seconds": 290.0, "log_history": [], "selection": None, "checkpoint_choice": None}),
])
def test_hints_follow_the_largest_part(tmp_path, part, summary_changes):
    rows = time_report(fake_run(tmp_path, summary=training_summary(**summary_changes)))
    largest = max(rows, key=lambda r: r.seconds)
    assert largest.part == part and largest.hint
    settings = HINTS[part][0]
    assert all(key in largest.hint for key in settings)


def test_loss_selection_under_a_budget_is_the_auto_search():
    from sttune_helpers.runner.time_report import hint

    auto = load_preset("auto").to_dict()
    assert "auto recipe's proxy runs" in hint("loss selection", auto) and "train.budget=\"20m\"" in hint(
        "loss selection", auto)
    assert hint("loss selection", load_preset("smoke").to_dict()).startswith("the bake-off")


def test_every_hinted_setting_exists():
    config = RunConfig().to_dict()
    for part, (settings, _) in [*HINTS.items(), ("auto search", AUTO_SEARCH_HINT)]:
        for key in settings:
            node = config
            for name in key.split("."):
                assert name in node, f"{part}: {key} is not a setting"
                node = node[name]


def test_a_run_stopped_after_training(tmp_path):
    run = fake_run(tmp_path, completed=STAGES[:3])
    rows = time_report(run)
    assert {r.stage for r in rows} == {"data_prep", "loss_selection", "training", None}
    assert sum(r.share for r in rows) == pytest.approx(1.0)
    text = write_time_report(run)
    assert "not timed: evaluation (pending), embedding_viz (pending)" in text
    written = read_json(run.root / REPORT_FILE)
    assert written["total_seconds"] == pytest.approx(14 + 3 + 306 + 4.0)
    assert written["untimed_stages"] == {"evaluation": "pending", "embedding_viz": "pending"}
    assert [p["part"] for p in written["parts"]] == [r.part for r in rows]


def test_a_failed_stage_and_a_run_without_papermill(tmp_path):
    # `sttune train` and sweeps run stages without papermill: no wall times, so no overhead part.
    run = fake_run(tmp_path, completed=STAGES[:2], walls=False)
    manifest = run.manifest()
    manifest["stages"]["training"] = {"status": "failed", "seconds": 42.0, "error": "boom"}
    atomic_write_json(run.manifest_path, manifest)
    rows = by_part(time_report(run))
    assert OVERHEAD not in rows
    assert rows["training"].status == "failed" and rows["training"].seconds == 42.0
    assert "training (failed)" in format_time_report(list(rows.values()))


def test_a_resumed_training_counts_the_validations_after_the_resume(tmp_path):
    summary = training_summary(resumed_from_step=10, train_seconds=100.0)
    rows = by_part(time_report(fake_run(tmp_path, summary=summary)))
    assert rows["validation"].seconds == 40.0
    assert rows["training steps"].seconds == 100.0 - 40.0 - 12.0


def test_a_training_json_without_timing(tmp_path):
    summary = training_summary()
    del summary["timing"]
    rows = by_part(time_report(fake_run(tmp_path, summary=summary)))
    assert "checkpoint saving" not in rows and rows["training steps"].seconds == 250.0 - 70.0


def test_record_stage_wall(tmp_path):
    run = fake_run(tmp_path, completed=STAGES[:1], walls=False)
    record_stage_wall(run, "data_prep", 12.345, kernel_start_seconds=3.0)
    entry = run.manifest()["stages"]["data_prep"]
    assert entry["wall_seconds"] == 12.35 and entry["kernel_start_seconds"] == 3.0 and entry["seconds"] == 10.0


def test_sttune_time_prints_the_report(tmp_path, capsys):
    run = fake_run(tmp_path)
    assert main(["time", str(run.root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("where the time went") and "training steps" in out
    assert main(["time", "run", "--runs-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_seconds"] == pytest.approx(414.0)
    assert main(["time", str(tmp_path / "nothing")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_the_end_of_sttune_run_prints_and_writes_the_report(tmp_path, capsys):
    from sttune_helpers.cli import report_results
    from sttune_helpers.runner.pipeline import StageResult

    run = fake_run(tmp_path, completed=STAGES[:3])
    results = [StageResult(stage, "completed", STAGE_SECONDS[stage][1], run.root) for stage in STAGES[:3]]
    assert report_results("run", run, results, 330.0) == 0
    out = capsys.readouterr().out
    assert "where the time went" in out and "not timed: evaluation (pending)" in out
    assert read_json(run.root / REPORT_FILE)["total_seconds"] == pytest.approx(327.0)
