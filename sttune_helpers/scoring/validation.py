"""The validation split's evaluator and the metric that early stopping and checkpoint selection
follow, as the trainer names them."""

from __future__ import annotations

from typing import Literal

from .. import shapes
from ..rundir import RunDir
from .tasks import retrieval_tables

LOWER_IS_BETTER = {"loss"}


def primary_metric_key(shape: str, evaluator_name: str) -> str:
    """The key under which the sentence-transformers evaluator reports the headline metric."""
    return f"{evaluator_name}_{shapes.get(shape).primary_metric}"


def validation_metric(shape: str, chosen: str | None = None) -> tuple[str, bool]:
    """The trainer's metric_for_best_model for a validation split of ``shape`` and whether greater
    is better; ``chosen`` (train.early_stopping_metric) overrides the shape's default."""
    metric = chosen or shapes.get(shape).validation_metric
    if metric in LOWER_IS_BETTER:
        return "eval_loss", False
    return f"eval_validation_{metric}", True


def build_evaluator(shape: str, dataset, name: str, batch_size: int = 64, run: RunDir | None = None,
                    corpus_size: int | Literal["auto"] | None = None, seed: int = 0):
    """The sentence-transformers evaluator for a split of ``shape``, or None where the shape has
    none (early stopping then follows the validation loss). A retrieval split ranks against the
    corpus cut to ``corpus_size`` documents with ``seed`` (scoring/tasks.py's sub_corpus; "auto": relative to
    the relevant documents; None: whole)."""
    task_shape = shapes.get(shape)
    tables = (retrieval_tables(run, name, corpus_size, seed) if task_shape.uses_corpus and run is not None
              else None)
    return task_shape.build_evaluator(dataset, name, batch_size, tables)
