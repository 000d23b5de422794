"""What a stage's kernel prints, as `sttune run` shows it in the terminal: the kernel's standard
output reaches papermill's ``stdout_file``, :class:`KernelConsole`, which passes on the warnings of
the ``sttune`` logger and the progress events (core/progress.py) and leaves the rest to the
executed notebook. :func:`kernels_report_progress` asks the kernels started meanwhile for those
events; :func:`drop_progress_lines` takes them out of the executed notebook afterwards."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from ..core import progress
from ..core.io import atomic_write_text
from ..core.reporting import get_logger

log = get_logger(__name__)

# How often a kernel prints a step of a task: the terminal's line moves this often; a file or a pipe
# shows fewer (progress_view.PIPED_INTERVAL_S); the executed notebook keeps every one.
TERMINAL_STEP_INTERVAL_S = 2.0
PIPED_STEP_INTERVAL_S = 10.0


class KernelConsole:
    """papermill's ``stdout_file`` for a stage: lines of progress events go to this process's
    progress sink; with ``warnings``, the lines the ``sttune`` logger prints as warnings in the
    kernel (``warning: ...``, e.g. data_prep's very long texts or dropped rows) go to the console's
    logger, so that `sttune run` shows them as the notebook does."""

    WARNING = "warning: "

    def __init__(self, warnings: bool = True) -> None:
        self.warnings = warnings
        self.pending = ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.emit(line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.emit(self.pending)
            self.pending = ""

    def emit(self, line: str) -> None:
        if progress.relay(line):
            return
        if self.warnings and line.startswith(self.WARNING):
            log.warning(line[len(self.WARNING):])


@contextlib.contextmanager
def kernels_report_progress(terminal: bool) -> Iterator[None]:
    """Kernels started in this block print progress events, a task's step at most every few seconds
    (more often for a ``terminal``'s updating line); they inherit the environment, the one way to
    reach a kernel that papermill starts."""
    previous = os.environ.get(progress.ENV)
    os.environ[progress.ENV] = f"{TERMINAL_STEP_INTERVAL_S if terminal else PIPED_STEP_INTERVAL_S:g}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(progress.ENV, None)
        else:
            os.environ[progress.ENV] = previous


def drop_progress_lines(notebook: Path) -> None:
    """Remove the progress events from an executed notebook's output: they were for the terminal."""
    import nbformat

    executed = nbformat.read(notebook, as_version=nbformat.NO_CONVERT)
    changed = False
    for cell in executed.cells:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and progress.PREFIX in output.get("text", ""):
                changed = True
                output["text"] = "".join(line for line in output["text"].splitlines(keepends=True)
                                         if progress.ProgressEvent.from_line(line) is None)
                if not output["text"]:
                    continue
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    if changed:
        atomic_write_text(notebook, nbformat.writes(executed))
