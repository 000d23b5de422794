"""What validation costs during training: its settings' check, the precision it encodes in
(train.validation_precision) and the callback that keeps it within train.max_validation_share of the
training time by spacing later evaluations, and the checkpoints saved with them, out.

Precision: with ``bf16`` (or ``fp16``) training arguments, accelerate wraps the model's ``forward``
in autocast when the trainer starts, and the evaluator's ``model.encode`` calls go through that
``forward``: validation already encodes in the training precision ("auto"). "fp32" takes the wrapper
off for the evaluator's call (:func:`with_validation_precision`)."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable, Iterator

from transformers import TrainerCallback

from ..config import check_value
from ..core.reporting import get_logger
from . import ranks
from .errors import TrainingError

log = get_logger(__name__)

VALIDATION_PRECISIONS = ("auto", "fp32")
# An evaluation quicker than this is never a reason to space evaluations out: the time saved is
# small next to coarser early stopping and fewer checkpoints to choose from.
MIN_VALIDATION_SECONDS = 1.0


def check_validation_settings(train) -> None:
    """A SettingError naming the key of a validation setting that cannot work (for a config edited in
    code: one read from YAML or overrides was range-checked when it was built)."""
    check_value("train.validation_corpus_size", train.validation_corpus_size)
    check_value("train.max_validation_share", train.max_validation_share)
    if train.validation_precision not in VALIDATION_PRECISIONS:
        raise TrainingError(f"train.validation_precision must be one of {', '.join(VALIDATION_PRECISIONS)}, "
                            f"got {train.validation_precision!r}")


@contextlib.contextmanager
def plain_forward(model) -> Iterator[None]:
    """The model's own ``forward`` for the duration, without the autocast wrapper accelerate sets on
    the instance for mixed-precision training (restored after)."""
    import torch

    patched = model.__dict__.pop("forward", None)
    try:
        with torch.autocast(torch.device(model.device).type, enabled=False):
            yield
    finally:
        if patched is not None:
            model.forward = patched


def with_validation_precision(evaluator, precision: str):
    """``evaluator`` as it encodes under train.validation_precision: unchanged for "auto" (the
    training precision, see the module docstring); for "fp32" its calls run :func:`plain_forward`.
    The evaluator keeps its class's name, attributes and metrics (the trainer and the model card
    read them)."""
    if evaluator is None or precision == "auto":
        return evaluator
    original = type(evaluator)

    def __call__(self, model, *args, **kwargs):
        with plain_forward(model):
            return original.__call__(self, model, *args, **kwargs)

    evaluator.__class__ = type(original.__name__, (original,), {"__call__": __call__, "__module__": original.__module__,
                                                                "__qualname__": original.__qualname__,
                                                                "validation_precision": "fp32"})
    return evaluator


class ValidationBudget(TrainerCallback):
    """Times the first evaluation against the training steps before it; where evaluating every
    ``eval_steps`` steps would spend more than ``max_share`` x the training time on validation (and
    the evaluation took at least MIN_VALIDATION_SECONDS), raises the trainer's evaluation and save
    interval (both: the best checkpoint must be one that was saved) to the smallest that keeps
    validation within the share. ``record()`` is what training.json keeps."""

    def __init__(self, max_share: float, clock: Callable[[], float] = time.perf_counter):
        self.max_share = max_share
        self.clock = clock
        self.mark: float | None = None
        self.train_seconds = 0.0
        self.steps = 0
        self.validation_seconds: float | None = None
        self.configured_eval_steps: int | None = None
        self.eval_steps: int | None = None
        self.share: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.mark = self.clock()
        self.configured_eval_steps = self.eval_steps = state.eval_steps or args.eval_steps

    def on_step_end(self, args, state, control, **kwargs):
        now = self.clock()
        if self.validation_seconds is None and self.mark is not None:
            self.train_seconds += now - self.mark
            self.steps += 1
        self.mark = now

    def on_save(self, args, state, control, **kwargs):
        self.mark = self.clock()  # a checkpoint's saving counts as neither training nor validation

    def on_evaluate(self, args, state, control, **kwargs):
        now = self.clock()
        first = self.validation_seconds is None and self.mark is not None and self.steps > 0
        if not first:
            self.mark = now
            return
        self.validation_seconds = now - self.mark
        self.mark = now
        step_seconds = self.train_seconds / self.steps
        interval = self.eval_steps or 1
        self.share = self.validation_seconds / (interval * step_seconds) if step_seconds > 0 else math.inf
        spaced = None
        if self.share > self.max_share and self.validation_seconds >= MIN_VALIDATION_SECONDS:
            spaced = max(interval + 1, math.ceil(self.validation_seconds / (self.max_share * step_seconds)))
        # Every rank of a data-parallel run evaluates at the same steps: rank 0's timing decides.
        spaced = ranks.gather_from_ranks(spaced)[0]
        if spaced is None:
            return
        state.eval_steps = state.save_steps = spaced
        args.eval_steps = args.save_steps = spaced  # as the trainer's arguments would have had it
        self.eval_steps = spaced
        if ranks.is_rank_zero():
            log.info(f"validation takes {self.share:.0%} of the training time at every {interval} steps "
                     f"({self.validation_seconds:.1f} s per evaluation, {step_seconds:.2f} s per step), over "
                     f"train.max_validation_share={self.max_share:g}: evaluating (and saving checkpoints) every "
                     f"{spaced} steps from here")

    def record(self) -> dict[str, Any]:
        """The measured share of the training time validation took at the configured interval, and the
        interval used after the first evaluation."""
        return {"max_share": self.max_share, "share": None if self.share is None else round(self.share, 4),
                "validation_seconds": None if self.validation_seconds is None else round(self.validation_seconds, 3),
                "step_seconds": round(self.train_seconds / self.steps, 4) if self.steps else None,
                "configured_eval_steps": self.configured_eval_steps, "eval_steps": self.eval_steps,
                "spaced_out": self.eval_steps != self.configured_eval_steps}


def validation_budget(max_share: float | None) -> ValidationBudget | None:
    """The callback for train.max_validation_share; None where it is unset."""
    return None if max_share is None else ValidationBudget(max_share)
