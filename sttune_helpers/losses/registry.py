"""Which losses exist: the families of sentence-transformers losses that the rest of the package
treats alike (scaled, with a temperature, with in-batch negatives, guided), each loss class by name,
and the candidate losses of each task shape (from the shape registry)."""

from __future__ import annotations

import inspect

from .. import shapes
from ..shapes import LossChoice
from .errors import LossError

# Losses whose logits are similarities times ``scale``: temperature = 1 / scale.
SCALED_LOSSES = {"MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss", "CoSENTLoss", "AnglELoss"}
# Losses that take ``temperature`` itself.
TEMPERATURE_LOSSES = {"GISTEmbedLoss"}
# Losses that score every other in-batch text as a negative: they want big batches without duplicates.
IN_BATCH_NEGATIVE_LOSSES = {"MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss", "GISTEmbedLoss"}
# Losses that filter their negatives with a guide model.
GUIDED_LOSSES = {"GISTEmbedLoss", "CachedGISTEmbedLoss"}


def loss_choices(shape: str) -> list[LossChoice]:
    """The candidate losses of ``shape``, the default first."""
    if shape not in shapes.REGISTRY:
        raise LossError(f"no losses registered for task shape {shape!r}; known shapes: {', '.join(shapes.SHAPES)}")
    return list(shapes.REGISTRY[shape].losses)


def registered_for(loss_name: str) -> list[str]:
    """The shapes that list ``loss_name`` among their candidates."""
    return [name for name, shape in shapes.REGISTRY.items() if any(c.name == loss_name for c in shape.losses)]


def loss_class(name: str):
    """The sentence-transformers loss class called ``name``."""
    from sentence_transformers.sentence_transformer import losses

    cls = getattr(losses, name, None)
    if not isinstance(cls, type):
        known = sorted(n for n in dir(losses) if n.endswith("Loss") and isinstance(getattr(losses, n), type))
        raise LossError(f"unknown loss {name!r}; sentence-transformers losses: {', '.join(known)}")
    return cls


def supports_gather_across_devices(loss_name: str) -> bool:
    """True where the loss class takes ``gather_across_devices`` (the MNRL and GIST families)."""
    return "gather_across_devices" in inspect.signature(loss_class(loss_name).__init__).parameters
