"""TaskSet: the items one model is scored on (a split or a reference part) and what their metrics need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TaskSet:
    """The items one model is scored on and what their metrics need."""

    shape: str
    name: str  # "test" or a reference part's name, e.g. "stsb-report"
    items: Any  # pandas DataFrame, one row per item (pair, triplet or query)
    validation: Any = None  # pair_binary: where thresholds are chosen
    train: Any = None  # pair_class: where the probe is fitted
    labels: list[str] | None = None  # pair_class class names
    corpus: dict[str, str] | None = None  # retrieval
    relevant: list[set[str]] | None = None  # retrieval, per query
    score_range: tuple[float, float] = (0.0, 1.0)  # pair_score's original scale, for the colour groups
    viz_texts: list[str] | None = None  # unlabeled: the user's own test texts are what stage 05 draws

    @property
    def n(self) -> int:
        return len(self.items)
