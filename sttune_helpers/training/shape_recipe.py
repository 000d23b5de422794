"""The data shape's measured recipe (train.shape_recipe): settings a shape's bench set showed to beat
the plain recipe (``TaskShape.recipe``), filled into a run's config by stage 02 before the loss is
chosen. A setting is filled only where the config leaves it at the schema's default and a sweep does
not search it, so anything the user set wins; the run's config.yaml takes the filled values (as the
automatic recipe's choices), so every later stage and a replay train what plan.json describes."""

from __future__ import annotations

from typing import Any

from .. import shapes
from ..config import RunConfig
from ..config.ranges import get_key, set_key
from ..config.schema import check_task_prompt
from ..core.reporting import get_logger
from ..rundir import RunDir

log = get_logger(__name__)


def fill_shape_recipe(config: RunConfig, shape: str) -> dict[str, Any] | None:
    """Fill ``shape``'s recipe into ``config`` (in place) where it leaves a setting at its default;
    returns what was filled, what was already so and what the config kept, with the recipe's reason,
    or None where the shape has no recipe or train.shape_recipe is false."""
    recipe = shapes.get(shape).recipe
    if recipe is None or not config.train.shape_recipe:
        return None
    defaults, searched = RunConfig(), set(config.sweep.space)
    filled, in_force, kept = {}, {}, {}
    for key, value in recipe.settings.items():
        current = get_key(config, key)
        if current == value:
            in_force[key] = value
        elif current == get_key(defaults, key) and key not in searched:
            set_key(config, key, value)
            filled[key] = value
        else:
            kept[key] = current
    check_task_prompt(config.train, f"the {shape} recipe")
    return {"shape": shape, "settings": dict(recipe.settings), "filled": filled, "in_force": in_force,
            "kept": kept, "reason": recipe.reason}


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
    """The recipe in one paragraph: what it set, what the config kept, why, and how to turn it off."""
    def settings(items: dict[str, Any]) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in items.items())

    applied = {**recipe["in_force"], **recipe["filled"]}
    text = f"the {recipe['shape']} recipe: " + (settings(applied) if applied else "nothing set")
    if recipe["kept"]:
        text += f"; kept from the config: {settings(recipe['kept'])}"
    return f"{text}. {recipe['reason']} train.shape_recipe=false keeps every setting as given."
