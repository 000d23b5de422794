"""Visualization stage: how the fine-tuned embedding space differs from the base model's.

Everything here reads what stage 04 saved (``eval/embeddings.npz``, ``eval/similarities.npz``), so
nothing is encoded again.

    stored.py         reading stage 04's arrays (similarities, each model's embeddings, groups)
    colours.py        group order and palettes
    maps.py           UMAP maps of the same seeded subsample for every model, side by side
    interactive.py    the same maps as hoverable inline SVG
    distributions.py  similarity distributions of positive and negative pairs (or buckets)
    clusters.py       silhouette by group
    projector.py      a TensorBoard projector export
"""

from .clusters import silhouette_by_group
from .colours import group_order, palette
from .distributions import separation_auc, similarity_distributions
from .interactive import interactive_html
from .maps import colour_groups, embedding_maps, plot_side_by_side, subsample, umap_project
from .projector import export_projector
from .stored import load_similarities, model_embeddings

__all__ = ["silhouette_by_group", "group_order", "palette", "separation_auc", "similarity_distributions",
           "interactive_html", "colour_groups", "embedding_maps", "plot_side_by_side", "subsample", "umap_project",
           "export_projector", "load_similarities", "model_embeddings"]
