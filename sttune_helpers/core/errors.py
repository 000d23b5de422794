"""The one base class for errors a user can cause and fix (bad settings, bad data, a missing run).

The CLI turns a :class:`SttuneError` into exit code 2 and its message; any other exception is a bug
and shows its traceback. Subclasses also derive from the built-in error they replace, so callers
that catch ``ValueError`` or ``FileNotFoundError`` keep working.
"""

from __future__ import annotations


class SttuneError(Exception):
    """Something the user can fix; the message says what and where."""


class SettingError(SttuneError, ValueError):
    """A setting that cannot work on this machine or with this data (the message names the key)."""
