"""The training curves (training_curves.png): each validation metric on its own labelled axis, the
trainer's timings left out, and the step whose weights were kept marked."""

import matplotlib
import pytest

from sttune_helpers.training import curves
from sttune_helpers.training.curves import kept_step, plot_curves

matplotlib.use("Agg")

SPEARMAN = {4: 0.71, 8: 0.86, 12: 0.84}
PEARSON = {4: 0.69, 8: 0.83, 12: 0.85}
RUNTIME = 6.5  # seconds per validation: on the metric's axis, it flattened the metric's curve


def log_history():
    history = [{"loss": 3.0 - 0.2 * step, "learning_rate": 2e-5, "epoch": step / 12, "step": step}
               for step in range(1, 13)]
    for step in SPEARMAN:
        history.append({"eval_validation_spearman_cosine": SPEARMAN[step],
                        "eval_validation_pearson_cosine": PEARSON[step], "eval_runtime": RUNTIME + step / 100,
                        "eval_samples_per_second": 120.0, "eval_steps_per_second": 4.0, "epoch": step / 12,
                        "step": step})
    history.append({"train_runtime": 80.0, "train_samples_per_second": 19.0, "train_loss": 2.1, "step": 12})
    return history


def summary(kept="checkpoint-12", selection=None):
    return {"log_history": log_history(), "metric_for_best_model": "eval_validation_spearman_cosine",
            "global_step": 12, "best_checkpoint": "run/checkpoints/checkpoint-8",
            "kept_checkpoint": f"run/checkpoints/{kept}", "selection": selection}


def axis_labelled(fig, label):
    found = [ax for ax in fig.axes if ax.get_ylabel() == label]
    assert len(found) == 1, [ax.get_ylabel() for ax in fig.axes]
    return found[0]


def test_each_validation_metric_has_its_own_axis_and_timings_are_left_out(tmp_path):
    fig = plot_curves(summary(), path=tmp_path / "training_curves.png")
    assert (tmp_path / "training_curves.png").stat().st_size > 10_000
    labels = {ax.get_ylabel() for ax in fig.axes if ax.get_visible()}
    assert labels == {"training loss", "learning rate", "validation spearman_cosine", "pearson_cosine"}

    primary = axis_labelled(fig, "validation spearman_cosine")
    curve = next(line for line in primary.lines if len(line.get_xdata()) == len(SPEARMAN))
    assert dict(zip(curve.get_xdata(), curve.get_ydata())) == SPEARMAN
    # Nothing near the runtime on any axis: every plotted value is a loss, a rate or a metric.
    plotted = [y for ax in fig.axes for line in ax.lines for y in line.get_ydata() if len(line.get_xdata()) > 0]
    assert not [y for y in plotted if RUNTIME <= y < RUNTIME + 1]
    assert primary.get_ylim()[1] < 1  # the axis spans the metric, not a timing beside it


def test_the_kept_step_and_the_best_checkpoint_are_marked():
    fig = plot_curves(summary(kept="checkpoint-12"))
    primary = axis_labelled(fig, "validation spearman_cosine")
    marks = {line.get_label(): line.get_xdata()[0] for line in primary.lines if line.get_linestyle() in (":", "--")}
    assert marks == {"kept: last model (step 12)": 12, "best checkpoint (step 8)": 8}
    (star,) = [line for line in primary.lines if line.get_marker() == "*"]
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([12], [SPEARMAN[12]])
    legend = [text.get_text() for text in primary.get_legend().get_texts()]
    assert legend == ["kept: last model (step 12)", "best checkpoint (step 8)"]
    # The kept step is marked on every other axis too.
    assert all(any(list(line.get_xdata()) == [12, 12] for line in ax.lines) for ax in fig.axes if ax.get_visible())

    restored = plot_curves(summary(kept="checkpoint-8"))
    marks = [line.get_label() for line in axis_labelled(restored, "validation spearman_cosine").lines
             if line.get_linestyle() in (":", "--")]
    assert marks == ["kept: best checkpoint (step 8)"]  # one line where the kept step is the best


def selection(point, alpha, fine_tuned="last"):
    return {"point": point, "alpha": alpha, "fine_tuned": fine_tuned,
            "differs_from_fine_tuned": (point, alpha) != (fine_tuned, 1.0)}


@pytest.mark.parametrize("chosen, step, label, pure", [
    (None, 12, "kept: last model (step 12)", True),
    (selection("last", 1.0), 12, "kept: last model (step 12)", True),
    (selection("best", 1.0), 8, "kept: best checkpoint (step 8)", True),
    (selection("last", 0.5), 12, "kept: last model (step 12), mixed with the base weights at 0.5", False),
    (selection("soup", 1.0), 12, "kept: soup of the last validation points, ending (step 12)", False),
])
def test_the_kept_step_follows_model_selection(chosen, step, label, pure):
    kept = kept_step(summary(kept="checkpoint-12", selection=chosen))
    assert (kept.step, kept.label, kept.pure) == (step, label, pure)
    # No star on the curve where model/ holds other weights than that step's (a soup, a mix).
    stars = [line for ax in plot_curves(summary(selection=chosen)).axes for line in ax.lines
             if line.get_marker() == "*"]
    assert len(stars) == (1 if pure else 0)


def test_tensorboard_tags_are_read_without_the_timings(monkeypatch):
    # The trainer writes eval_runtime as eval/runtime: a suffix test on "_runtime" let it through.
    tags = {"train/loss": [(1, 2.0)], "train/learning_rate": [(1, 1e-5)], "train/epoch": [(1, 0.1)],
            "eval/validation_spearman_cosine": [(1, 0.8)], "eval/runtime": [(1, 6.5)],
            "eval/samples_per_second": [(1, 9.0)], "eval/steps_per_second": [(1, 1.0)],
            "eval/validation_cosine_f1_threshold": [(1, 0.7)]}
    monkeypatch.setattr(curves, "tensorboard_scalars", lambda folder: tags)
    read = curves.curves_from_tensorboard("unused")
    assert read.validation == {"validation_spearman_cosine": [(1, 0.8)]}
    assert (read.loss, read.learning_rate) == ([(1, 2.0)], [(1, 1e-5)])
