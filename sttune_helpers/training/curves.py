"""Training curves for the notebook: the training loss and the validation metric from training.json,
and every scalar series from the TensorBoard event files, as data and as figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoints import checkpoint_step


def validation_curve(summary: dict[str, Any]) -> list[tuple[int, float]]:
    key = summary["metric_for_best_model"]
    return [(entry["step"], entry[key]) for entry in summary["log_history"] if key in entry]


def loss_curve(summary: dict[str, Any]) -> list[tuple[int, float]]:
    return [(entry["step"], entry["loss"]) for entry in summary["log_history"] if "loss" in entry]


def plot_curves(summary: dict[str, Any], path=None):
    """Training loss and the validation metric against the step."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps, losses = zip(*loss_curve(summary)) if loss_curve(summary) else ((), ())
    left.plot(steps, losses, color="#2f6fde")
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    curve = validation_curve(summary)
    if curve:
        eval_steps, values = zip(*curve)
        right.plot(eval_steps, values, marker="o", color="#e0823d")
    best, kept = summary.get("best_checkpoint"), summary.get("kept_checkpoint", summary.get("best_checkpoint"))
    if best:
        right.axvline(checkpoint_step(best), color="grey", linestyle="--",
                      label="best checkpoint" + (" (restored)" if kept == best else ""))
        if kept and kept != best:
            right.axvline(checkpoint_step(kept), color="black", linestyle=":", label="last model (kept)")
        right.legend(loc="lower right")
    right.set_xlabel("step")
    right.set_ylabel(summary["metric_for_best_model"].removeprefix("eval_"))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
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


def plot_tensorboard(folder, path=None):
    """Training loss, learning rate and the validation metrics, drawn from the event files."""
    import matplotlib.pyplot as plt

    series = tensorboard_scalars(folder)
    panels = [("training loss", [t for t in series if t == "train/loss"]),
              ("learning rate", [t for t in series if t == "train/learning_rate"]),
              ("validation", [t for t in series if t.startswith("eval/") and not t.endswith(("_runtime", "per_second",
                                                                                               "/epoch"))])]
    panels = [(title, tags) for title, tags in panels if tags]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.4), squeeze=False)
    for ax, (title, tags) in zip(axes[0], panels):
        for tag in tags:
            steps, values = zip(*series[tag])
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, label=tag.split("/", 1)[1])
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(tags) > 1 or title == "validation":
            ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
