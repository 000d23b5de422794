"""The task-vs-general plot of model selection: each candidate's validation metric against its
general ability (the mean of the reference parts, selection half), the base model's general ability
and the forgetting budget, with the chosen model marked."""

from __future__ import annotations

from typing import Any


def general_ability(reference: dict[str, float]) -> float | None:
    return sum(reference.values()) / len(reference) if reference else None


def plot_selection(selection: dict[str, Any], path=None):
    """None where there is nothing to draw (no selection, or no candidate scored on the reference)."""
    import matplotlib.pyplot as plt

    if not selection:
        return None
    drawn = [c for c in selection["candidates"] if c["reference"]]
    if not drawn:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for c in drawn:
        chosen = c["name"] == selection["chosen"]
        ax.scatter(general_ability(c["reference"]), c["validation"], s=90 if chosen else 40,
                   color="#d62728" if chosen else ("#2f6fde" if c["within_noise"] else "#9aa5b1"), zorder=3)
        ax.annotate(c["name"] + (" (kept)" if chosen else ""), (general_ability(c["reference"]), c["validation"]),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)
    base = general_ability(selection["reference"]["base"])
    if base is not None:
        ax.axvline(base, color="#444444", linestyle="--", linewidth=1, label="base model")
    ax.set_xlabel("general ability: mean of " + ", ".join(selection["reference"]["parts"]))
    ax.set_ylabel(f"validation {selection['metric']}")
    budget = selection.get("max_forgetting")
    title = "Model selection (blue: within the validation noise of the best)"
    if budget is not None:
        title += f"\nbudget: no reference part more than {budget:g} below the base"
    unscored = sum(1 for c in selection["candidates"] if c["within_noise"] and not c["reference"])
    if unscored:  # the rule did not need them (eval.selection_plot_all draws them)
        title += f"\n{unscored} more within the noise, not scored on the reference (eval.selection_plot_all)"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
