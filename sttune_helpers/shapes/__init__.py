"""The task-shape registry: one file per shape, each defining a :class:`TaskShape` instance.

Adding a shape means one new file here (and its tests); ``get(name)`` is how the rest of the package
looks a shape up. Shapes import only ``core`` and libraries.
"""

from __future__ import annotations

from ..core.errors import SettingError
from .base import LossChoice, ShapeRecipe, TaskShape
from .pair_binary import PAIR_BINARY
from .pair_class import PAIR_CLASS
from .pair_score import PAIR_SCORE
from .retrieval import RETRIEVAL
from .triplet import TRIPLET
from .unlabeled import UNLABELED

REGISTRY: dict[str, TaskShape] = {shape.name: shape for shape in
                                  (PAIR_SCORE, PAIR_BINARY, PAIR_CLASS, TRIPLET, RETRIEVAL, UNLABELED)}
SHAPES: tuple[str, ...] = tuple(REGISTRY)


def get(name: str) -> TaskShape:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SettingError(f"unknown task shape {name!r}; the shapes are: {', '.join(SHAPES)}") from None


__all__ = ["LossChoice", "ShapeRecipe", "TaskShape", "REGISTRY", "SHAPES", "get"]
