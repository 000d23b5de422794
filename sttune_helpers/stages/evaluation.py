"""Stage 4 (notebook 04): base against fine-tuned (and any other model) on the held-out test split
with bootstrap intervals, the general-ability reference, weight interpolation, error analysis, the
doctor and the spread over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import evaluation
from ..config import RunConfig
from ..core.io import read_json
from ..rundir import RunDir, open_run

NAME = "evaluation"


def start(run_dir: str | Path, preset: str | None = "default", config_path: str | Path | None = None,
          overrides: dict[str, Any] | list[str] | None = None) -> tuple[RunDir, RunConfig]:
    return open_run(run_dir, NAME, preset=preset, config_path=config_path, overrides=overrides)


def models(run: RunDir, config: RunConfig, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The models to compare: base, fine-tuned, and ``extra`` (name -> path, hub name or run)."""
    return evaluation.compared_models(run, config, extra)


def evaluate(run: RunDir, config: RunConfig, compared: dict[str, str] | None = None) -> evaluation.Evaluation:
    """Every model on the test split and on the reference set."""
    return evaluation.evaluate_models(run, config, compared)


def selection_plot(run: RunDir):
    """Stage 03's model selection: every candidate's validation metric against its general ability
    (None where training did not select)."""
    from ..training import plot_selection

    summary = read_json(run.training_summary_path) if run.training_summary_path.is_file() else {}
    return plot_selection(summary.get("selection"), path=run.eval_dir / "selection.png")


def interpolate(run: RunDir, config: RunConfig, result: evaluation.Evaluation) -> dict[str, Any]:
    """The (1 - alpha) * base + alpha * fine-tuned sweep, its suggested alpha, and the final model
    saved at eval.final_alpha where set; then the report is written."""
    rows = evaluation.interpolation_sweep(result, config) if config.eval.interpolation_alphas else []
    suggested = evaluation.suggest_alpha(rows) if rows else None
    saved = None
    if rows and config.eval.final_alpha is not None:
        saved = evaluation.save_final_model(run, result, config.eval.final_alpha)
    evaluation.save_report(run, result)
    return {"rows": rows, "suggested": suggested, "saved": saved}


def error_analysis(result: evaluation.Evaluation, config: RunConfig) -> dict[str, Any]:
    """The items fine-tuning helped and hurt most, and the worst remaining errors."""
    return evaluation.error_analysis(evaluation.error_table(result.task, result.scores), rows=config.eval.error_rows)


def doctor(run: RunDir, config: RunConfig, result: evaluation.Evaluation) -> list[evaluation.Finding]:
    return evaluation.run_doctor(run, config, result)


def outcome(result: evaluation.Evaluation, findings: list[evaluation.Finding]) -> dict[str, Any]:
    """What the manifest records for the stage: each model's primary metric and the doctor's warnings."""
    report = result.report
    metric = report["primary_metric"]
    return {"primary_metric": metric, "warnings": [f.check for f in findings if f.fired],
            **{name: entry["metrics"][metric]["value"] for name, entry in report["models"].items()}}


def complete(run: RunDir, result: evaluation.Evaluation, findings: list[evaluation.Finding]) -> float:
    return run.complete_stage(NAME, **outcome(result, findings))


def run(run_dir: str | Path | RunDir) -> evaluation.Evaluation:
    """The whole stage on the run's config.yaml (no extra models)."""
    run, config = start(run_dir.root if isinstance(run_dir, RunDir) else run_dir)
    with run.stage(NAME) as recorded:
        result = evaluate(run, config, models(run, config))
        interpolate(run, config, result)
        recorded.update(outcome(result, doctor(run, config, result)))
    return result
