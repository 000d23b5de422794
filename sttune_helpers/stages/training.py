"""Stage 3 (notebook 03): fine-tune with the sentence-transformers trainer and the plan's loss,
validating as it goes, with early stopping, and keep the best checkpoint where it beats the last
beyond the noise."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from .. import training
from ..config import RunConfig
from ..core.io import read_json
from ..rundir import RunDir, open_run
from . import data_prep

NAME = "training"


def start(run_dir: str | Path, preset: str | None = "default", config_path: str | Path | None = None,
          overrides: dict[str, Any] | list[str] | None = None,
          on_each_node: bool = False) -> tuple[RunDir, RunConfig, dict[str, Any]]:
    """Open the run, mark the stage running, and read the loss plan. Training on several machines
    (train.nnodes > 1) is refused unless ``on_each_node``: `sttune train`, which runs on every node."""
    def check(config: RunConfig) -> None:
        if not on_each_node:
            training.refuse_several_nodes(config.train, Path(run_dir).resolve())

    run, config = open_run(run_dir, NAME, preset=preset, config_path=config_path, overrides=overrides, check=check)
    return run, config, read_json(run.plan_path)


def train(run: RunDir, config: RunConfig, resume: bool = False, callbacks: Sequence = ()) -> dict[str, Any]:
    """Train (in train.nproc processes where asked); writes model/ and training.json. After the
    automatic recipe (train.budget), training.json's "budget" holds the actual seconds against it."""
    started = time.perf_counter()
    data_prep.ensure_validation_corpus(run, config)  # the setting may have changed since stage 01
    summary = training.train_model(run, config, resume=resume, callbacks=callbacks)
    if config.train.budget:
        training.record_budget(run, summary, time.perf_counter() - started)
    return summary


def curves(run: RunDir, summary: dict[str, Any]):
    """Training loss, learning rate and each validation metric from the TensorBoard event files, the
    kept step marked (training_curves.png)."""
    return training.plot_tensorboard(run.tensorboard_dir, summary, path=run.root / "training_curves.png")


def describe(summary: dict[str, Any]) -> str:
    """How training went, in a few lines."""
    lines = [f"{summary['global_step']} of {summary['max_steps']} steps"
             + (" (stopped early)" if summary["stopped_early"] else "")
             + f", {summary['train_seconds']:.0f} s, {summary['train_samples_per_second']:.1f} samples/s; "
             f"best {summary['metric_for_best_model']} = {summary['best_metric']:.4f} at {summary['best_checkpoint']}"]
    if summary["checkpoint_choice"]:  # train.restore_best: the best checkpoint or the last model
        lines.append(summary["checkpoint_choice"]["reason"])
    lines.append(f"model weights from {summary['kept_checkpoint']}")
    budget = summary.get("budget")
    if budget:
        lines.append(f"budget {budget['budget']}: search {budget['search_s']:.0f} s + training stage "
                     f"{budget['stage_s']:.0f} s = {budget['total_s']:.0f} s of {budget['budget_s']:.0f} s"
                     + (" (within)" if budget["within"] else " (over)"))
    selection = summary.get("selection")
    if selection:
        lines.append(f"model selection on validation: {selection['reason']}")
        if selection["differs_from_fine_tuned"]:
            lines.append("model/ holds the chosen model; model_finetuned/ the pure fine-tuned one")
    return "\n".join(lines)


def selection_plot(run: RunDir, summary: dict[str, Any]):
    """Validation metric against general ability for every candidate (selection.png); None without one."""
    return training.plot_selection(summary.get("selection"), path=run.root / "selection.png")


def selection_table(summary: dict[str, Any]):
    """The selection's candidates: validation metric, whether it is within the noise of the best and
    beats the fine-tuned model beyond it, and the reference parts."""
    import pandas as pd

    selection = summary.get("selection")
    if not selection:
        return None
    rows = []
    for c in selection["candidates"]:
        low = (c.get("gain_ci95") or [None])[0]  # records of runs before the gain was kept have none
        rows.append({"candidate": c["name"], "alpha": c["alpha"], f"validation {selection['metric']}": c["validation"],
                     "within noise of best": c["within_noise"],
                     "beats fine-tuned": c.get("beats_fine_tuned", False) if low is not None else None,
                     **{f"ref {p}": v for p, v in c["reference"].items()},
                     "largest reference drop": c["forgetting"], "chosen": c["name"] == selection["chosen"]})
    for name in selection.get("unscored", []):  # below a mix above them: not scored (fine_tuned_unless_beaten)
        rows.append({"candidate": name, "alpha": float(name.rsplit("@", 1)[1]),
                     f"validation {selection['metric']}": "not scored: the mix above it scored lower",
                     "chosen": False})
    return pd.DataFrame(rows)


def outcome(summary: dict[str, Any]) -> dict[str, Any]:
    return {"global_step": summary["global_step"], "best_metric": summary["best_metric"]}


def complete(run: RunDir, summary: dict[str, Any]) -> float:
    return run.complete_stage(NAME, **outcome(summary))


def run(run_dir: str | Path | RunDir, overrides: dict[str, Any] | list[str] | None = None, resume: bool = False,
        callbacks: Sequence = ()) -> dict[str, Any]:
    """The whole stage on the run's config.yaml (plus ``overrides``); returns training.json's summary."""
    run, config, _ = start(run_dir.root if isinstance(run_dir, RunDir) else run_dir, overrides=overrides)
    with run.stage(NAME) as recorded:
        summary = train(run, config, resume=resume, callbacks=callbacks)
        recorded.update(outcome(summary))
    return summary
