"""Cluster quality: how well each model's embeddings separate the groups (cosine silhouette)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .colours import group_order


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
