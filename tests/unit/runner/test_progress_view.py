"""The terminal's view of progress: the time left, one updating line on a terminal, plain throttled
lines into a pipe."""

import io

import pytest

from sttune_helpers.core import progress
from sttune_helpers.core.progress import END, MILESTONE, STEP, ProgressEvent
from sttune_helpers.core.reporting import get_logger
from sttune_helpers.runner.progress_view import (
    ProgressView,
    describe,
    format_duration,
    remaining_seconds,
    showing_progress,
)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def training(done, elapsed, kind=STEP, since=0, detail="", total=400):
    return ProgressEvent("training", done, total, "steps", elapsed, since, kind, detail)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.4, "59s"), (60, "1m00s"), (187, "3m07s"),
                                           (3599, "59m59s"), (3600, "1h00m"), (7322, "2h02m")])
def test_durations_read_as_a_person_would_say_them(seconds, text):
    assert format_duration(seconds) == text


def test_the_time_left_is_the_work_left_at_the_rate_so_far():
    assert remaining_seconds(training(100, 50.0)) == pytest.approx(150.0)  # 2 steps/s, 300 to go
    # A resumed run: the clock started at step 300, so the rate is 20 steps in 10 s, not 320.
    assert remaining_seconds(training(320, 10.0, since=300)) == pytest.approx(40.0)
    assert remaining_seconds(training(0, 5.0)) is None  # no step yet: no rate
    assert remaining_seconds(training(300, 0.0, since=300)) is None
    assert remaining_seconds(ProgressEvent("mining", 3, None, elapsed=2.0)) is None  # no total
    assert remaining_seconds(training(400, 200.0)) == 0


def test_a_line_says_step_total_elapsed_left_and_the_latest_metric():
    line = describe(training(100, 80.0, detail="validation spearman_cosine 0.8512"))
    assert line == "training 100/400 steps (25%), 1m20s elapsed, 4m00s left; validation spearman_cosine 0.8512"
    assert describe(training(400, 320.0, kind=END)) == "training 400/400 steps (100%), 5m20s elapsed"
    assert describe(training(400, 320.0, kind=MILESTONE)) == "training 400/400 steps (100%), 5m20s elapsed"
    assert describe(ProgressEvent("model selection", 2, None, "candidates", 3.0, kind=MILESTONE,
                                  detail="best: validation 0.8")) == \
        "model selection 2 candidates, 3s elapsed; best: validation 0.8"


def test_piped_output_gets_a_step_at_most_every_interval_and_every_evaluation():
    stream, clock = io.StringIO(), FakeClock()
    view = ProgressView(stream, tty=False, interval=30, clock=clock)
    for now, done, kind in [(0, 1, STEP), (10, 2, STEP), (20, 3, MILESTONE), (45, 4, STEP), (51, 5, STEP),
                            (52, 6, END)]:
        clock.now = now
        view(training(done, float(now), kind=kind))
    lines = stream.getvalue().splitlines()
    # 2 comes 10 s after a line; 4 is 25 s after the evaluation's line at 20; 5 is 31 s after it.
    assert [line.split()[1] for line in lines] == ["1/400", "3/400", "5/400", "6/400"]
    assert "\r" not in stream.getvalue() and all(line.startswith("      training ") for line in lines)


def test_a_terminal_gets_one_line_that_updates_and_keeps_the_results(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    stream = io.StringIO()
    view = ProgressView(stream, tty=True, interval=30, clock=FakeClock())
    view(training(1, 1.0))
    view(training(2, 2.0))  # no throttling on a terminal: the line is overwritten in place
    assert stream.getvalue().count("\r\x1b[K") == 2 and "\n" not in stream.getvalue()
    view(training(4, 4.0, kind=MILESTONE, detail="validation loss 0.1000"))
    view(training(5, 5.0, detail="validation loss 0.1000"))
    written = stream.getvalue()
    assert written.count("\n") == 1  # the evaluation stays on its own line
    # Cut to the terminal's width: a wrapped line could not be overwritten.
    assert all(len(part.removeprefix("\x1b[K").rstrip("\n")) <= 59 for part in written.split("\r") if part)
    view.break_line()
    view.break_line()  # only an open line is ended
    assert stream.getvalue().endswith("\n") and stream.getvalue().count("\n") == 2


def test_a_log_record_starts_below_an_open_progress_line(capsys):
    stream = io.StringIO()
    with showing_progress(ProgressView(stream, tty=True)):
        progress.Progress("training", total=8).step(1)
        get_logger("sttune.test").info("a record")
        assert stream.getvalue().endswith("\n")
    assert "a record" in capsys.readouterr().out
