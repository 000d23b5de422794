"""Training curves for the notebook: the training loss, the learning rate and each validation metric
on its own axis, from training.json's log history or the TensorBoard event files, with the step
whose weights were kept (train.restore_best, eval.select_model) marked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoints import checkpoint_step

Points = list[tuple[int, float]]

# What the trainer logs beside each validation: timings and the epoch, not scores of the model.
# A classifier's decision threshold is a setting fitted on the data, not a score either.
NOT_METRICS = ("runtime", "samples_per_second", "steps_per_second", "epoch", "_threshold")


@dataclass
class Curves:
    """The series of one training run; validation metrics by name without "eval_" (validation_spearman_cosine)."""

    loss: Points = field(default_factory=list)
    learning_rate: Points = field(default_factory=list)
    validation: dict[str, Points] = field(default_factory=dict)


@dataclass
class KeptStep:
    """The step of training whose weights model/ holds, and what they are."""

    step: int
    label: str
    pure: bool  # the weights of that step themselves, not a soup or a mix with the base


def is_metric(name: str) -> bool:
    return not name.endswith(NOT_METRICS)


def primary_metric(summary: dict[str, Any]) -> str:
    return summary["metric_for_best_model"].removeprefix("eval_")


def metric_label(name: str) -> str:
    return "validation " + name.removeprefix("validation_")


def curves_from_summary(summary: dict[str, Any]) -> Curves:
    """The series in training.json's log history."""
    curves = Curves()
    for entry in summary["log_history"]:
        step = entry["step"]
        if "loss" in entry:
            curves.loss.append((step, entry["loss"]))
        if "learning_rate" in entry:
            curves.learning_rate.append((step, entry["learning_rate"]))
        for key, value in entry.items():
            if key.startswith("eval_") and is_metric(key):
                curves.validation.setdefault(key.removeprefix("eval_"), []).append((step, value))
    return curves


def tensorboard_scalars(folder) -> dict[str, Points]:
    """Every scalar series in the TensorBoard event files under ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {}
    for events in sorted(Path(folder).rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                series.setdefault(tag, {})[event.step] = event.value  # a resumed run rewrites its steps
    return {tag: sorted(points.items()) for tag, points in series.items()}


def curves_from_tensorboard(folder) -> Curves:
    """The series in the TensorBoard event files (the trainer writes eval_X as the tag eval/X)."""
    series = tensorboard_scalars(folder)
    validation = {tag.removeprefix("eval/"): points for tag, points in series.items()
                  if tag.startswith("eval/") and is_metric(tag)}
    return Curves(series.get("train/loss", []), series.get("train/learning_rate", []), validation)


def kept_step(summary: dict[str, Any]) -> KeptStep:
    """Where model/'s weights come from: train.restore_best's choice (the best checkpoint or the last
    model), or eval.select_model's candidate where it chose another (a point, a soup, a mix with the base)."""
    best = summary.get("best_checkpoint")
    kept = summary.get("kept_checkpoint") or best
    restored = checkpoint_step(kept) if kept else summary["global_step"]
    restored_name = "best checkpoint" if kept and kept == best else "last model"
    selection = summary.get("selection")
    if not selection or not selection["differs_from_fine_tuned"]:
        return KeptStep(restored, f"kept: {restored_name} (step {restored})", pure=True)
    point, alpha = selection["point"], selection["alpha"]
    metric = summary["metric_for_best_model"]
    last_validation = max((e["step"] for e in summary["log_history"] if metric in e), default=restored)
    if point == selection["fine_tuned"]:
        step, name = restored, restored_name
    elif point == "best" and best:
        step, name = checkpoint_step(best), "best checkpoint"
    elif point == "soup":
        step, name = last_validation, "soup of the last validation points, ending"
    else:  # the last validation point's weights
        step, name = last_validation, "last validation point"
    mixed = f", mixed with the base weights at {alpha:g}" if alpha < 1 else ""
    return KeptStep(step, f"kept: {name} (step {step}){mixed}", pure=point != "soup" and alpha >= 1)


def draw_curves(curves: Curves, summary: dict[str, Any], path=None, columns: int = 4):
    """Training loss, learning rate and the primary validation metric on top (the kept step and the
    best checkpoint marked); every other validation metric below, each on its own axis."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    primary = primary_metric(summary)
    others = [name for name in curves.validation if name != primary]
    rows = -(-len(others) // columns)
    fig = plt.figure(figsize=(14, 3.8 + 2.4 * rows), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.8, max(2.4 * rows, 0.01)]) if rows else (fig, None)
    loss_ax, rate_ax, metric_ax = top.subplots(1, 3, width_ratios=[1, 1, 1.6])
    kept = kept_step(summary)
    best = checkpoint_step(summary["best_checkpoint"]) if summary.get("best_checkpoint") else None
    last_step = max([summary["global_step"], *(step for step, _ in curves.loss)])

    def draw(ax, points, label, colour, **style):
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, color=colour, marker="o" if len(steps) < 30 else None, **style)
        ax.set_xlabel("step")
        ax.set_xlim(0, last_step + 1)  # the whole run on every axis, also where it validated once
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        return ax.axvline(kept.step, color="black", linestyle=":", linewidth=1)

    draw(loss_ax, curves.loss, "training loss", "#2f6fde")
    draw(rate_ax, curves.learning_rate, "learning rate", "#7a7a7a")
    kept_line = draw(metric_ax, curves.validation.get(primary, []), metric_label(primary), "#e0823d", linewidth=2)
    kept_line.set_label(kept.label)
    metric_ax.set_title(f"{metric_label(primary)} (model selection)", fontweight="bold")
    values = dict(curves.validation.get(primary, []))
    if kept.pure and kept.step in values:
        metric_ax.plot([kept.step], [values[kept.step]], marker="*", markersize=16, color="black",
                       linestyle="none", label="_kept model")
    if best is not None and best != kept.step:
        metric_ax.axvline(best, color="grey", linestyle="--", label=f"best checkpoint (step {best})")
    metric_ax.legend(loc="best", fontsize=8)
    if bottom is not None:
        axes = bottom.subplots(rows, columns, squeeze=False).ravel()
        for ax, name in zip(axes, others):
            draw(ax, curves.validation[name], name.removeprefix("validation_"), "#c49a3a")
        for ax in axes[len(others):]:
            ax.set_visible(False)
        bottom.suptitle("other validation metrics", fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_curves(summary: dict[str, Any], path=None):
    """The curves from training.json's log history."""
    return draw_curves(curves_from_summary(summary), summary, path=path)


def plot_tensorboard(folder, summary: dict[str, Any], path=None):
    """The curves from the TensorBoard event files under ``folder``; ``summary`` (training.json) names
    the primary metric and the kept step."""
    return draw_curves(curves_from_tensorboard(folder), summary, path=path)
