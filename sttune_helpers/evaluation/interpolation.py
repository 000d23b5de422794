"""The forgetting guard: interpolate the base and fine-tuned weights, score each mix on the test set
and on the general reference (the mean over its parts of each part's primary metric), suggest an
alpha, and save a chosen mix as model_final/."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .. import shapes
from ..config import RunConfig
from ..core.io import atomic_directory, atomic_write_json
from ..core.progress import Progress, number
from ..core.statistics import Bootstrap
from ..rundir import RunDir
from ..scoring.models import score_model
from ..scoring.reference import PRIMARY, part_name
from ..training.weights import interpolate_models
from .evaluate import BEFORE_SELECTION, Evaluation

FINAL_MODEL_DIR = "model_final"
REFERENCE_LABEL = "reference (mean of the parts' primary metrics)"


def mean_over_parts(values: list[float | None]) -> float | None:
    """One general-ability number per model: the mean of the parts' primary metrics (None without any)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def reference_at(evaluation: Evaluation, config: RunConfig, model=None, known: str | None = None) -> float | None:
    """The mean primary metric over the reference parts of a model already scored (``known``) or of
    ``model``; None when the reference is off."""
    if evaluation.reference is None:
        return None
    values = []
    for part in evaluation.reference.parts:
        metric = PRIMARY[part.shape]
        if known:
            values.append(evaluation.reference_scores[part_name(part)][known].metrics[metric]["value"])
        else:
            boot = Bootstrap.draw(part.n, 1, config.eval.confidence, config.seed)  # points only
            values.append(score_model(part, model, boot, config.eval.batch_size, config.seed,
                                      config.eval.reference_precision).metrics[metric]["value"])
    return mean_over_parts(values)


def pure_fine_tuned(evaluation: Evaluation) -> str:
    """The model the sweep mixes with the base: the pure fine-tuned one where model/ holds a selected mix."""
    return BEFORE_SELECTION if BEFORE_SELECTION in evaluation.loaded else "fine_tuned"


def interpolation_sweep(evaluation: Evaluation, config: RunConfig, alphas: Sequence[float] | None = None,
                        base=None, tuned=None) -> list[dict[str, Any]]:
    """The primary metric on the test set and the mean primary metric over the reference parts at
    each alpha. alpha 0 and 1 reuse the base's and the fine-tuned model's scores."""
    alphas = list(config.eval.interpolation_alphas if alphas is None else alphas)
    loaded = evaluation.loaded
    base = base if base is not None else loaded.get("base")
    tuned = tuned if tuned is not None else loaded.get(pure_fine_tuned(evaluation))
    task = evaluation.task
    metric = shapes.get(task.shape).primary_metric
    boot = Bootstrap.draw(task.n, 1, config.eval.confidence, config.seed)  # points only: no intervals needed
    rows = []
    mixes = Progress("interpolation", total=len(alphas), unit="mixes")
    for alpha in alphas:
        known = {0.0: "base", 1.0: pure_fine_tuned(evaluation)}.get(float(alpha))
        if known:
            on_task = evaluation.scores[known].metrics[metric]["value"]
            on_reference = reference_at(evaluation, config, known=known)
        else:
            model = interpolate_models(base, tuned, float(alpha))
            on_task = score_model(task, model, boot, config.eval.batch_size, config.seed,
                                  config.eval.precision).metrics[metric]["value"]
            on_reference = reference_at(evaluation, config, model=model)
            del model
        rows.append({"alpha": float(alpha), "task": on_task, "reference": on_reference})
        mixes.milestone(len(rows), f"alpha {float(alpha):g}: test {metric} {number(on_task)}, "
                                  f"general reference {number(on_reference)}")
    evaluation.report["interpolation"] = rows
    return rows


def suggest_alpha(rows: list[dict[str, Any]], tolerance: float = 0.005) -> float | None:
    """The alpha that keeps the most general ability (reference) while staying within
    ``tolerance`` of the best task score; None without reference scores."""
    usable = [r for r in rows if r["task"] is not None and r["reference"] is not None]
    if not usable:
        return None
    best = max(r["task"] for r in usable)
    close = [r for r in usable if r["task"] >= best - tolerance]
    return max(close, key=lambda r: (r["reference"], r["task"]))["alpha"]


def interpolation_table(rows: list[dict[str, Any]], task_metric: str):
    import pandas as pd

    return pd.DataFrame(rows).rename(columns={"task": f"test {task_metric}", "reference": REFERENCE_LABEL})


def plot_interpolation(rows: list[dict[str, Any]], task_metric: str, path=None):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    alphas = [r["alpha"] for r in rows]
    ax.plot(alphas, [r["task"] for r in rows], marker="o", color="#2f6fde", label=f"test {task_metric}")
    if any(r["reference"] is not None for r in rows):
        ax.plot(alphas, [r["reference"] for r in rows], marker="s", color="#e0823d",
                label=REFERENCE_LABEL)
    ax.set_xlabel("alpha (0 = base weights, 1 = fine-tuned weights)")
    ax.set_ylabel("score")
    ax.legend(loc="best")
    ax.set_title("Weight interpolation: task vs general ability")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def save_final_model(run: RunDir, evaluation: Evaluation, alpha: float) -> Path:
    """Save the base/fine-tuned mix at ``alpha`` as model_final/ and record it in metrics.json."""
    model = interpolate_models(evaluation.loaded["base"], evaluation.loaded[pure_fine_tuned(evaluation)], alpha)
    target = run.root / FINAL_MODEL_DIR
    with atomic_directory(target) as tmp:
        model.save(str(tmp))
    row = next((r for r in evaluation.report.get("interpolation", []) if r["alpha"] == alpha), None)
    evaluation.report["final_model"] = {"alpha": alpha, "path": str(target), "scores": row}
    atomic_write_json(run.metrics_path, evaluation.report)
    return target
