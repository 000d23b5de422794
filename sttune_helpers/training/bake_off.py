"""The loss bake-off: train each candidate loss briefly on the same rows from the same base model,
score each on the validation split, and write the winner into plan.json.

It lives in ``training/`` rather than ``losses/`` because it trains: training imports losses (to
build the loss and fit the columns), so a losses module importing ``train_model`` would make the two
packages import each other."""

from __future__ import annotations

import copy
import shutil
from typing import Sequence

from ..config import RunConfig
from ..core.io import atomic_write_json, read_json
from ..data import read_report
from ..losses import choose_loss, loss_choices, write_plan
from ..rundir import RunDir
from ..scoring import validation_metric
from .errors import TrainingError
from .train import train_model


def bake_off(run: RunDir, config: RunConfig, candidates: Sequence[str] | None = None, max_steps: int = 100,
             train_rows: int | None = 2000, write_winner: bool = True):
    """Train each candidate loss for the same budget (``max_steps`` on the first ``train_rows``
    training rows) from the same base model, score each on the validation split, and (optionally)
    write the winner into plan.json. Returns a table, best first."""
    import pandas as pd

    plan = read_json(run.plan_path)
    shape = plan.get("train_shape", config.data.shape)
    data_shape = read_report(run)["shape"]
    metric, greater_is_better = validation_metric(data_shape, config.train.early_stopping_metric)
    if metric == "eval_loss":
        raise TrainingError(f"a bake-off needs a validation metric that every loss is judged by; {data_shape} data "
                            "has only the validation loss, which differs from loss to loss")
    names = list(candidates) if candidates else [c.name for c in loss_choices(shape)]
    rows = []
    for name in names:
        trial_config = copy.deepcopy(config)
        trial_config.loss.name = name
        trial_config.loss.params = {}
        trial_config.train.max_steps = max_steps
        trial_config.train.early_stopping_patience = None
        trial_config.train.evaluations_per_epoch = 1
        trial = RunDir(run.root / "bake-off" / name)
        if trial.root.exists():
            shutil.rmtree(trial.root)
        shutil.copytree(run.data_dir, trial.data_dir)
        if train_rows is not None:
            lines = trial.split_path("train").read_text(encoding="utf-8").splitlines(keepends=True)
            trial.split_path("train").write_text("".join(lines[:train_rows]), encoding="utf-8")
        write_plan(trial, trial_config, n_train=min(plan["n_train"], train_rows or plan["n_train"]), shape=shape)
        summary = train_model(trial, trial_config)
        scores = [e[metric] for e in summary["log_history"] if metric in e]
        rows.append({"loss": name, metric.removeprefix("eval_"): scores[-1] if scores else float("nan"),
                     "steps": summary["global_step"], "seconds": summary["train_seconds"]})
        shutil.rmtree(trial.checkpoints_dir, ignore_errors=True)  # the trial models are not kept
        shutil.rmtree(trial.model_dir, ignore_errors=True)
    table = pd.DataFrame(rows).sort_values(metric.removeprefix("eval_"), ascending=not greater_is_better,
                                           ignore_index=True)
    if write_winner:
        winner = table.iloc[0]
        winning_config = copy.deepcopy(config)
        winning_config.loss.name = winner["loss"]
        choose_loss(winning_config, shape)  # validates before the plan is rewritten
        new_plan = write_plan(run, winning_config, n_train=plan["n_train"], shape=shape, recipe=plan.get("recipe"))
        new_plan["loss"]["chosen_by"] = (f"bake-off: best validation {metric.removeprefix('eval_validation_')} "
                                         f"({winner[metric.removeprefix('eval_')]:.4f}) of {len(table)} losses "
                                         f"after {max_steps} steps each")
        new_plan["bake_off"] = table.to_dict(orient="records")
        atomic_write_json(run.plan_path, new_plan)
    return table


def plot_bake_off(table, path=None):
    """The bake-off's table as bars, best on top."""
    import matplotlib.pyplot as plt

    metric = [c for c in table.columns if c not in ("loss", "steps", "seconds")][0]
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(table)))
    ax.barh(table["loss"][::-1], table[metric][::-1], color="#2f6fde")
    ax.set_xlabel(metric.removeprefix("validation_"))
    ax.set_title("loss bake-off (same steps, same data)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
