"""TaskSet: the items one model is scored on (a split or a reference part) and what their metrics need;
sub_corpus, a retrieval corpus cut to a size."""

from __future__ import annotations

import random
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
    # The prompt the texts are encoded with: None, the model's default (a run's train.task_prompt, where
    # it has one); "" none at all, as the general reference's parts are: the model's general use.
    prompt: str | None = None

    @property
    def n(self) -> int:
        return len(self.items)


def sub_corpus(corpus: dict[str, str], relevant: dict[str, set[str]], size: int | None,
               seed: int = 0) -> dict[str, str]:
    """``corpus`` cut to ``size`` documents (NanoBEIR-style): every document relevant to a query in
    ``relevant``, plus distractors drawn at random with ``seed`` up to ``size``; the same documents
    on every call, in the corpus's order. The whole corpus where ``size`` is None or not smaller;
    more than ``size`` where the relevant documents alone are more."""
    if size is None or len(corpus) <= size:
        return corpus
    needed = {d for wanted in relevant.values() for d in wanted if d in corpus}
    others = sorted(d for d in corpus if d not in needed)
    keep = needed | set(random.Random(seed).sample(others, max(0, min(len(others), size - len(needed)))))
    return {d: text for d, text in corpus.items() if d in keep}
