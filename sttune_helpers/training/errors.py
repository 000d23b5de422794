"""The errors of the training stage: a setting that cannot work (TrainingError), training stopped
by a guard (diverged loss, collapsed embeddings), and a failed multi-process run."""

from __future__ import annotations

from ..core.errors import SettingError, SttuneError


class TrainingError(SettingError):
    """A training setting that cannot work on this machine or in this call (the message names the key)."""


class TrainingDivergedError(SttuneError, RuntimeError):
    """The training loss became NaN or infinite."""


class EmbeddingCollapseError(SttuneError, RuntimeError):
    """Every text is embedded at nearly the same point."""


class DistributedTrainingError(SttuneError, RuntimeError):
    """A training process failed (or torchrun could not start them)."""
