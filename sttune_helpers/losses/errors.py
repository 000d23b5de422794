"""The error a loss setting can cause (an unknown loss, one that does not fit the data's shape, a
temperature or parameters the loss cannot take): the user fixes it in ``loss.*``."""

from __future__ import annotations

from ..core.errors import SettingError


class LossError(SettingError):
    """A loss setting that cannot work with this data or this model (the message names the key)."""
