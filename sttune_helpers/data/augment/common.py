"""What every augmentation step shares: the :class:`Augmented` result, the tags on rows
(``augmentation``: the method of an added row, ``""`` for an input row; ``source_row``: the input
row an added row was made from), the checks of the input frame, the step report, and which text
columns a step rewrites (the shape says).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from ... import shapes

AUGMENTATION_COLUMN = "augmentation"
SOURCE_ROW_COLUMN = "source_row"


@dataclass
class Augmented:
    """What an augmentation step produced.

    ``frame``: the input rows followed by the new rows, tagged in ``augmentation`` and
    ``source_row`` (for :func:`simcse_pairs`, only the new pairs). ``report``: JSON-serialisable
    counts: ``method``, ``rows_in``, ``rows_added``, ``rows_removed``, ``rows_out``, ``skipped``
    (reason -> count), ``settings`` and method-specific details.
    """

    frame: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def added(self) -> pd.DataFrame:
        """Only the rows this step added (they come last)."""
        return self.frame.iloc[len(self.frame) - self.report["rows_added"]:]

    def summary(self) -> str:
        r = self.report
        text = f"{r['method']}: {r['rows_in']} rows in, {r['rows_added']} added"
        if r.get("rows_removed"):
            text += f", {r['rows_removed']} removed"
        if r.get("skipped"):
            text += "; skipped: " + ", ".join(f"{n} {reason}" for reason, n in r["skipped"].items())
        return text


def check_shape(shape: str) -> None:
    if shape not in shapes.REGISTRY:
        raise ValueError(f"unknown task shape {shape!r}; expected one of {', '.join(shapes.SHAPES)}")


def check_frame(frame: pd.DataFrame, shape: str) -> None:
    check_shape(shape)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    task = shapes.get(shape)
    missing = [c for c in task.columns if c not in frame.columns]
    if missing:
        raise ValueError(f"shape {shape!r} needs the columns {', '.join(task.columns)}; missing: "
                         f"{', '.join(missing)} (found: {', '.join(map(str, frame.columns))})")
    for column in task.text_columns:
        for position, value in enumerate(frame[column].tolist()):
            if not isinstance(value, str):
                raise ValueError(f"{describe_row(frame, position)}, column {column!r}: expected text, got "
                                 f"{type(value).__name__} {value!r}")


def describe_row(frame: pd.DataFrame | None, position: int) -> str:
    where = f"row {position} (0-based position in the input)"
    if frame is not None and "_row" in frame.columns:  # data.py's spreadsheet row number
        where += f", file row {frame['_row'].iloc[position]}"
    return where


def with_tags(frame: pd.DataFrame) -> pd.DataFrame:
    """The input rows, re-indexed 0..n-1, with the tag columns present."""
    tagged = frame.reset_index(drop=True).copy()
    if AUGMENTATION_COLUMN not in tagged.columns:
        tagged[AUGMENTATION_COLUMN] = ""
    else:
        tagged[AUGMENTATION_COLUMN] = tagged[AUGMENTATION_COLUMN].fillna("").astype(str)
    if SOURCE_ROW_COLUMN not in tagged.columns:
        tagged[SOURCE_ROW_COLUMN] = pd.array(range(len(tagged)), dtype="Int64")
    else:
        tagged[SOURCE_ROW_COLUMN] = tagged[SOURCE_ROW_COLUMN].astype("Int64")
    return tagged


def root_row(tagged: pd.DataFrame, position: int) -> int:
    value = tagged[SOURCE_ROW_COLUMN].iloc[position]
    return position if pd.isna(value) else int(value)


def derived_rows(tagged: pd.DataFrame, positions: list[int], changes: list[dict[str, str]],
                  method: str) -> pd.DataFrame:
    """Copies of the input rows at ``positions`` with their text columns changed and tags set."""
    rows = tagged.iloc[positions].copy()
    for column in {c for change in changes for c in change}:
        rows[column] = [change.get(column, old) for change, old in zip(changes, rows[column].tolist())]
    rows[AUGMENTATION_COLUMN] = method
    rows[SOURCE_ROW_COLUMN] = pd.array([root_row(tagged, p) for p in positions], dtype="Int64")
    return rows


def combine(tagged: pd.DataFrame, added: pd.DataFrame) -> pd.DataFrame:
    if added.empty:
        return tagged
    combined = pd.concat([tagged, added], ignore_index=True)
    combined[SOURCE_ROW_COLUMN] = combined[SOURCE_ROW_COLUMN].astype("Int64")
    return combined


def make_report(method: str, rows_in: int, rows_added: int, skipped: Counter, settings: dict, *,
            rows_removed: int = 0, rows_out: int | None = None, **details: Any) -> dict[str, Any]:
    return {
        "method": method,
        "rows_in": int(rows_in),
        "rows_added": int(rows_added),
        "rows_removed": int(rows_removed),
        "rows_out": int(rows_in + rows_added - rows_removed if rows_out is None else rows_out),
        "skipped": {reason: int(n) for reason, n in skipped.items() if n},
        "settings": settings,
        **details,
    }


def rewrite_columns(shape: str, include_positive: bool, columns: Sequence[str] | None) -> tuple[str, ...]:
    """The text columns a rewriting step changes: ``columns`` if given (never one the shape
    protects), else the shape's rewrite columns, with its positive too under ``include_positive``."""
    task = shapes.get(shape)
    if columns is not None:
        columns = tuple(columns)
        unknown = [c for c in columns if c not in task.text_columns]
        if unknown:
            raise ValueError(f"columns {unknown} are not text columns of shape {shape!r} "
                             f"({', '.join(task.text_columns)})")
        if any(c in task.never_rewritten for c in columns):
            raise ValueError("a triplet's negative is never rewritten: a changed negative could come to mean "
                             "the anchor; leave 'negative' out of columns")
        return columns
    if include_positive and task.positive_column is not None:
        return task.rewrite_columns + (task.positive_column,)
    return task.rewrite_columns



def match_case(original: str, replacement: str) -> str:
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement

