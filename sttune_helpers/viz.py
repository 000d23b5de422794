"""Visualization stage: UMAP maps of the test sentences' embeddings, base vs fine-tuned."""

from __future__ import annotations

from typing import Any

import numpy as np

SCORE_BUCKETS = 5


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
    # A seeded UMAP runs single-threaded; that is the price of maps that reproduce exactly.
    distances = np.clip(cosine_distances(embeddings), 0.0, None)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(embeddings) - 1), min_dist=min_dist,
                        metric="precomputed", random_state=seed, n_epochs=n_epochs)
    return reducer.fit_transform(distances)


def score_buckets(scores: np.ndarray, original_range: tuple[float, float]) -> tuple[np.ndarray, list[str]]:
    """Bucket 0..1 scores into equal bins labelled on the data's original scale."""
    edges = np.linspace(0.0, 1.0, SCORE_BUCKETS + 1)
    bucket = np.clip(np.digitize(scores, edges[1:-1]), 0, SCORE_BUCKETS - 1)
    low, high = original_range
    labels = [f"{low + (high - low) * a:g}-{low + (high - low) * b:g}" for a, b in zip(edges[:-1], edges[1:])]
    return bucket, labels


def plot_side_by_side(projections: dict[str, np.ndarray], bucket: np.ndarray, labels: list[str],
                      legend_title: str, path=None):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis", len(labels))
    fig, axes = plt.subplots(1, len(projections), figsize=(6 * len(projections), 5.2), squeeze=False)
    for ax, (name, points) in zip(axes[0], projections.items()):
        for k, label in enumerate(labels):
            mask = bucket == k
            if mask.any():
                ax.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.75, color=cmap(k), label=label)
        ax.set_title(f"{name} (n={len(points)})")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(title=legend_title, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("UMAP of test-sentence embeddings (cosine), same settings for both models")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def embedding_maps(stored: dict[str, np.ndarray], original_range: tuple[float, float], max_points: int,
                   n_neighbors: int, min_dist: float, seed: int, path=None,
                   n_epochs: int | None = None) -> dict[str, Any]:
    """Project base and fine-tuned embeddings of the same subsample and draw them side by side."""
    chosen = subsample(len(stored["sentences"]), max_points, seed)
    names = [key.removeprefix("embeddings_") for key in stored if key.startswith("embeddings_")]
    projections = {name: umap_project(stored[f"embeddings_{name}"][chosen], n_neighbors, min_dist, seed, n_epochs)
                   for name in names}
    bucket, labels = score_buckets(stored["scores"][chosen], original_range)
    figure = plot_side_by_side(projections, bucket, labels, "pair score", path)
    return {"figure": figure, "n_points": len(chosen), "n_available": len(stored["sentences"]),
            "projections": projections}
