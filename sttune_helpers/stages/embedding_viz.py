"""Stage 5 (notebook 05): how fine-tuning changed the embedding space, drawn from what stage 04 saved
(nothing is encoded again): UMAP maps, an interactive map, similarity distributions, cluster quality
and the TensorBoard projector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import viz
from ..config import RunConfig
from ..evaluation import load_embeddings
from ..rundir import RunDir, open_run

NAME = "embedding_viz"


def start(run_dir: str | Path, preset: str | None = "default", config_path: str | Path | None = None,
          overrides: dict[str, Any] | list[str] | None = None) -> tuple[RunDir, RunConfig]:
    return open_run(run_dir, NAME, preset=preset, config_path=config_path, overrides=overrides)


def stored_embeddings(run: RunDir) -> dict[str, np.ndarray]:
    """The sentences, groups and embeddings of every model that stage 04 saved."""
    run.viz_dir.mkdir(exist_ok=True)
    return load_embeddings(run)


def maps(run: RunDir, config: RunConfig, stored: dict[str, np.ndarray]) -> dict[str, Any]:
    """Cosine UMAP of each model's embeddings of the same (seeded subsample of) sentences."""
    settings = config.viz
    return viz.embedding_maps(stored, max_points=settings.max_points, n_neighbors=settings.n_neighbors,
                              min_dist=settings.min_dist, seed=config.seed, n_epochs=settings.n_epochs,
                              n_clusters=settings.n_clusters, path=run.viz_dir / "umap_base_vs_fine_tuned.png")


def interactive_map(run: RunDir, drawn: dict[str, Any]) -> str:
    """The same projections as a page where hovering a point shows its sentence."""
    return viz.interactive_html(drawn["projections"], drawn["sentences"], drawn["groups"], drawn["legend_title"],
                                colours=drawn["colours"], path=run.viz_dir / "umap_interactive.html")


def distributions(run: RunDir) -> dict[str, Any] | None:
    """Each model's cosine over positive and negative test pairs, with the ROC AUC; None without pairs."""
    similarities = viz.load_similarities(run)
    if similarities is None:
        return None
    return viz.similarity_distributions(similarities, path=run.viz_dir / "similarity_distributions.png")


def silhouettes(stored: dict[str, np.ndarray], drawn: dict[str, Any]) -> dict[str, Any] | None:
    """Cosine silhouette of the label groups among the drawn points; None without labels or groups."""
    if drawn["clustered"]:
        return None
    return viz.silhouette_by_group(viz.model_embeddings(stored, drawn["chosen"]), drawn["groups"])


def projector(run: RunDir, stored: dict[str, np.ndarray], drawn: dict[str, Any]) -> Path:
    """The drawn points of every model, with sentence and group, for TensorBoard's projector."""
    return viz.export_projector(viz.model_embeddings(stored, drawn["chosen"]), drawn["sentences"], drawn["groups"],
                                run.viz_dir / "projector")


def outcome(drawn: dict[str, Any], distribution: dict[str, Any] | None,
            silhouette: dict[str, Any] | None) -> dict[str, Any]:
    return {"points": drawn["n_points"], "available": drawn["n_available"], "colour": drawn["legend_title"],
            "roc_auc": distribution["auc"] if distribution else None,
            "silhouette": silhouette["overall"] if silhouette else None}


def complete(run: RunDir, drawn: dict[str, Any], distribution: dict[str, Any] | None,
             silhouette: dict[str, Any] | None) -> float:
    return run.complete_stage(NAME, **outcome(drawn, distribution, silhouette))


def run(run_dir: str | Path | RunDir) -> dict[str, Any]:
    """The whole stage on the run's config.yaml; returns what the manifest records."""
    run, config = start(run_dir.root if isinstance(run_dir, RunDir) else run_dir)
    with run.stage(NAME) as recorded:
        stored = stored_embeddings(run)
        drawn = maps(run, config, stored)
        interactive_map(run, drawn)
        distribution = distributions(run)
        silhouette = silhouettes(stored, drawn)
        projector(run, stored, drawn)
        recorded.update(outcome(drawn, distribution, silhouette))
    return dict(recorded)
