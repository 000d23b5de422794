"""Progress events: where they go (a view in this process, lines on standard output for the process
that reads them, or nowhere), and how often a kernel or a rank prints a step."""

import pytest

from sttune_helpers.core import progress
from sttune_helpers.core.progress import END, MILESTONE, STEP, LineWriter, Progress, ProgressEvent


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_an_event_survives_a_line_of_output_with_a_launchers_prefix():
    event = ProgressEvent("training", 3, 8, "steps", 1.5, 1, MILESTONE, "validation loss 0.1234")
    assert ProgressEvent.from_line("[default0]:" + event.to_line()) == event
    assert ProgressEvent.from_line("an ordinary line") is None
    assert ProgressEvent.from_line(progress.PREFIX + "{not json") is None


def test_events_go_to_the_view_of_this_process_else_to_standard_output_only_when_asked(monkeypatch, capsys):
    monkeypatch.delenv(progress.ENV, raising=False)
    clock = FakeClock()
    task = Progress("mining", total=4, unit="anchors", clock=clock)
    task.step(1)  # a notebook in JupyterLab: nobody asked, nothing printed
    assert capsys.readouterr().out == ""

    received = []
    with progress.reporting_to(received.append):
        assert progress.shown_here()
        clock.now = 2.0
        task.milestone(2, "half")
    assert not progress.shown_here()
    assert received == [ProgressEvent("mining", 2, 4, "anchors", 2.0, 0, MILESTONE, "half")]

    monkeypatch.setenv(progress.ENV, "0")  # a kernel of `sttune run`, a rank under torchrun
    task.end(4)
    lines = capsys.readouterr().out.splitlines()
    assert [ProgressEvent.from_line(line).kind for line in lines] == [END]


def test_relay_passes_on_events_from_another_process_and_nothing_else():
    received = []
    event = ProgressEvent("training", 1, 2, "steps", 0.5)
    with progress.reporting_to(received.append):
        assert progress.relay(event.to_line())
        assert not progress.relay("{'loss': 0.5}")
    assert received == [event]


def test_the_line_writer_prints_a_step_at_most_every_interval_and_every_other_event(capsys):
    clock = FakeClock()
    writer = LineWriter(interval=10, clock=clock)
    for now, kind, task in [(0, STEP, "training"), (4, STEP, "training"), (5, STEP, "encoding"),
                            (6, MILESTONE, "training"), (9, STEP, "training"), (16, STEP, "training"),
                            (17, END, "training")]:
        clock.now = now
        writer(ProgressEvent(task, int(now), 20, kind=kind))
    printed = [ProgressEvent.from_line(line) for line in capsys.readouterr().out.splitlines()]
    # 4 and 9 come within 10 s of the last line of their task; another task has its own clock.
    assert [(e.task, e.done, e.kind) for e in printed] == [
        ("training", 0, STEP), ("encoding", 5, STEP), ("training", 6, MILESTONE), ("training", 16, STEP),
        ("training", 17, END)]


def test_a_resumed_task_counts_its_rate_from_where_it_started():
    clock = FakeClock()
    task = Progress("training", total=10, done=6, clock=clock)
    received = []
    with progress.reporting_to(received.append):
        clock.now = 3.0
        task.step(7)
    assert (received[0].since, received[0].done, received[0].elapsed) == (6, 7, pytest.approx(3.0))
