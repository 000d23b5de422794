"""triplet: an anchor, a positive and a (hard) negative text."""

from __future__ import annotations

from .base import MNRL_TUNABLE, LossChoice, TaskShape


class Triplet(TaskShape):
    # --- losses ---------------------------------------------------------------------------------

    in_batch_default = True


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
