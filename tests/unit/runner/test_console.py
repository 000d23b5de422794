"""A stage kernel's output: progress events and warnings to the terminal, the rest to the executed
notebook, which keeps no progress lines."""

import logging

import nbformat

from sttune_helpers.core import progress
from sttune_helpers.core.progress import ProgressEvent
from sttune_helpers.runner.console import KernelConsole, drop_progress_lines


def training(done, detail=""):
    return ProgressEvent("training", done, 8, "steps", 1.5, 0, "step", detail)


def test_the_kernel_console_shows_progress_and_warnings_and_leaves_the_rest(caplog):
    event = training(3, detail="validation spearman_cosine 0.5000")
    received = []
    console = KernelConsole()
    line = event.to_line()
    with progress.reporting_to(received.append), caplog.at_level(logging.INFO, logger="sttune"):
        console.write("batch: 16 per device\nwarning: 3 rows dropped\n" + line[:20])  # a line split across writes
        console.write(line[20:] + "\n{'loss': 0.5}")
        console.flush()
    assert received == [event]
    assert [r.getMessage() for r in caplog.records] == ["3 rows dropped"]
    quiet = KernelConsole(warnings=False)  # papermill's --log-output prints the warnings already
    with progress.reporting_to(received.append), caplog.at_level(logging.INFO, logger="sttune"):
        quiet.write("warning: again\n" + line + "\n")
    assert len(received) == 2 and [r.getMessage() for r in caplog.records] == ["3 rows dropped"]


def test_the_executed_notebook_keeps_its_output_but_not_the_progress_lines(tmp_path):
    cell = nbformat.v4.new_code_cell("summary = training.train(run, config)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="device cpu\n" + training(1).to_line() + "\nbatch: 16\n"),
        nbformat.v4.new_output("stream", name="stdout", text=training(2).to_line() + "\n"),
        nbformat.v4.new_output("display_data", data={"text/plain": "a progress table"}),
    ]
    untouched = nbformat.v4.new_code_cell("print('done')")
    untouched.outputs = [nbformat.v4.new_output("stream", name="stdout", text="done\n")]
    path = tmp_path / "03_training.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 03"), cell, untouched]), path)
    drop_progress_lines(path)
    cleaned = nbformat.read(path, as_version=4)
    assert [o.get("text") for o in cleaned.cells[1].outputs] == ["device cpu\nbatch: 16\n", None]
    assert cleaned.cells[1].outputs[1]["data"]["text/plain"] == "a progress table"
    assert cleaned.cells[2].outputs[0]["text"] == "done\n"
    before = path.stat().st_mtime_ns
    drop_progress_lines(path)  # nothing left to drop: not rewritten
    assert path.stat().st_mtime_ns == before
