"""Progress of long work (training steps, model selection, evaluation, mining) as events, for a
terminal to show while a notebook or a worker process runs it.

Code that works calls ``task = Progress("training", total=400, unit="steps")`` and then
``task.step(n)`` / ``task.milestone(n, "validation spearman 0.85")`` / ``task.end(n)``. Where the
events go is set by whoever shows them:

- ``reporting_to(sink)``: to a callable in this process (the terminal view of ``sttune train``);
- ``$STTUNE_PROGRESS`` set to a number of seconds (by `sttune run` for its kernels, by the
  torchrun launcher for its ranks): as ``sttune-progress: {json}`` lines on standard output, a
  step at most that often, which the process that reads the output hands to :func:`relay`;
- neither (a notebook in JupyterLab, which has the trainer's own display): nowhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

ENV = "STTUNE_PROGRESS"
PREFIX = "sttune-progress: "

STEP = "step"  # one more unit of work: a view may skip it
MILESTONE = "milestone"  # a result along the way (a validation, a candidate scored): always shown
END = "end"  # the task finished: always shown


@dataclass(frozen=True)
class ProgressEvent:
    task: str  # what progresses, as the terminal names it ("training", "model selection")
    done: int
    total: int | None = None
    unit: str = ""  # what done counts ("steps", "candidates")
    elapsed: float = 0.0  # seconds since the task started in this process
    since: int = 0  # done when the clock started (a resumed run's first step): the rate counts from here
    kind: str = STEP
    detail: str = ""  # the latest result, e.g. "validation spearman_cosine 0.8512"

    def to_line(self) -> str:
        return PREFIX + json.dumps({**asdict(self), "elapsed": round(self.elapsed, 2)}, separators=(",", ":"))

    @classmethod
    def from_line(cls, line: str) -> ProgressEvent | None:
        """The event in a line of output (after any prefix a launcher adds, e.g. torchrun's
        ``[default0]:``); None for any other line."""
        _, found, payload = line.partition(PREFIX)
        if not found:
            return None
        try:
            return cls(**json.loads(payload))
        except (ValueError, TypeError):
            return None


Sink = Callable[[ProgressEvent], None]
_sinks: list[Sink] = []


class LineWriter:
    """Writes events as lines on standard output, a STEP of a task at most every ``interval`` seconds."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self.interval, self.clock = interval, clock
        self.last_step: dict[str, float] = {}

    def __call__(self, event: ProgressEvent) -> None:
        now = self.clock()
        if event.kind == STEP:
            last = self.last_step.get(event.task)
            if last is not None and now - last < self.interval:
                return
        self.last_step[event.task] = now
        print(event.to_line(), file=sys.stdout, flush=True)


_line_writers: dict[float, LineWriter] = {}


def _environment_sink() -> Sink | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    try:
        interval = max(0.0, float(value))
    except ValueError:
        return None
    return _line_writers.setdefault(interval, LineWriter(interval))


def current_sink() -> Sink | None:
    return _sinks[-1] if _sinks else _environment_sink()


def shown_here() -> bool:
    """Whether a view in this process shows the events (`sttune train`), rather than another process
    reading them from the output or nobody: then a library's own progress bar would only break its line."""
    return bool(_sinks)


def emit(event: ProgressEvent) -> None:
    sink = current_sink()
    if sink is not None:
        sink(event)


def relay(line: str) -> bool:
    """Pass on the event in a line read from another process's output (True), or say it holds none."""
    event = ProgressEvent.from_line(line)
    if event is None:
        return False
    emit(event)
    return True


@contextlib.contextmanager
def reporting_to(sink: Sink) -> Iterator[Sink]:
    """Send the events of this process to ``sink`` while the block runs."""
    _sinks.append(sink)
    try:
        yield sink
    finally:
        _sinks.remove(sink)


# A view that keeps an unfinished line on a terminal ends it before other output (core/reporting.py).
_line_breakers: list[Callable[[], None]] = []


def add_line_breaker(breaker: Callable[[], None]) -> None:
    _line_breakers.append(breaker)


def remove_line_breaker(breaker: Callable[[], None]) -> None:
    with contextlib.suppress(ValueError):
        _line_breakers.remove(breaker)


def break_line() -> None:
    """End any progress line a terminal view left open, so that the next output starts on a line of its own."""
    for breaker in list(_line_breakers):
        breaker()


def number(value: float | None) -> str:
    """A metric in an event's detail (None: not measured)."""
    return "n/a" if value is None else f"{value:.4f}"


class Progress:
    """One task's events, its clock started at creation (at ``done``, e.g. a resumed run's first step)."""

    def __init__(self, task: str, total: int | None = None, unit: str = "", done: int = 0,
                 clock: Callable[[], float] = time.perf_counter):
        self.task, self.total, self.unit, self.since, self.done = task, total, unit, done, done
        self.clock = clock
        self.started = clock()

    def _emit(self, kind: str, done: int | None, detail: str) -> None:
        if done is not None:
            self.done = done
        emit(ProgressEvent(self.task, self.done, self.total, self.unit, self.clock() - self.started, self.since,
                           kind, detail))

    def step(self, done: int | None = None, detail: str = "") -> None:
        self._emit(STEP, done, detail)

    def milestone(self, done: int | None = None, detail: str = "") -> None:
        self._emit(MILESTONE, done, detail)

    def end(self, done: int | None = None, detail: str = "") -> None:
        self._emit(END, done, detail)
