"""Bootstrap statistics shared by every shape's scoring: correlations, percentile intervals over
resampled items, means over items, and paired comparisons of two models. Pure numpy and scipy;
imports nothing from the package."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np


def ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values, axis=-1)


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis (works on a batch of resamples)."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    return (x * y).sum(axis=-1) / np.where(denominator == 0, np.nan, denominator)


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return pearson(ranks(x), ranks(y))


@dataclass
class Bootstrap:
    """Resampled item indices shared by every model, so differences are paired."""

    indices: np.ndarray  # (samples, n)
    confidence: float

    @classmethod
    def draw(cls, n: int, samples: int, confidence: float, seed: int) -> "Bootstrap":
        rng = np.random.default_rng(seed)
        return cls(rng.integers(0, n, size=(samples, n)), confidence)

    def family_wise(self, comparisons: int) -> "Bootstrap":
        """The same resamples at the level that keeps ``comparisons`` intervals, all read against one
        reference, within this one's error rate together (Bonferroni)."""
        return replace(self, confidence=1 - (1 - self.confidence) / max(1, comparisons))

    def interval(self, values: np.ndarray) -> list[float | None]:
        values = np.asarray(values, dtype=float)
        if not np.isfinite(values).any():
            return [None, None]
        tail = (1 - self.confidence) / 2 * 100
        return [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))]


def finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def summarise(point: dict[str, float], resampled: dict[str, np.ndarray], boot: Bootstrap) -> dict[str, dict]:
    """``{metric: {"value": point estimate, "ci95": [low, high]}}`` from the points and their resamples."""
    return {name: {"value": finite(point[name]), "ci95": boot.interval(resampled[name])} for name in point}


def mean_metrics(per_item: dict[str, np.ndarray], boot: Bootstrap) -> tuple[dict, dict]:
    """Metrics that are means over items (accuracy, per-query retrieval metrics)."""
    point = {name: float(values.mean()) for name, values in per_item.items()}
    resampled = {name: values[boot.indices].mean(axis=1) for name, values in per_item.items()}
    return summarise(point, resampled, boot), resampled


def paired_comparison(a: str, b: str, metric: str, values: dict[str, dict], dists: dict[str, dict],
                      boot: Bootstrap) -> dict[str, Any]:
    differences = np.asarray(dists[a][metric], dtype=float) - np.asarray(dists[b][metric], dtype=float)
    differences = differences[np.isfinite(differences)]
    samples = len(differences)
    value_a, value_b = values[a][metric]["value"], values[b][metric]["value"]
    if samples == 0 or value_a is None or value_b is None:
        return {"a": a, "b": b, "metric": metric, "difference": None, "ci95": [None, None], "p_value": None}
    # Two-sided: how often the resampled difference falls on the other side of zero.
    below = (np.sum(differences <= 0) + 1) / (samples + 1)
    above = (np.sum(differences >= 0) + 1) / (samples + 1)
    return {
        "a": a,
        "b": b,
        "metric": metric,
        "difference": value_a - value_b,
        "ci95": boot.interval(differences),
        "p_value": float(min(1.0, 2 * min(below, above))),
    }


def mean_cosine_of_pairs(embeddings: np.ndarray) -> float:
    """Mean cosine similarity over all distinct pairs of rows (0 for fewer than two rows)."""
    unit = np.nan_to_num(np.asarray(embeddings, dtype=np.float64))
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    n = len(unit)
    if n < 2:
        return 0.0
    total = unit.sum(axis=0)
    # Sum over i != j of e_i . e_j = |sum e|^2 - sum |e_i|^2, without the n x n matrix.
    return float(total @ total - (unit * unit).sum()) / (n * (n - 1))
