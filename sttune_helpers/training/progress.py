"""Training's progress events (core/progress.py): a step at each optimizer step, the validation
metric at each evaluation, and the end; from rank 0 alone."""

from __future__ import annotations

import contextlib
from typing import Iterator

from transformers import TrainerCallback

from ..core.progress import Progress, shown_here

TASK = "training"


def metric_label(metric: str) -> str:
    """'eval_validation_spearman_cosine' -> 'validation spearman_cosine'; 'eval_loss' -> 'validation loss'."""
    name = metric.removeprefix("eval_").removeprefix("validation_")
    return f"validation {name}"


class TrainingProgress(TrainerCallback):
    """Reports step / total and the latest value of ``metric`` (the trainer's metric_for_best_model)."""

    def __init__(self, metric: str):
        self.metric = metric
        self.progress: Progress | None = None
        self.latest = ""  # the last validation, repeated on every step line

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:  # a resumed run's clock starts at its checkpoint's step
            self.progress = Progress(TASK, total=state.max_steps, unit="steps", done=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.step(state.global_step, self.latest)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.progress is None or not metrics:
            return
        key = self.metric if self.metric in metrics else f"eval_{self.metric}"
        if key in metrics:
            self.latest = f"{metric_label(key)} {metrics[key]:.4f}"
            self.progress.milestone(state.global_step, self.latest)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:  # before max_steps: early stopping (an error ends training without this call)
            stopped = "stopped early; " if state.global_step < state.max_steps else ""
            self.progress.end(state.global_step, stopped + self.latest)
            self.progress = None


@contextlib.contextmanager
def without_library_bars(trainer) -> Iterator[None]:
    """Where a view in this process shows training's progress (`sttune train`), the trainer's bar and
    transformers' own (a checkpoint's "Writing model shards") would break its line: off meanwhile.
    A notebook keeps them."""
    if not shown_here():
        yield
        return
    from transformers.trainer_callback import ProgressCallback
    from transformers.utils import logging as transformers_logging

    trainer.remove_callback(ProgressCallback)
    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()
