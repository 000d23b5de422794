"""The plot of `sttune compare`: each run's primary test metric, base and fine-tuned side by side,
with their intervals."""

from __future__ import annotations

from pathlib import Path

from .runs import RunSummary

BASE_COLOUR, FINE_TUNED_COLOUR = "#9aa5b1", "#2f6fde"  # as the evaluation notebook's comparison plot
BAR_WIDTH = 0.38


def plot_runs(runs: list[RunSummary], labels: list[str], path: Path | None = None):
    """Grouped bars per run (base, fine-tuned) of its primary metric with the 95% intervals; each
    value is written above its interval. Runs without test metrics keep an empty slot. Saved to
    ``path`` when given; returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.5, 1.9 * len(runs) + 1.5), 4.2))
    tops, bottoms = [], []
    for offset, colour, name, value_of, interval_of in (
            (-BAR_WIDTH / 2, BASE_COLOUR, "base", lambda r: r.base_value, lambda r: r.base_ci95),
            (BAR_WIDTH / 2, FINE_TUNED_COLOUR, "fine-tuned", lambda r: r.value, lambda r: r.ci95)):
        xs, values, below, above = [], [], [], []
        for x, run in enumerate(runs):
            value = value_of(run)
            if value is None:
                continue
            low, high = interval_of(run) or (None, None)
            xs.append(x + offset)
            values.append(value)
            below.append(value - low if low is not None else 0.0)
            above.append(high - value if high is not None else 0.0)
        ax.bar(xs, values, BAR_WIDTH, yerr=[below, above], capsize=5, color=colour, label=name)
        bottoms += [value - down for value, down in zip(values, below)]
        for x, value, up in zip(xs, values, above):
            ax.annotate(f"{value:.3f}", (x, value + up), ha="center", va="bottom", xytext=(0, 3),
                        textcoords="offset points", fontsize=8)
            tops.append(value + up)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([f"{_wrapped(label)}\n{run.metric or 'no test metrics'}"
                        + ("" if run.metrics_current else " (stale)") for label, run in zip(labels, runs)], fontsize=8)
    metrics = sorted({run.metric for run in runs if run.metric})
    ax.set_ylabel(metrics[0] if len(metrics) == 1 else "primary test metric")
    ax.set_ylim(min([0.0, *bottoms]) * 1.1, max([1.0, *tops]) * 1.1)  # room for the labels above the intervals
    ax.set_title("primary test metric per run (95% CI)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # beside the bars, never over them
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _wrapped(label: str, width: int = 20) -> str:
    """A long label (parents/name) over several lines, broken after its slashes."""
    if len(label) <= width:
        return label
    lines = [""]
    for piece in label.replace("/", "/\n").split("\n"):
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(lines)
