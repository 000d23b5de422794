"""The error evaluation raises for what a user can fix: an empty test split, an extra model under a
taken name, models whose weights cannot be interpolated."""

from __future__ import annotations

from ..core.errors import SttuneError


class EvaluationError(SttuneError, ValueError):
    """A setting or input that evaluation cannot work with (the message says which and why)."""
