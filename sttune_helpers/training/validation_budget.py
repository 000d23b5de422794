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
# The share is timed once, and the same run measures 0.096 to 0.113 on one machine (STS-B, EPYC,
# bench/RESULTS.md session 19): spacing starts only above max_share x this, so that a run near the
# limit evaluates at the same steps every time, at the price of up to 25% over the share.
SPACING_TOLERANCE = 1.25


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
    ``eval_steps`` steps would spend more than SPACING_TOLERANCE x ``max_share`` of the training time
    on validation (and the evaluation took at least MIN_VALIDATION_SECONDS), raises the trainer's
    evaluation and save interval (both: the best checkpoint must be one that was saved) to the
    smallest whole multiple of ``eval_steps`` that keeps validation within ``max_share``. Whole
    multiples keep evaluations on the configured points (epoch halves stay epoch ends) and make a
    re-run of a seed evaluate, stop early and restore at the same steps, unless the timing sits at a
    boundary. ``record()`` is what training.json keeps."""

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
        if self.share > self.max_share * SPACING_TOLERANCE and self.validation_seconds >= MIN_VALIDATION_SECONDS:
            spaced = interval * math.ceil(self.share / self.max_share)
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
                     f"{spaced} steps from here (about {self.share * interval / spaced:.0%})")

    def record(self) -> dict[str, Any]:
        """The measured share of the training time validation took at the configured interval, the
        interval used after the first evaluation and the share expected at it."""
        interval, spaced = self.configured_eval_steps or 1, self.eval_steps or 1
        expected = None if self.share is None else self.share * interval / spaced
        return {"max_share": self.max_share, "share": None if self.share is None else round(self.share, 4),
                "expected_share": None if expected is None else round(expected, 4),
                "validation_seconds": None if self.validation_seconds is None else round(self.validation_seconds, 3),
                "step_seconds": round(self.train_seconds / self.steps, 4) if self.steps else None,
                "configured_eval_steps": self.configured_eval_steps, "eval_steps": self.eval_steps,
                "spaced_out": self.eval_steps != self.configured_eval_steps}


def validation_budget(max_share: float | None) -> ValidationBudget | None:
    """The callback for train.max_validation_share; None where it is unset."""
    return None if max_share is None else ValidationBudget(max_share)
