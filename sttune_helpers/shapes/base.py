"""What a task shape is: the one place that knows how data of that shape looks, which losses fit it,
and how a model is measured on it. Data, loss, training, evaluation and viz code ask the shape
instead of branching on its name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LossChoice:
    name: str  # a sentence-transformers loss class name
    reason: str
    params: dict[str, Any] = field(default_factory=dict)
    # Parameter -> what it does, for the notebook and the widgets.
    tunable: dict[str, str] = field(default_factory=dict)


MNRL_TUNABLE = {"temperature": "softmax temperature over the in-batch candidates (loss.temperature; scale = 1/T)"}


@dataclass(frozen=True)
class TaskShape:
    """One task shape. Subclass it in a file of its own under ``shapes/`` and register the instance
    in ``shapes/__init__.py``."""

    name: str
    columns: tuple[str, ...]  # canonical columns, in the order the trainer gets them
    # The texts that must not be shared between splits (negatives are often reused on purpose).
    group_columns: tuple[str, ...]
    losses: tuple[LossChoice, ...]  # candidates, the default first
    metrics: tuple[str, ...]  # reported test metrics, primary first, as the library's evaluators name them
    # What early stopping follows on a validation split of this shape ("loss" where no evaluator fits).
    validation_metric: str
    item_score_meaning: str  # what the per-item score of error analysis is
    item_error_meaning: str  # what the per-item error is (larger is worse, 0 is perfect)

    # --- data -------------------------------------------------------------------------------

    @property
    def text_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in ("score", "label"))

    @property
    def label_column(self) -> str | None:
        return next((c for c in self.columns if c in ("score", "label")), None)

    # --- losses -----------------------------------------------------------------------------

    @property
    def default_loss(self) -> LossChoice:
        return self.losses[0]

    # --- evaluation -------------------------------------------------------------------------

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def __str__(self) -> str:
        return self.name
