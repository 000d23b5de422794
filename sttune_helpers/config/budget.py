"""train.budget: the wall-clock budget of an automatic recipe, written like "20m", "90s" or
"1h30m", parsed strictly into seconds."""

from __future__ import annotations

import re

from ..core.errors import SettingError

BUDGET_FORM = 'whole hours, minutes and seconds in that order, such as "20m", "90s", "1h30m" or "1h5m30s"'
_BUDGET = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")


def parse_budget(text: object, key: str = "train.budget") -> float:
    """Seconds in a budget like "20m", "90s" or "1h30m"; anything else (a bare number, "1.5h",
    "20 min", a zero budget) is refused with a SettingError that names ``key`` and the form."""
    match = _BUDGET.fullmatch(text) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise SettingError(f"{key} must be a wall-clock budget written as {BUDGET_FORM}; got {text!r}")
    seconds = 3600 * int(match["h"] or 0) + 60 * int(match["m"] or 0) + int(match["s"] or 0)
    if seconds <= 0:
        raise SettingError(f"{key} must be a budget above zero, written as {BUDGET_FORM}; got {text!r}")
    return float(seconds)
