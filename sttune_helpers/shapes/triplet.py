"""triplet: an anchor, a positive and a (hard) negative text."""

from __future__ import annotations

import numpy as np

from ..core.statistics import mean_metrics
from .base import MNRL_TUNABLE, ItemScores, LossChoice, TaskShape


class Triplet(TaskShape):
    # --- data ---------------------------------------------------------------------------

    rewrite_columns = ("anchor",)
    never_rewritten = ("negative",)  # a rewritten negative could drift towards the anchor's meaning
    positive_column = "positive"
    synthesized_rows = "triplets"
    mining_columns = ("anchor", "positive")
    stated_negative_columns = ("anchor", "negative")

    def row_problems(self, frame):
        """A positive that is its anchor teaches nothing; a negative that is its positive asks the
        model to rank a text above itself."""
        found = []
        texts = {column: frame[column].str.strip().to_numpy() for column in ("anchor", "positive", "negative")}
        for position, row in enumerate(frame["_row"].to_numpy()):
            anchor, positive, negative = (texts[c][position] for c in ("anchor", "positive", "negative"))
            if positive and positive == anchor:
                found.append((int(row), "positive", "same text as the anchor, so the pair teaches nothing "
                              "(columns 'anchor' and 'positive')"))
            if negative and negative == positive:
                found.append((int(row), "negative", "same text as the positive, so the text would be ranked "
                              "above itself (columns 'positive' and 'negative')"))
        return found

    # --- losses ---------------------------------------------------------------------------------

    in_batch_default = True

    # --- evaluation -------------------------------------------------------------------------

    item_columns = ("anchor", "positive", "negative")

    def build_evaluator(self, dataset, name: str, batch_size: int = 64, tables=None):
        from sentence_transformers.sentence_transformer import evaluation

        return evaluation.TripletEvaluator(dataset["anchor"], dataset["positive"], dataset["negative"], name=name,
                                           similarity_fn_names=["cosine"], batch_size=batch_size)

    def score(self, task, encode, boot, seed: int = 0) -> ItemScores:
        items = task.items
        positive = encode.cosine(list(items["anchor"]), list(items["positive"]))
        negative = encode.cosine(list(items["anchor"]), list(items["negative"]))
        metrics, resampled = mean_metrics({"cosine_accuracy": (positive > negative).astype(float)}, boot)
        return ItemScores(metrics, resampled, positive - negative, np.clip(negative - positive, 0, None),
                          pair_similarity=np.concatenate([positive, negative]))

    def pair_groups(self, task):
        n = len(task.items)
        return (np.array(["positive"] * n + ["negative"] * n, dtype=object),
                np.array([1] * n + [0] * n, dtype=np.int8))


TRIPLET = Triplet(
    name="triplet",
    columns=("anchor", "positive", "negative"),
    group_columns=("anchor", "positive"),
    losses=(
        LossChoice("MultipleNegativesRankingLoss",
                   "Each anchor must rank its positive above its own hard negative and every other text in the "
                   "batch: many negatives per step for the price of one triplet.", tunable=MNRL_TUNABLE),
        LossChoice("TripletLoss",
                   "The anchor must be closer to the positive than to the negative by a margin; one negative per "
                   "anchor, so it learns more slowly than in-batch ranking.",
                   params={"distance_metric": "cosine", "triplet_margin": 0.5},
                   tunable={"triplet_margin": "required distance gap", "distance_metric": "cosine, euclidean or "
                            "manhattan"}),
    ),
    metrics=("cosine_accuracy",),
    validation_metric="cosine_accuracy",
    item_score_meaning="cos(anchor, positive) - cos(anchor, negative)",
    item_error_meaning="how far the negative beats the positive",
)
