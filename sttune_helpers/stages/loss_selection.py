"""Stage 2 (notebook 02): the shape of the training data decides the loss; this stage records the
choice, the reason and the alternatives in plan.json, and with loss.bake_off trains each candidate
briefly and keeps the best. With train.budget the automatic recipe chooses the loss, the learning
rate, the batch size and the training length within the budget instead (training/auto_recipe.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import data, losses, training
from ..config import RunConfig
from ..core.io import read_json
from ..core.reporting import get_logger
from ..rundir import RunDir, open_run

NAME = "loss_selection"
log = get_logger(__name__)


def start(run_dir: str | Path, preset: str | None = "default", config_path: str | Path | None = None,
          overrides: dict[str, Any] | list[str] | None = None) -> tuple[RunDir, RunConfig]:
    return open_run(run_dir, NAME, preset=preset, config_path=config_path, overrides=overrides)


def train_shape(run: RunDir) -> str:
    """The shape whose losses fit the train split (mining turns pairs into triplets)."""
    return losses.loss_shape(data.read_report(run))


def plan(run: RunDir, config: RunConfig) -> dict[str, Any]:
    """Fill in the data shape's measured recipe (train.shape_recipe; config.yaml takes it), choose the
    loss and write plan.json (loss, reason, alternatives, hyperparameters, the recipe)."""
    report = data.read_report(run)
    shape = losses.loss_shape(report)
    n_train = report["counts"]["train"]["rows"]
    # The recipe is the data's shape's (measured on a bench set of that shape), checked against the loss
    # the train split's shape gets.
    recipe = training.apply_shape_recipe(run, config, report["shape"], train_shape=shape, n_train=n_train)
    if recipe is not None:
        recipe["text"] = training.describe_shape_recipe(recipe)
    return losses.write_plan(run, config, n_train=n_train, shape=shape, recipe=recipe)


def bake_off(run: RunDir, config: RunConfig):
    """With loss.bake_off: each candidate trains the same steps on the same rows and is scored on
    validation; plan.json then names the best. Returns the table and the plan, or None when off
    (and with train.budget, whose automatic recipe compares the losses itself)."""
    if not config.loss.bake_off:
        return None
    if config.train.budget:
        log.info("loss.bake_off is skipped: with train.budget the automatic recipe compares the losses")
        return None
    table = training.bake_off(run, config, max_steps=config.loss.bake_off_steps,
                              train_rows=config.loss.bake_off_train_rows)
    training.plot_bake_off(table, path=run.root / "bake_off.png")
    return table, read_json(run.plan_path)


def auto_recipe(run: RunDir, config: RunConfig):
    """With train.budget: proxy runs choose the loss, learning rate and batch size, and max_steps is
    set to fit the budget; plan.json records the search under "auto" and config.yaml takes the
    values. Returns the trials table and the plan, or None without a budget."""
    if not config.train.budget:
        return None
    chosen = training.auto_recipe(run, config)
    return training.auto_trials_table(chosen), chosen


def complete(run: RunDir, chosen: dict[str, Any]) -> float:
    return run.complete_stage(NAME, loss=chosen["loss"]["name"])


def run(run_dir: str | Path | RunDir) -> dict[str, Any]:
    """The whole stage on the run's config.yaml; returns the plan."""
    run, config = start(run_dir.root if isinstance(run_dir, RunDir) else run_dir)
    with run.stage(NAME) as recorded:
        chosen = plan(run, config)
        baked = bake_off(run, config)
        if baked is not None:
            chosen = baked[1]
        automatic = auto_recipe(run, config)
        if automatic is not None:
            chosen = automatic[1]
        recorded["loss"] = chosen["loss"]["name"]
    return chosen
