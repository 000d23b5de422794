"""train.max_seq_length: the tokens per text that the training steps see, where it is below the
model's own max_seq_length, at which validation, model selection and evaluation keep encoding."""

from __future__ import annotations

from ..config import check_value
from .errors import TrainingError


def training_length(max_seq_length: int | None, model) -> int | None:
    """The cut for the trainer's data collator: ``max_seq_length`` (train.max_seq_length) where it is
    shorter than the model's; None where unset or no shorter (the model's own cut applies)."""
    if max_seq_length is None:
        return None
    check_value("train.max_seq_length", max_seq_length)
    limit = model.max_seq_length
    if limit is not None and max_seq_length > limit:
        raise TrainingError(f"train.max_seq_length={max_seq_length} is above the model's max_seq_length ({limit}): "
                            "training cannot see more tokens than the model encodes; lower it, or raise "
                            "model.max_seq_length")
    return max_seq_length if limit is None or max_seq_length < limit else None


def cut_training_texts(trainer, length: int | None) -> None:
    """Cut every text of the training steps at ``length`` tokens (the library's collator option); the
    model's max_seq_length, and so every encode() call (validation included), stays as it is."""
    if length is not None:
        trainer.data_collator.max_length = length
