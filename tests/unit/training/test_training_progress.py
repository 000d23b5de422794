"""Training's progress callback: step / total, the metric that early stopping follows at each
validation, the end; nothing from the ranks other than 0. (A real training run's events, with a
resume, are checked in test_training.py's resume test.)"""

from transformers import TrainerControl, TrainerState, TrainingArguments

from sttune_helpers.core import progress
from sttune_helpers.core.progress import END, MILESTONE, STEP
from sttune_helpers.training.progress import TrainingProgress, metric_label


def test_metric_labels_drop_the_trainers_prefixes():
    assert metric_label("eval_validation_spearman_cosine") == "validation spearman_cosine"
    assert metric_label("eval_loss") == "validation loss"


def drive(callback, state, metrics):
    """The trainer's calls for steps 1-3 with a validation after step 2."""
    args, control = TrainingArguments(output_dir="unused", report_to=[]), TrainerControl()
    callback.on_train_begin(args, state, control)
    for step in (1, 2, 3):
        state.global_step = step
        callback.on_step_end(args, state, control)
        if step == 2:
            callback.on_evaluate(args, state, control, metrics=metrics)
    callback.on_train_end(args, state, control)


def test_the_callback_reports_steps_the_followed_metric_and_the_end():
    events = []
    with progress.reporting_to(events.append):
        drive(TrainingProgress("eval_validation_ndcg@10"), TrainerState(max_steps=3),
              {"eval_validation_ndcg@10": 0.51234, "eval_validation_mrr@10": 0.9, "eval_runtime": 6.5})
    assert [(e.done, e.kind, e.detail) for e in events] == [
        (1, STEP, ""), (2, STEP, ""), (2, MILESTONE, "validation ndcg@10 0.5123"),
        (3, STEP, "validation ndcg@10 0.5123"), (3, END, "validation ndcg@10 0.5123")]
    assert {(e.task, e.total, e.unit) for e in events} == {("training", 3, "steps")}


def test_the_metric_may_be_named_without_the_trainers_prefix_and_other_ranks_stay_silent():
    events = []
    with progress.reporting_to(events.append):
        drive(TrainingProgress("loss"), TrainerState(max_steps=3), {"eval_loss": 0.25})
        drive(TrainingProgress("loss"), TrainerState(max_steps=3, is_world_process_zero=False), {"eval_loss": 0.25})
    assert [e.detail for e in events if e.kind == MILESTONE] == ["validation loss 0.2500"]
    assert len(events) == 5


def test_an_end_before_the_last_step_says_training_stopped_early():
    events = []
    with progress.reporting_to(events.append):
        drive(TrainingProgress("loss"), TrainerState(max_steps=10), {"eval_loss": 0.25})
    assert (events[-1].kind, events[-1].done, events[-1].detail) == (END, 3, "stopped early; validation loss 0.2500")
