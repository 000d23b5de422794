"""Unsupervised SimCSE: unlabeled texts become (anchor, positive) pairs with anchor == positive;
the dropout noise at training time makes the two views differ."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import pandas as pd

from .common import AUGMENTATION_COLUMN, SOURCE_ROW_COLUMN, Augmented, describe_row, make_report


def simcse_pairs(texts: Sequence[str] | pd.Series | pd.DataFrame, *, column: str = "text") -> Augmented:
    """Unsupervised SimCSE pairs: (anchor, positive) with anchor == positive, one per distinct text.

    The two views differ only by dropout at training time, so pair them with a loss such as
    MultipleNegativesRankingLoss and keep dropout on. ``texts`` is a list, a Series, or a frame with
    a ``column`` column (an ``unlabeled`` frame). Surrounding whitespace is stripped; duplicates are
    removed and counted; an empty or non-text entry is an error naming its row. The result frame
    holds only the pairs (its shape is ``retrieval``), tagged ``simcse`` with ``source_row``.
    """
    frame = texts if isinstance(texts, pd.DataFrame) else None
    if frame is not None:
        if column not in frame.columns:
            raise ValueError(f"the frame has no {column!r} column (found: {', '.join(map(str, frame.columns))})")
        values = frame[column].tolist()
    else:
        values = list(texts)
    kept: dict[str, int] = {}
    for position, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{describe_row(frame, position)}: SimCSE needs a non-empty text, got {value!r}")
        kept.setdefault(value.strip(), position)
    pairs = pd.DataFrame({
        "anchor": list(kept),
        "positive": list(kept),
        AUGMENTATION_COLUMN: "simcse",
        SOURCE_ROW_COLUMN: pd.array(list(kept.values()), dtype="Int64"),
    })
    duplicates = len(values) - len(kept)
    report = make_report("simcse", len(values), len(pairs), Counter(), {"column": column}, rows_removed=duplicates,
                     rows_out=len(pairs), removed={"duplicate text": duplicates} if duplicates else {},
                     frame_holds="the pairs only, not the input texts")
    return Augmented(pairs, report)
