"""The data shape's measured recipe (train.shape_recipe): settings a shape's bench set showed to beat
the plain recipe (``TaskShape.recipe``), filled into a run's config by stage 02 before the loss is
chosen. A setting is filled only where the config leaves it at the schema's default and neither a
sweep nor the automatic recipe (train.budget) searches it, so anything the user set wins; a run whose
loss.name names a loss the recipe was not measured with gets none of it. The run's config.yaml takes
the filled values (as the automatic recipe's choices), so every later stage and a replay train what
plan.json describes."""

from __future__ import annotations

from typing import Any

from .. import shapes
from ..config import RunConfig
from ..config.ranges import get_key, set_key
from ..config.schema import check_task_prompt
from ..core.reporting import get_logger
from ..rundir import RunDir
from .auto_recipe import SEARCHED_KEYS as AUTO_SEARCHED_KEYS

log = get_logger(__name__)


def fill_shape_recipe(config: RunConfig, shape: str) -> dict[str, Any] | None:
    """Fill ``shape``'s recipe into ``config`` (in place) where it leaves a setting at its default;
    returns what was filled, what was already so, what the config kept and what a search chooses,
    with the recipe's reason (and why it was skipped, where loss.name names a loss it was not
    measured with), or None where the shape has no recipe or train.shape_recipe is false."""
    recipe = shapes.get(shape).recipe
    if recipe is None or not config.train.shape_recipe:
        return None
    record = {"shape": shape, "settings": dict(recipe.settings), "losses": list(recipe.losses), "filled": {},
              "in_force": {}, "kept": {}, "searched": {}, "reason": recipe.reason}
    if config.loss.name is not None and config.loss.name not in recipe.losses:
        record["skipped"] = (f"loss.name={config.loss.name}, and it was measured with "
                             f"{' and '.join(recipe.losses)}: the settings stay as given")
        return record
    searched = set(config.sweep.space) | (set(AUTO_SEARCHED_KEYS) if config.train.budget else set())
    defaults = RunConfig()
    for key, value in recipe.settings.items():
        current = get_key(config, key)
        if current == value:
            record["in_force"][key] = value
        elif key in searched:
            record["searched"][key] = current
        elif current == get_key(defaults, key):
            set_key(config, key, value)
            record["filled"][key] = value
        else:
            record["kept"][key] = current
    check_task_prompt(config.train, f"the {shape} recipe")
    return record


def apply_shape_recipe(run: RunDir, config: RunConfig, shape: str) -> dict[str, Any] | None:
    """:func:`fill_shape_recipe`, with the filled settings also written into the run's config.yaml
    (as written: data.shape may stay "auto"); logs what it did."""
    recipe = fill_shape_recipe(config, shape)
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
                f"Leave loss.name unset, or name one of those, to train with it.")
    applied = {**recipe["in_force"], **recipe["filled"]}
    text = f"the {recipe['shape']} recipe: " + (settings(applied) if applied else "nothing set")
    if recipe["kept"]:
        text += f"; kept from the config: {settings(recipe['kept'])}"
    if recipe.get("searched"):
        text += f"; left to the search: {', '.join(recipe['searched'])}"
    return f"{text}. {recipe['reason']} train.shape_recipe=false keeps every setting as given."
