"""One way to report progress and warnings: the ``sttune`` logger.

Library code calls ``log = get_logger(__name__)`` and ``log.info(...)`` / ``log.warning(...)``.
:func:`show_on_console` (called by the CLI and by every stage a notebook opens) prints those records
on standard output, plain for progress and prefixed ``warning:`` for warnings, so the same lines
appear in a terminal and under a notebook cell.
"""

from __future__ import annotations

import logging
import sys

from . import progress

ROOT = "sttune"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (a notebook's or pytest's capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):  # noqa: D102
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        progress.break_line()  # a terminal's progress line stays whole, above this record
        super().emit(record)


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return f"warning: {message}" if record.levelno >= logging.WARNING else message


def get_logger(name: str = ROOT) -> logging.Logger:
    """The logger for a module: ``sttune_helpers.data.readers`` reports as ``sttune.data.readers``."""
    if name.startswith("sttune_helpers"):
        name = ROOT + name[len("sttune_helpers"):]
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


def show_on_console(level: int = logging.INFO) -> None:
    """Print the sttune logger's records on standard output (once, however often it is called)."""
    root = logging.getLogger(ROOT)
    root.setLevel(level)
    if not any(isinstance(h, _StdoutHandler) for h in root.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(_Format())
        root.addHandler(handler)
    root.propagate = False
