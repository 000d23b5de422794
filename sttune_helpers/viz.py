"""Visualization stage: how the fine-tuned embedding space differs from the base model's.

Everything here reads what stage 04 saved (``eval/embeddings.npz``, ``eval/similarities.npz``), so
nothing is encoded again: UMAP maps of the same seeded subsample for every model, the similarity
distributions of positive and negative pairs, silhouette by group, and a TensorBoard projector export.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np

from .core.io import atomic_directory, atomic_write_text
from .rundir import RunDir

SCORE_BUCKETS = 5
POSITIVE_COLOURS = {"negative": "#d62728", "positive": "#1f77b4"}


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


# --- reading stage 04's arrays ------------------------------------------------------------------


def load_similarities(run: RunDir) -> dict[str, np.ndarray] | None:
    """Stage 04's pair similarities, or None where the task has no pairs (unlabeled data)."""
    path = run.eval_dir / "similarities.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=True) as data:
        return {key: data[key] for key in data.files}


def model_embeddings(stored: dict[str, np.ndarray], chosen: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``{model name: embeddings}`` in stage 04's order, optionally only the ``chosen`` rows."""
    return {key.removeprefix("embeddings_"): (value if chosen is None else value[chosen])
            for key, value in stored.items() if key.startswith("embeddings_")}


def _text(value: Any) -> str:
    return str(np.asarray(value).item()) if value is not None else ""


def group_order(labels) -> list[str]:
    """Distinct labels in natural order, so "2-3" comes before "10-20" and "cluster 2" before "cluster 10"."""
    def key(label: str):
        parts = re.split(r"(-?\d+(?:\.\d+)?)", label)
        return [float(part) if i % 2 else part for i, part in enumerate(parts)]

    return sorted({str(label) for label in labels}, key=key)


def _is_score_range(label: str) -> bool:
    return re.fullmatch(r"-?[\d.]+(e[-+]?\d+)?--?[\d.]+(e[-+]?\d+)?", label) is not None


def palette(labels: list[str], sequential: bool) -> dict[str, str]:
    """A colour per label: a gradient for ordered groups (score buckets), distinct hues otherwise."""
    import matplotlib
    from matplotlib.colors import to_hex

    if sequential:
        cmap = matplotlib.colormaps["viridis"].resampled(max(len(labels), 2))
    else:
        cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
        if len(labels) > 20:
            cmap = matplotlib.colormaps["hsv"].resampled(len(labels) + 1)  # +1: hsv's ends are the same red
    return {label: to_hex(cmap(k)) for k, label in enumerate(labels)}


def _has_groups(stored: dict[str, np.ndarray]) -> bool:
    return "groups" in stored and any(str(g) for g in stored["groups"])


def colour_groups(stored: dict[str, np.ndarray], chosen: np.ndarray, n_clusters: int,
                  seed: int) -> tuple[np.ndarray, str]:
    """The group of each chosen sentence and the legend title: stage 04's groups, or KMeans clusters
    of the fine-tuned embeddings where the data has no labels."""
    if _has_groups(stored):
        groups = stored["groups"][chosen]
        return np.array([str(g) for g in groups], dtype=object), _text(stored.get("group_kind")) or "group"
    from sklearn.cluster import KMeans

    embeddings = model_embeddings(stored, chosen)
    points = embeddings.get("fine_tuned", list(embeddings.values())[-1]).astype(np.float64)
    # Unit length first, so that KMeans' Euclidean clusters follow cosine similarity.
    points /= np.clip(np.linalg.norm(points, axis=1, keepdims=True), 1e-12, None)
    k = max(1, min(n_clusters, len(points)))
    cluster = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(points)
    legend_title = f"KMeans cluster, no labels (k={k}, fine-tuned)"
    return np.array([f"cluster {c}" for c in cluster], dtype=object), legend_title


# --- UMAP maps ----------------------------------------------------------------------------------


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
    order = group_order(groups)
    colours = palette(order, sequential=all(_is_score_range(label) for label in order))
    projections = {name: umap_project(points, n_neighbors, min_dist, seed, n_epochs)
                   for name, points in model_embeddings(stored, chosen).items()}
    figure = plot_side_by_side(projections, groups, colours, legend_title, path)
    return {"figure": figure, "n_points": len(chosen), "n_available": len(stored["sentences"]),
            "projections": projections, "groups": groups, "chosen": chosen, "legend_title": legend_title,
            "colours": colours, "clustered": not _has_groups(stored),
            "sentences": np.array([str(s) for s in stored["sentences"][chosen]], dtype=object)}


def interactive_html(projections: dict[str, np.ndarray], sentences, groups, legend_title: str = "group",
                     colours: dict[str, str] | None = None, size: int = 420, path=None) -> str:
    """One inline SVG scatter per model, side by side; hovering a point shows its sentence and group.

    Plain HTML and SVG (no plotting library, no script), so it works in JupyterLab and in a browser
    from the saved file alike. With ``path`` the page is also written there."""
    groups = np.asarray([str(g) for g in groups], dtype=object)
    if colours is None:
        order = group_order(groups)
        colours = palette(order, sequential=all(_is_score_range(label) for label in order))
    margin = 8.0
    panels = []
    for name, points in projections.items():
        points = np.asarray(points, dtype=float)
        low, high = points.min(axis=0), points.max(axis=0)
        scale = (size - 2 * margin) / np.where(high > low, high - low, 1.0)
        x = margin + (points[:, 0] - low[0]) * scale[0]
        y = size - margin - (points[:, 1] - low[1]) * scale[1]  # SVG's y axis points down
        circles = "".join(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colours.get(group, "#888888")}" fill-opacity="0.75">'
            f"<title>{html.escape(str(sentence))}&#10;{html.escape(legend_title)}: {html.escape(group)}</title>"
            "</circle>"
            for cx, cy, sentence, group in zip(x, y, sentences, groups))
        panels.append(
            f'<figure style="margin:0"><figcaption style="text-align:center">{html.escape(name)} '
            f"(n={len(points)})</figcaption>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
            f'<rect width="{size}" height="{size}" fill="white" stroke="#cccccc"/>{circles}</svg></figure>')
    legend = "".join(
        f'<span style="margin-right:12px;white-space:nowrap"><span style="display:inline-block;width:10px;'
        f'height:10px;border-radius:5px;background:{colour}"></span> {html.escape(label)}</span>'
        for label, colour in colours.items())
    fragment = (
        '<div style="font-family:sans-serif;font-size:12px">'
        f'<div style="display:flex;flex-wrap:wrap;gap:16px">{"".join(panels)}</div>'
        f"<p><b>{html.escape(legend_title)}</b>: {legend}</p>"
        "<p>UMAP of the same points for every model; hover a point to read its sentence.</p></div>")
    if path is not None:
        atomic_write_text(Path(path), f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
                                      f"<title>UMAP maps</title></head><body>{fragment}</body></html>\n")
    return fragment


# --- similarity distributions -------------------------------------------------------------------


def separation_auc(similarity: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC of similarity for telling positive from negative pairs; None without both kinds."""
    from sklearn.metrics import roc_auc_score

    defined = positive >= 0
    if len(set(positive[defined].tolist())) < 2:
        return None
    return float(roc_auc_score(positive[defined], similarity[defined]))


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
        order = group_order(bucket)
        colours = palette(order, sequential=all(_is_score_range(label) for label in order))
    # The same bins for every model, so the panels compare directly.
    values = np.concatenate([np.asarray(similarities[f"similarity_{name}"], dtype=float) for name in names])
    edges = np.histogram_bin_edges(values[np.isfinite(values)], bins=bins)

    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False, sharex=True)
    rows = []
    for ax, name in zip(axes[0], names):
        similarity = np.asarray(similarities[f"similarity_{name}"], dtype=float)
        auc = separation_auc(similarity, positive)
        for label, colour in colours.items():
            mask = bucket == label
            if mask.any():
                ax.hist(similarity[mask], bins=edges, density=True, histtype="stepfilled", alpha=0.35,
                        color=colour, edgecolor=colour, label=f"{label} (n={int(mask.sum())})")
        ax.set_title(f"{name}: ROC AUC {auc:.3f}" if auc is not None else name)
        ax.set_xlabel("cosine similarity")
        rows.append({"model": name, "ROC AUC": auc,
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
            "auc": {row["model"]: row["ROC AUC"] for row in rows}}


# --- cluster quality ----------------------------------------------------------------------------


def silhouette_by_group(embeddings: dict[str, np.ndarray], groups) -> dict[str, Any] | None:
    """Cosine silhouette of the groups in each model's embeddings: the overall value (sklearn's
    silhouette_score, the mean over points) and a per-group table. None with fewer than 2 groups."""
    import pandas as pd
    from sklearn.metrics import silhouette_samples

    groups = np.asarray([str(g) for g in groups], dtype=object)
    order = group_order(groups)
    if not 2 <= len(order) <= len(groups) - 1:
        return None
    per_point = {name: silhouette_samples(points, groups, metric="cosine") for name, points in embeddings.items()}
    table = pd.DataFrame({"points": [int((groups == label).sum()) for label in order],
                          **{name: [float(values[groups == label].mean()) for label in order]
                             for name, values in per_point.items()}}, index=pd.Index(order, name="group"))
    return {"overall": {name: float(values.mean()) for name, values in per_point.items()}, "table": table}


# --- TensorBoard projector ----------------------------------------------------------------------


def export_projector(embeddings: dict[str, np.ndarray], sentences, groups, directory) -> Path:
    """Write each model's embeddings, with sentence and group as metadata, for TensorBoard's projector
    (``tensorboard --logdir DIRECTORY``, Projector tab). Replaces ``directory`` whole."""
    from torch.utils.tensorboard import SummaryWriter

    # Tabs and newlines would split metadata.tsv's rows and columns.
    metadata = [[re.sub(r"[\t\r\n]+", " ", str(sentence)), re.sub(r"[\t\r\n]+", " ", str(group)) or "-"]
                for sentence, group in zip(sentences, groups)]
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        writer = SummaryWriter(log_dir=str(tmp))
        try:
            for name, points in embeddings.items():
                writer.add_embedding(np.asarray(points, dtype=np.float32), metadata=metadata,
                                     metadata_header=["sentence", "group"], tag=name)
        finally:
            writer.close()
    return directory
