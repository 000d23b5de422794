"""Error analysis: every test item with each model's score and error (what they mean is the shape's
item_score_meaning and item_error_meaning), and the items fine-tuning helped and hurt most."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import shapes
from ..core.tables import wrapped_text_table
from ..scoring.models import ModelScores
from ..scoring.tasks import TaskSet


def item_texts(task: TaskSet):
    """The columns that identify each test item in the error tables."""
    return shapes.get(task.shape).item_texts(task)


def error_table(task: TaskSet, scores: dict[str, ModelScores], a: str = "fine_tuned", b: str = "base"):
    """Every test item with each model's score and error and the change in error from b to a
    (negative: a is better on that item), sorted by the change."""
    frame = item_texts(task).reset_index(drop=True)
    frame.insert(0, "item", np.arange(task.n))
    for name in (b, a):
        frame[f"{name}_score"] = scores[name].item_score
        frame[f"{name}_error"] = scores[name].item_error
    frame["error_change"] = frame[f"{a}_error"] - frame[f"{b}_error"]
    return frame.sort_values("error_change", kind="stable").reset_index(drop=True)


def error_analysis(table, rows: int = 10) -> dict[str, Any]:
    """The items the fine-tuning helped most, hurt most, and the worst remaining errors."""
    error = [c for c in table.columns if c.endswith("_error")][-1]
    return {"improved": table.head(rows).reset_index(drop=True),
            "worsened": table.sort_values("error_change", ascending=False, kind="stable").head(rows)
                             .reset_index(drop=True),
            "worst": table.sort_values(error, ascending=False, kind="stable").head(rows).reset_index(drop=True)}


def error_rows_table(rows):
    """Rows of ``error_analysis`` as a styled table (a pandas Styler; its DataFrame is ``.data``): each
    item's texts in full, wrapped. The text columns are those of strings, but for a class label."""
    import pandas as pd

    texts = [column for column in rows.columns
             if column != "label" and pd.api.types.is_string_dtype(rows[column])]
    return wrapped_text_table(rows, texts)
