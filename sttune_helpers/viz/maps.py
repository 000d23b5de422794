"""UMAP maps: the same seeded subsample of test texts projected for every model and drawn side by side,
coloured by stage 04's groups or by KMeans clusters where the data has no labels."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .colours import palette_for
from .stored import has_groups, model_embeddings, stored_text


def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    """Seeded, sorted indices of at most ``max_points`` of ``n`` items."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def umap_project(embeddings: np.ndarray, n_neighbors: int, min_dist: float, seed: int,
                 n_epochs: int | None = None) -> np.ndarray:
    import umap
    from sklearn.metrics.pairwise import cosine_distances

    # Cosine distances computed once with BLAS and passed as precomputed: UMAP's own cosine path
    # JIT-compiles a per-pair metric, which costs minutes on a small CPU. The result is the same.
    # A seeded UMAP runs single-threaded, the price of maps that reproduce exactly; asking for one
    # job spares UMAP's warning that it overrode the default.
    distances = np.clip(cosine_distances(embeddings), 0.0, None)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(embeddings) - 1), min_dist=min_dist,
                        metric="precomputed", random_state=seed, n_epochs=n_epochs, n_jobs=1)
    with warnings.catch_warnings():
        # UMAP warns on every precomputed fit that inverse_transform is unavailable; the maps never use it.
        warnings.filterwarnings("ignore", message="using precomputed metric; inverse_transform will be unavailable",
                                category=UserWarning, module=r"umap\.umap_")
        return reducer.fit_transform(distances)


def colour_groups(stored: dict[str, np.ndarray], chosen: np.ndarray, n_clusters: int,
                  seed: int) -> tuple[np.ndarray, str]:
    """The group of each chosen sentence and the legend title: stage 04's groups, or KMeans clusters
    of the fine-tuned embeddings where the data has no labels."""
    if has_groups(stored):
        groups = stored["groups"][chosen]
        return np.array([str(g) for g in groups], dtype=object), stored_text(stored.get("group_kind")) or "group"
    from sklearn.cluster import KMeans

    embeddings = model_embeddings(stored, chosen)
    points = embeddings.get("fine_tuned", list(embeddings.values())[-1]).astype(np.float64)
    # Unit length first, so that KMeans' Euclidean clusters follow cosine similarity.
    points /= np.clip(np.linalg.norm(points, axis=1, keepdims=True), 1e-12, None)
    k = max(1, min(n_clusters, len(points)))
    cluster = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(points)
    legend_title = f"KMeans cluster, no labels (k={k}, fine-tuned)"
    return np.array([f"cluster {c}" for c in cluster], dtype=object), legend_title


def plot_side_by_side(projections: dict[str, np.ndarray], groups: np.ndarray, colours: dict[str, str],
                      legend_title: str, path=None):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(projections), figsize=(6 * len(projections), 5.2), squeeze=False)
    for ax, (name, points) in zip(axes[0], projections.items()):
        for label, colour in colours.items():
            mask = groups == label
            if mask.any():
                ax.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.75, color=colour, label=label)
        ax.set_title(f"{name} (n={len(points)})")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(title=legend_title, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5),
                       ncol=max(1, -(-len(colours) // 25)))
    fig.suptitle("UMAP of test-sentence embeddings (cosine), same points and settings for every model")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def embedding_maps(stored: dict[str, np.ndarray], max_points: int, n_neighbors: int, min_dist: float, seed: int,
                   path=None, n_epochs: int | None = None, n_clusters: int = 8) -> dict[str, Any]:
    """Project every model's embeddings of the same seeded subsample and draw them side by side."""
    chosen = subsample(len(stored["sentences"]), max_points, seed)
    groups, legend_title = colour_groups(stored, chosen, n_clusters, seed)
    _, colours = palette_for(groups)
    projections = {name: umap_project(points, n_neighbors, min_dist, seed, n_epochs)
                   for name, points in model_embeddings(stored, chosen).items()}
    figure = plot_side_by_side(projections, groups, colours, legend_title, path)
    return {"figure": figure, "n_points": len(chosen), "n_available": len(stored["sentences"]),
            "projections": projections, "groups": groups, "chosen": chosen, "legend_title": legend_title,
            "colours": colours, "clustered": not has_groups(stored),
            "sentences": np.array([str(s) for s in stored["sentences"][chosen]], dtype=object)}
