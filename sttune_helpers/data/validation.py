"""Row validation: every problem of every row (empty texts, scores that are not numbers, labels
outside the declared set), with its file, row and column; the shape checks its own label column."""

from __future__ import annotations

import pandas as pd

from .. import shapes
from .problems import Problem


def find_problems(frame: pd.DataFrame, shape: str, file: str,
                  labels: list[str] | None = None) -> tuple[list[Problem], pd.DataFrame]:
    """Problems of each row; returns them and the frame with parsed scores and labels."""
    problems: list[Problem] = []
    frame = frame.copy()
    rows = frame["_row"].to_numpy()
    task = shapes.get(shape)
    text_columns = list(task.text_columns) + [c for c in frame.columns if c.startswith("negative_")]
    for column in text_columns:
        blank = (frame[column].str.strip() == "").to_numpy()
        for row in rows[blank]:
            problems.append(Problem(file, int(row), column, "empty text (or only whitespace)"))
    problems += [Problem(file, row, column, message) for row, column, message in task.row_problems(frame)]
    found, frame = task.parse_labels(frame, labels)
    problems += [Problem(file, row, column, message) for row, column, message in found]
    return problems, frame
