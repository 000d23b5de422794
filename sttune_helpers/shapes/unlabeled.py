"""unlabeled: plain texts for domain adaptation (SimCSE, TSDAE); measured on the reference set."""

from __future__ import annotations

from .base import MNRL_TUNABLE, ItemScores, LossChoice, TaskShape
from .pair_score import score_pairs


class Unlabeled(TaskShape):
    # --- data ---------------------------------------------------------------------------

    simcse_shape = "retrieval"  # (text, text) pairs: an anchor and its positive

    # --- evaluation -------------------------------------------------------------------------

    # The test items are the reference set's scored pairs; the user's own test texts are drawn.
    measured_on_reference = True
    gold = "score"
    shared_text_is_leak = True
    item_columns = ("sentence1", "sentence2", "score")

    def score(self, task, encode, boot, seed: int = 0) -> ItemScores:
        return score_pairs(task.items, encode, boot)

    def viz_sentences(self, task) -> list[str]:
        return task.viz_texts

    def pair_groups(self, task):
        return None  # no pairs of the user's own: the reference pairs are reported in metrics.json


UNLABELED = Unlabeled(
    name="unlabeled",
    columns=("text",),
    group_columns=("text",),
    losses=(
        LossChoice("MultipleNegativesRankingLoss",
                   "SimCSE: each sentence is its own positive under two dropout masks, the rest of the batch its "
                   "negatives; adapts the model to the domain's vocabulary without labels.", tunable=MNRL_TUNABLE),
        LossChoice("DenoisingAutoEncoderLoss",
                   "TSDAE: encode a sentence with 60% of its words deleted and decode the original from the "
                   "embedding alone; stronger than SimCSE for domain adaptation, but slower (a decoder is trained)."),
    ),
    # No test labels: measured like pair_score on the reference set.
    metrics=("spearman_cosine", "pearson_cosine"),
    validation_metric="loss",
    item_score_meaning="cosine",
    item_error_meaning="|cosine - gold score (0..1)|",
)
