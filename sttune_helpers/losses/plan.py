"""The plan: the loss choice, why, its alternatives and the hyperparameters, written to plan.json for
the training stage, read back, and explained in words for the notebook."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .. import shapes
from ..config import RunConfig
from ..core.io import atomic_write_json
from ..rundir import RunDir
from ..shapes import LossChoice
from .choose import choose_loss
from .registry import IN_BATCH_NEGATIVE_LOSSES


def loss_shape(report: dict[str, Any]) -> str:
    """The shape whose losses fit the train split (the data report's ``shape``, or its ``train_shape``
    where the data stage changed it): the shape decides."""
    return shapes.get(report["shape"]).loss_shape(report.get("train_shape"))


def write_plan(run: RunDir, config: RunConfig, n_train: int, shape: str | None = None,
               recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """Choose the loss and write plan.json; ``recipe``: the shape's recipe as stage 02 filled it in."""
    shape = shape or config.data.shape
    chosen, alternatives, how = choose_loss(config, shape, n_train)
    plan = {
        "task_shape": config.data.shape,
        "train_shape": shape,
        "n_train": n_train,
        "loss": {**asdict(chosen), "chosen_by": how},
        "alternatives": [asdict(a) for a in alternatives],
        "in_batch_negatives": chosen.name in IN_BATCH_NEGATIVE_LOSSES,
        "matryoshka_dims": config.loss.matryoshka_dims,
        "model": config.model.name,
        "hyperparameters": asdict(config.train),
    }
    if recipe is not None:
        plan["recipe"] = recipe
    atomic_write_json(run.plan_path, plan)
    return plan


def read_plan_loss(plan: dict[str, Any]) -> LossChoice:
    loss = plan["loss"]
    return LossChoice(loss["name"], loss["reason"], loss.get("params", {}), loss.get("tunable", {}))


def explain(plan: dict[str, Any]) -> str:
    """The loss choice in words (Markdown), for the notebook."""
    loss = plan["loss"]
    shape = plan.get("train_shape", plan["task_shape"])
    lines = [f"**{loss['name']}** for the `{shape}` training data ({plan['n_train']:,} rows), "
             f"{loss['chosen_by']}.", "", loss["reason"]]
    if loss.get("params"):
        lines += ["", f"Parameters: `{loss['params']}`"]
    if loss.get("tunable"):
        lines += ["", "Worth tuning: " + "; ".join(f"`{k}`: {v}" for k, v in loss["tunable"].items())]
    if plan.get("matryoshka_dims"):
        lines += ["", f"Wrapped in MatryoshkaLoss over the sizes {plan['matryoshka_dims']}: the leading dimensions "
                      "alone make a usable smaller embedding."]
    if plan.get("in_batch_negatives"):
        lines += ["", "In-batch negatives: batches are drawn without duplicate texts, and a larger "
                      "`train.batch_size` gives every text more negatives."]
    if plan.get("recipe"):
        lines += ["", f"Settings: {plan['recipe']['text'][0].upper()}{plan['recipe']['text'][1:]}"]
    if plan["alternatives"]:
        lines += ["", "Alternatives (set `loss.name` to use one):"]
        lines += [f"- **{a['name']}**: {a['reason']}" for a in plan["alternatives"]]
    return "\n".join(lines)
