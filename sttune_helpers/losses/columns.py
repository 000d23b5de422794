"""Fitting a split's columns to the chosen loss: the shape knows how (positives only, label ids,
SimCSE or TSDAE pairs); this asks it."""

from __future__ import annotations

from .. import shapes
from .registry import IN_BATCH_NEGATIVE_LOSSES


def fit_columns(dataset, shape: str, loss_name: str, labels: list[str] | None = None, seed: int = 0):
    """The split as the loss takes it: the trainer passes the text columns in order, and the column
    called label or score to the loss."""
    return shapes.get(shape).fit_loss_columns(dataset, loss_name, in_batch_negatives=loss_name in
                                              IN_BATCH_NEGATIVE_LOSSES, labels=labels, seed=seed)
