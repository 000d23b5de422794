"""What a task shape is: the one place that knows how data of that shape looks, which losses fit it,
and how a model is measured on it. Data, loss, training, evaluation and viz code ask the shape
instead of branching on its name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


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

    # True where the default loss scores the rest of the batch as negatives: a small batch starves it.
    in_batch_default: ClassVar[bool] = False

    @property
    def default_loss(self) -> LossChoice:
        return self.losses[0]

    def recommend_loss(self, n_train: int, batch_size: int) -> tuple[LossChoice, str]:
        """The loss for this much data at this batch size, and why (the default unless a shape knows
        better)."""
        if self.in_batch_default and batch_size < 32:
            return self.default_loss, (f"the default for {self.name}; note that a batch of {batch_size} gives each "
                                       f"text only {max(0, batch_size - 1)} in-batch negatives: raise "
                                       "train.batch_size if memory allows")
        return self.default_loss, f"the default for the {self.name} shape at {n_train:,} training rows"

    def loss_shape(self, train_shape: str | None) -> str:
        """The shape whose losses fit the train split: the train split's own shape ``train_shape``
        where the data stage changed it (mining turns pairs into triplets), else this one."""
        return train_shape or self.name

    def fit_loss_columns(self, dataset, loss_name: str, *, in_batch_negatives: bool,
                         labels: list[str] | None = None, seed: int = 0):
        """The split as the loss ``loss_name`` takes it (``in_batch_negatives``: that loss scores the
        rest of the batch as negatives). The trainer passes the text columns in order, and the
        column called label or score to the loss."""
        return dataset

    # --- evaluation -------------------------------------------------------------------------

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def __str__(self) -> str:
        return self.name
