"""Colours for groups: their natural order, and a gradient for ordered groups (score buckets) or
distinct hues otherwise."""

from __future__ import annotations

import re


def group_order(labels) -> list[str]:
    """Distinct labels in natural order, so "2-3" comes before "10-20" and "cluster 2" before "cluster 10"."""
    def key(label: str):
        parts = re.split(r"(-?\d+(?:\.\d+)?)", label)
        return [float(part) if i % 2 else part for i, part in enumerate(parts)]

    return sorted({str(label) for label in labels}, key=key)


def is_score_range(label: str) -> bool:
    """Whether a label is a score bucket such as "0-1" or "2.5-5" (so its groups are ordered)."""
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


def palette_for(labels) -> tuple[list[str], dict[str, str]]:
    """The labels in natural order, and their palette (sequential where every label is a score bucket)."""
    order = group_order(labels)
    return order, palette(order, sequential=all(is_score_range(label) for label in order))
