"""The UMAP maps as one inline SVG scatter per model, where hovering a point shows its sentence."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ..core.io import atomic_write_text
from .colours import palette_for


def interactive_html(projections: dict[str, np.ndarray], sentences, groups, legend_title: str = "group",
                     colours: dict[str, str] | None = None, size: int = 420, path=None) -> str:
    """One inline SVG scatter per model, side by side; hovering a point shows its sentence and group.

    Plain HTML and SVG (no plotting library, no script), so it works in JupyterLab and in a browser
    from the saved file alike. With ``path`` the page is also written there."""
    groups = np.asarray([str(g) for g in groups], dtype=object)
    if colours is None:
        _, colours = palette_for(groups)
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
