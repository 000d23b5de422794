"""Run directories written without a model, by the same calls the stages make: config.yaml by
RunDir.save_config, the manifest by start_stage / complete_stage / fail_stage and the runner's
record_stage_wall, plan.json, data/report.json and eval/metrics.json by atomic_write_json, in the
shapes the stages write them (metrics.json passes METRICS_SCHEMA)."""

from __future__ import annotations

from pathlib import Path

from sttune_helpers.config import load_preset
from sttune_helpers.core.io import atomic_write_json
from sttune_helpers.evaluation import validate_report
from sttune_helpers.rundir import STAGES, RunDir
from sttune_helpers.runner.time_report import record_stage_wall

PRIMARY = "spearman_cosine"


def metrics_report(fine_tuned: float, base: float, width: float = 0.05, reference: float | None = 0.7) -> dict:
    """eval/metrics.json of a pair_score run: base and fine-tuned on the test split with intervals,
    their paired comparison, and one reference part."""
    def model(value):
        return {"path": "m", "metrics": {PRIMARY: {"value": value, "ci95": [value - width, value + width]},
                                         "pearson_cosine": {"value": value - 0.01,
                                                            "ci95": [value - 0.01 - width, value - 0.01 + width]}}}

    def block(tuned, untuned):
        return {"primary_metric": PRIMARY, "n_test": 64, "models": {"base": model(untuned), "fine_tuned": model(tuned)},
                "comparisons": [{"a": "fine_tuned", "b": "base", "metric": PRIMARY, "difference": tuned - untuned,
                                 "ci95": [tuned - untuned - 0.01, tuned - untuned + 0.01], "p_value": 0.04}]}

    report = {"task": "pair_score", "test_set": "test", "confidence": 0.95, "bootstrap_samples": 200,
              **block(fine_tuned, base), "reference": {}, "interpolation": [], "final_model": None}
    if reference is not None:
        report["reference"] = {"half": "report", "excluded": [],
                               "parts": {"snli": {"name": "snli-report", "kind": "sts",
                                                  **block(reference - 0.01, reference)}}}
    validate_report(report)
    return report


def make_run(runs_dir: Path, name: str, overrides: list[str] = (), completed: tuple[str, ...] = STAGES,
             failed: str | None = None, created: str = "2026-01-01T10:00:00+00:00",
             walls: dict[str, float] | None = None, report: dict | None = None) -> RunDir:
    """A run of the smoke preset with ``overrides``, whose ``completed`` stages completed (each with
    its ``walls`` seconds as the runner records them) and whose ``failed`` stage failed after them."""
    run = RunDir((Path(runs_dir) / name).resolve())
    run.root.mkdir(parents=True)
    run.save_config(load_preset("smoke").with_overrides(list(overrides)))
    for stage in completed:
        run.start_stage(stage)
        if stage == "data_prep":
            run.data_dir.mkdir()
            atomic_write_json(run.data_report_path, {"shape": "pair_score", "source": "embedded:stsb"})
        if stage == "loss_selection":
            atomic_write_json(run.plan_path, {"task_shape": "pair_score", "loss": {"name": "CoSENTLoss"}})
        if stage == "evaluation":
            run.eval_dir.mkdir()
            atomic_write_json(run.metrics_path, report or metrics_report(0.85, 0.80))
        run.complete_stage(stage, **({"loss": "CoSENTLoss"} if stage == "loss_selection" else {}))
        if walls and stage in walls:
            record_stage_wall(run, stage, walls[stage])
    if failed:
        run.start_stage(failed)
        run.fail_stage(failed, "TrainingDivergedError: the loss became nan at step 3")
    run.record(created=created)
    return run
