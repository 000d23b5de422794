"""The data shape's measured recipe (train.shape_recipe): settings a shape's bench set showed to beat
the plain recipe (``TaskShape.recipe``), filled into a run's config by stage 02 before the loss is
chosen. A setting is filled only where the config leaves it at the schema's default and neither a
sweep nor the automatic recipe (train.budget) searches it, so anything the user set wins; a run that
trains with a loss the recipe was not measured with (named in loss.name, or recommended for a train
split the data stage turned into another shape) gets none of it. The run's config.yaml takes
the filled values (as the automatic recipe's choices), so every later stage and a replay train what
plan.json describes."""

from __future__ import annotations

import copy
from typing import Any

from .. import shapes
from ..config import RunConfig
from ..config.ranges import get_key, set_key
from ..config.schema import check_task_prompt
from ..core.reporting import get_logger
from ..losses import recommend
from ..modeling import ATTENTION_DROPOUT_KEYS, has_attention_dropout
from ..rundir import RunDir
from .auto_recipe import SEARCHED_KEYS as AUTO_SEARCHED_KEYS

log = get_logger(__name__)


def fill_shape_recipe(config: RunConfig, shape: str, train_shape: str | None = None,
                      n_train: int = 0) -> dict[str, Any] | None:
    """Fill the data shape ``shape``'s recipe into ``config`` (in place) where it leaves a setting at its
    default; returns what was filled, what was already so, what the config kept and what a search
    chooses, with the recipe's reason, or None where the shape has no recipe or train.shape_recipe is
    false. ``train_shape``: the train split's shape where the data stage changed it (mined negatives
    make triplets), whose loss for ``n_train`` rows is the one checked against the recipe's: a run that
    trains with a loss the recipe was not measured with (named in loss.name, or recommended for the
    train split) gets none of it, and the record says why ("skipped")."""
    recipe = shapes.get(shape).recipe
    if recipe is None or not config.train.shape_recipe:
        return None
    record = {"shape": shape, "settings": dict(recipe.settings), "losses": list(recipe.losses), "filled": {},
              "in_force": {}, "kept": {}, "searched": {}, "not_applicable": {}, "reason": recipe.reason}
    filled = copy.deepcopy(config)
    fill_settings(filled, recipe.settings, record)
    skipped = unmeasured_loss(filled, recipe.losses, shape, train_shape or shape, n_train)
    if skipped:
        return {**record, "filled": {}, "in_force": {}, "kept": {}, "searched": {}, "not_applicable": {}, **skipped}
    for key, value in record["filled"].items():
        set_key(config, key, value)
    check_task_prompt(config.train, f"the {shape} recipe")
    return record


def unmeasured_loss(config: RunConfig, measured: tuple[str, ...], shape: str, train_shape: str,
                    n_train: int) -> dict[str, str] | None:
    """Why the recipe is skipped ("skipped") and how to have it ("remedy"), where the run trains with a
    loss it was not measured with: loss.name's, or the train split's recommendation with the recipe's
    settings in place; None where the loss is one of ``measured``."""
    losses = " and ".join(measured)
    if config.loss.name is not None:
        if config.loss.name in measured:
            return None
        return {"skipped": f"loss.name={config.loss.name}, and it was measured with {losses}: the settings stay "
                           "as given",
                "remedy": "Leave loss.name unset, or name one of those, to train with it."}
    loss, _ = recommend(train_shape, n_train, config.train.batch_size, anchored=bool(config.train.general_anchor))
    if loss.name in measured:
        return None
    return {"skipped": f"the train split is {train_shape} (the data stage made it so), whose loss is {loss.name}, "
                       f"and it was measured with {losses}: the settings stay as given",
            "remedy": f"It applies where the train split stays {shape} (data.negatives.enabled=false)."}


def fill_settings(config: RunConfig, settings: dict[str, Any], record: dict[str, Any]) -> None:
    """Set each of ``settings`` that ``config`` leaves at its default, and that no search chooses and the
    model can take; ``record`` says which was filled, already so, kept, searched or not applicable."""
    searched = set(config.sweep.space) | (set(AUTO_SEARCHED_KEYS) if config.train.budget else set())
    defaults = RunConfig()
    for key, value in settings.items():
        current = get_key(config, key)
        if current == value:
            record["in_force"][key] = value
        elif key in searched:
            record["searched"][key] = current
        elif current == get_key(defaults, key):
            if reason := not_applicable(config, key):
                record["not_applicable"][key] = reason
                continue
            set_key(config, key, value)
            record["filled"][key] = value
        else:
            record["kept"][key] = current


def not_applicable(config: RunConfig, key: str) -> str | None:
    """Why a recipe's setting cannot apply to the run's model (None: it can)."""
    if key == "model.attention_dropout" and not has_attention_dropout(config.model.name):
        return f"the model's config names no attention dropout ({', '.join(ATTENTION_DROPOUT_KEYS)})"
    return None


def apply_shape_recipe(run: RunDir, config: RunConfig, shape: str, train_shape: str | None = None,
                       n_train: int = 0) -> dict[str, Any] | None:
    """:func:`fill_shape_recipe`, with the filled settings also written into the run's config.yaml
    (as written: data.shape may stay "auto"); logs what it did."""
    recipe = fill_shape_recipe(config, shape, train_shape, n_train)
    if recipe is None:
        return None
    if recipe["filled"]:
        saved = run.load_config()
        for key, value in recipe["filled"].items():
            set_key(saved, key, value)
        run.save_config(saved)
    log.info(describe(recipe))
    return recipe


def describe(recipe: dict[str, Any]) -> str:
    """The recipe in one paragraph: what it set, what the config kept or a search chooses, why, and how
    to turn it off (or why it was skipped, and how to have it)."""
    def settings(items: dict[str, Any]) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in items.items())

    if recipe.get("skipped"):
        return (f"the {recipe['shape']} recipe ({settings(recipe['settings'])}) is not applied: {recipe['skipped']}. "
                f"{recipe['remedy']}")
    applied = {**recipe["in_force"], **recipe["filled"]}
    text = f"the {recipe['shape']} recipe: " + (settings(applied) if applied else "nothing set")
    if recipe["kept"]:
        text += f"; kept from the config: {settings(recipe['kept'])}"
    for key, reason in recipe.get("not_applicable", {}).items():
        text += f"; not {key}: {reason}"
    if recipe.get("searched"):
        text += f"; left to the search: {', '.join(recipe['searched'])}"
    return f"{text}. {recipe['reason']} train.shape_recipe=false keeps every setting as given."
