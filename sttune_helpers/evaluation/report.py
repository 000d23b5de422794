"""eval/metrics.json: its schema (one for every task shape), the tables and the bar plot a notebook
shows from it, and writing it again after the interpolation sweep."""

from __future__ import annotations

from typing import Any

from .. import shapes
from ..core.io import atomic_write_json
from ..rundir import RunDir
from .evaluate import Evaluation

SCHEMA_KEYS = ("task", "primary_metric", "n_test", "models", "comparisons", "reference")

_metric_entry = {"type": "object", "required": ["value", "ci95"],
                 "properties": {"value": {"type": ["number", "null"]},
                                "ci95": {"type": "array", "items": {"type": ["number", "null"]}, "minItems": 2,
                                         "maxItems": 2}}}
_models = {"type": "object", "required": ["base", "fine_tuned"],
           "additionalProperties": {"type": "object", "required": ["path", "metrics"],
                                    "properties": {"path": {"type": "string"},
                                                   "metrics": {"type": "object",
                                                               "additionalProperties": _metric_entry}}}}
_comparisons = {"type": "array", "items": {
    "type": "object", "required": ["a", "b", "metric", "difference", "ci95", "p_value"],
    "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "metric": {"type": "string"},
                   "difference": {"type": ["number", "null"]}, "p_value": {"type": ["number", "null"]},
                   "ci95": {"type": "array", "minItems": 2, "maxItems": 2}}}}
_reference_part = {"type": "object", "required": ["name", "kind", "primary_metric", "n_test", "models", "comparisons"],
                   "properties": {"kind": {"enum": ["sts", "retrieval"]}, "models": _models,
                                  "comparisons": _comparisons}}
_excluded = {"type": "array", "items": {"type": "object", "required": ["part", "kind", "items", "reason"],
                                        "properties": {"reason": {"type": "string"}}}}
METRICS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": list(SCHEMA_KEYS),
    "properties": {
        "task": {"enum": list(shapes.SHAPES)},
        "primary_metric": {"type": "string"},
        "n_test": {"type": "integer", "minimum": 1},
        "models": _models,
        "comparisons": _comparisons,
        "reference": {"oneOf": [
            {"type": "object", "maxProperties": 0},
            {"type": "object", "required": ["half", "parts", "excluded"],
             "properties": {"half": {"enum": ["selection", "report"]},
                            "parts": {"type": "object", "additionalProperties": _reference_part},
                            "excluded": _excluded,
                            "precision": {"enum": ["fp32", "bf16"]},
                            "not_scored": {"type": "object", "additionalProperties": {"type": "string"}}}},
        ]},
    },
}


def validate_report(report: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``report`` follows METRICS_SCHEMA."""
    import jsonschema

    jsonschema.validate(report, METRICS_SCHEMA)


def _blocks(report: dict[str, Any], block: str | None) -> list[tuple[str | None, dict[str, Any]]]:
    """(part, block) pairs: the reference's parts for ``block="reference"``, else the one block."""
    if block == "reference":
        return list((report.get("reference") or {}).get("parts", {}).items())
    return [(None, report[block] if block else report)]


def metrics_table(report: dict[str, Any], block: str | None = None):
    """One row per model and metric; ``block="reference"``: per reference part too (a part column)."""
    import pandas as pd

    rows = []
    for part, source in _blocks(report, block):
        for name, entry in source.get("models", {}).items():
            for metric, result in entry["metrics"].items():
                low, high = result["ci95"]
                rows.append({**({"part": part} if part else {}), "model": name, "metric": metric,
                             "value": result["value"], "ci95_low": low, "ci95_high": high})
    return pd.DataFrame(rows)


def comparisons_table(report: dict[str, Any], block: str | None = None):
    """One row per comparison; ``block="reference"``: per reference part too (a part column)."""
    import pandas as pd

    rows = [{**({"part": part} if part else {}), **c, "ci95_low": c["ci95"][0], "ci95_high": c["ci95"][1]}
            for part, source in _blocks(report, block) for c in source.get("comparisons", [])]
    return pd.DataFrame(rows).drop(columns="ci95") if rows else pd.DataFrame(rows)


def reference_exclusions(report: dict[str, Any]):
    """What the general reference left out for this run (a whole part, items, or a model not scored on
    it) and why."""
    import pandas as pd

    reference = report.get("reference") or {}
    models = [{"part": "every part", "kind": "model", "items": name, "reason": f"not scored: {why}"}
              for name, why in reference.get("not_scored", {}).items()]
    return pd.DataFrame([*reference.get("excluded", []), *models], columns=["part", "kind", "items", "reason"])


def plot_comparison(report: dict[str, Any], path=None):
    """Bar plot of the primary metric per model with its interval; saved when ``path`` is given."""
    import matplotlib.pyplot as plt

    metric = report["primary_metric"]
    names = [n for n in report["models"] if report["models"][n]["metrics"][metric]["value"] is not None]
    values = [report["models"][n]["metrics"][metric]["value"] for n in names]
    lows = [v - (report["models"][n]["metrics"][metric]["ci95"][0] or v) for n, v in zip(names, values)]
    highs = [(report["models"][n]["metrics"][metric]["ci95"][1] or v) - v for n, v in zip(names, values)]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2.5, 3.5))
    colours = ["#9aa5b1", "#2f6fde", "#e0823d", "#3aa56b", "#a05fd0", "#c94c4c"]
    bars = ax.bar(names, values, yerr=[lows, highs], capsize=6, color=[colours[i % len(colours)]
                                                                      for i in range(len(names))])
    labels = [ax.annotate(f"{value:.4f}", (bar.get_x() + bar.get_width() / 2, value + high), ha="center",
                          va="bottom", xytext=(0, 3), textcoords="offset points")  # above the error bar's cap
              for bar, value, high in zip(bars, values, highs)]
    floor = min(v - low for v, low in zip(values, lows)) if values else 0.0
    ax.set_ylim(max(0.0, floor - 0.05), max((v + h for v, h in zip(values, highs)), default=1.0) + 0.05)
    ax.set_ylabel(metric)
    ax.set_title(f"{report['task']}: {report.get('test_set', 'test')} {metric} "
                 f"(n={report['n_test']}, {int(report['confidence'] * 100)}% CI)")
    fig.tight_layout()
    _fit_labels(ax, labels)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _fit_labels(ax, labels, pad: float = 1.03) -> None:
    """Raise the y-axis top so that every value label lies inside the axes. A label reaches a fixed
    height in pixels above its anchor (the cap), so the range it needs follows from where the anchor is."""
    renderer = ax.figure.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    low, high = ax.get_ylim()
    needed = high - low
    for label in labels:
        anchor = ax.transData.transform(label.xy)[1] - box.y0  # pixels above the axes' bottom
        reach = label.get_window_extent(renderer).y1 - box.y0 - anchor
        if 0 < reach < box.height:
            needed = max(needed, pad * anchor * (high - low) / (box.height - reach))
    ax.set_ylim(low, low + needed)


def save_report(run: RunDir, evaluation: Evaluation) -> None:
    """Write metrics.json again (after the interpolation sweep added its rows)."""
    atomic_write_json(run.metrics_path, evaluation.report)
