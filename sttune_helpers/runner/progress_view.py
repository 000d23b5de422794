"""Progress events (core/progress.py) as a terminal shows them: on a terminal one line that updates in
place, with the elapsed and the remaining time; into a file or a pipe plain lines, a step of a task
at most every ``interval`` seconds, so that a log stays readable. Results along the way (a
validation, a candidate scored) and a task's end always get a line of their own."""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from typing import Callable, Iterator, TextIO

from ..core import progress
from ..core.progress import END, STEP, ProgressEvent

INDENT = "      "  # under the runner's "[3/5] training ..." line
PIPED_INTERVAL_S = 30.0


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def remaining_seconds(event: ProgressEvent) -> float | None:
    """The time left at the rate since the clock started (None before there is a rate, or without a total)."""
    counted = event.done - event.since
    if event.total is None or counted <= 0 or event.elapsed <= 0:
        return None
    return max(0, event.total - event.done) * event.elapsed / counted


def describe(event: ProgressEvent) -> str:
    """'training 120/400 steps (30%), 1m20s elapsed, 3m07s left; validation spearman_cosine 0.8512'"""
    unit = f" {event.unit}" if event.unit else ""
    if event.total:
        text = f"{event.task} {event.done}/{event.total}{unit} ({100 * event.done / event.total:.0f}%)"
    else:
        text = f"{event.task} {event.done}{unit}"
    text += f", {format_duration(event.elapsed)} elapsed"
    left = remaining_seconds(event) if event.kind != END else None
    if left is not None and event.done < event.total:
        text += f", {format_duration(left)} left"
    return text + (f"; {event.detail}" if event.detail else "")


class ProgressView:
    """A sink for progress events that writes to ``stream`` (a terminal when ``tty``, default: whether it is one)."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, interval: float = PIPED_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stdout
        self.tty = tty if tty is not None else bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval, self.clock = interval, clock
        self.last_line: dict[str, float] = {}  # task -> when its last line was written (piped)
        self.line_open = False  # a step line on the terminal waits to be overwritten

    def __call__(self, event: ProgressEvent) -> None:
        text = INDENT + describe(event)
        if self.tty:
            width = shutil.get_terminal_size().columns - 1  # a wrapped line cannot be overwritten
            self.stream.write("\r\x1b[K" + text[:width])
            self.line_open = event.kind == STEP
            if not self.line_open:
                self.stream.write("\n")
        else:
            now = self.clock()
            last = self.last_line.get(event.task)
            if event.kind == STEP and last is not None and now - last < self.interval:
                return
            self.last_line[event.task] = now
            self.stream.write(text + "\n")
        self.stream.flush()

    def break_line(self) -> None:
        """End an open step line, so that other output starts on a line of its own."""
        if self.line_open:
            self.stream.write("\n")
            self.stream.flush()
            self.line_open = False


@contextlib.contextmanager
def showing_progress(view: ProgressView) -> Iterator[ProgressView]:
    """This process's progress events (and those relayed from kernels and ranks) go to ``view``."""
    progress.add_line_breaker(view.break_line)
    try:
        with progress.reporting_to(view):
            yield view
    finally:
        view.break_line()
        progress.remove_line_breaker(view.break_line)
