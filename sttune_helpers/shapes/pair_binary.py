"""pair_binary: two sentences and a 0/1 label (paraphrase or duplicate detection), as in MRPC."""

from __future__ import annotations

from .base import MNRL_TUNABLE, LossChoice, TaskShape

_MARGIN = {"margin": "cosine distance beyond which a negative costs nothing"}


class PairBinary(TaskShape):
    # --- losses ---------------------------------------------------------------------------------

    def fit_loss_columns(self, dataset, loss_name: str, *, in_batch_negatives: bool,
                         labels: list[str] | None = None, seed: int = 0):
        """An in-batch-negative loss trains on the positive pairs alone, without the label."""
        if in_batch_negatives:
            return dataset.filter(lambda row: int(row["label"]) == 1).remove_columns("label")
        return dataset


PAIR_BINARY = PairBinary(
    name="pair_binary",
    columns=("sentence1", "sentence2", "label"),
    group_columns=("sentence1", "sentence2"),
    losses=(
        LossChoice("OnlineContrastiveLoss",
                   "Contrastive loss on the hard cases only (positives farther apart than the closest negative, "
                   "negatives closer than the farthest positive); usually the best choice for duplicate detection.",
                   params={"margin": 0.5}, tunable=_MARGIN),
        LossChoice("ContrastiveLoss",
                   "Pulls every positive pair together and pushes negatives beyond a margin; simple and stable, "
                   "but easy pairs dilute the gradient.",
                   params={"margin": 0.5}, tunable=_MARGIN),
        LossChoice("MultipleNegativesRankingLoss",
                   "Trains on the positive pairs only, with every other text in the batch as a negative; the best "
                   "when positives are plentiful and the labelled negatives are few or easy.", tunable=MNRL_TUNABLE),
    ),
    metrics=("cosine_ap", "cosine_f1", "cosine_accuracy"),
    validation_metric="cosine_ap",
    item_score_meaning="cosine",
    item_error_meaning="distance on the wrong side of the validation F1 threshold",
)
