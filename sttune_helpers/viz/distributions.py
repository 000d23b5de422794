"""Similarity distributions: per model, histograms of the cosine of test pairs, positive vs
negative (with the ROC AUC of telling them apart) or by bucket."""

from __future__ import annotations

from typing import Any

import numpy as np

from .colours import palette_for

POSITIVE_COLOURS = {"negative": "#d62728", "positive": "#1f77b4"}


def separation_auc(similarity: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC of similarity for telling positive from negative pairs; None without both kinds."""
    from sklearn.metrics import roc_auc_score

    defined = positive >= 0
    if len(set(positive[defined].tolist())) < 2:
        return None
    return float(roc_auc_score(positive[defined], similarity[defined]))


def auc_missing_reason(positive: np.ndarray) -> str | None:
    """Why the pairs have no ROC AUC (None where they have one), short enough for a table cell: a score
    or class task labels no pair positive or negative, and a test split may hold one kind only."""
    kinds = set(np.asarray(positive)[np.asarray(positive) >= 0].tolist())
    if not kinds:
        return "no positive/negative pair labels"
    if len(kinds) == 1:
        return f"every test pair is {'positive' if kinds == {1} else 'negative'}"
    return None


def similarity_distributions(similarities: dict[str, np.ndarray], path=None, bins: int = 40) -> dict[str, Any]:
    """Per model, histograms of cosine similarity: positive vs negative pairs (ROC AUC in the title)
    or, where pairs are not positive/negative, one per bucket. Returns the figure and a table."""
    import matplotlib.pyplot as plt
    import pandas as pd

    bucket = np.array([str(b) for b in similarities["bucket"]], dtype=object)
    positive = np.asarray(similarities["positive"]).astype(int)
    names = [key.removeprefix("similarity_") for key in similarities if key.startswith("similarity_")]
    binary = bool((positive >= 0).all()) and len(set(positive.tolist())) == 2
    if binary:
        bucket = np.where(positive == 1, "positive", "negative").astype(object)
        colours = POSITIVE_COLOURS
    else:
        _, colours = palette_for(bucket)
    # The same bins for every model, so the panels compare directly.
    values = np.concatenate([np.asarray(similarities[f"similarity_{name}"], dtype=float) for name in names])
    edges = np.histogram_bin_edges(values[np.isfinite(values)], bins=bins)

    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False, sharex=True)
    rows, auc_by_model = [], {}
    for ax, name in zip(axes[0], names):
        similarity = np.asarray(similarities[f"similarity_{name}"], dtype=float)
        auc = auc_by_model[name] = separation_auc(similarity, positive)
        for label, colour in colours.items():
            mask = bucket == label
            if mask.any():
                ax.hist(similarity[mask], bins=edges, density=True, histtype="stepfilled", alpha=0.35,
                        color=colour, edgecolor=colour, label=f"{label} (n={int(mask.sum())})")
        ax.set_title(f"{name}: ROC AUC {auc:.3f}" if auc is not None else name)
        ax.set_xlabel("cosine similarity")
        rows.append({"model": name, "ROC AUC": auc if auc is not None else f"n/a: {auc_missing_reason(positive)}",
                     **{f"mean similarity, {label}": float(similarity[bucket == label].mean())
                        for label in colours if (bucket == label).any()}})
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(title="pairs" if binary else "bucket", loc="center left", bbox_to_anchor=(1.0, 0.5),
                       ncol=max(1, -(-len(colours) // 25)))
    fig.suptitle("Cosine similarity of test pairs" + (", positive vs negative" if binary else ", by bucket"))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return {"figure": fig, "table": pd.DataFrame(rows).set_index("model"), "binary": binary,
            "auc": {row["model"]: auc_by_model[row["model"]] for row in rows}}
