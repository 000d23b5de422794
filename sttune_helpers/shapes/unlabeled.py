"""unlabeled: plain texts for domain adaptation (SimCSE, TSDAE); measured on the reference set."""

from __future__ import annotations

import random

from .base import MNRL_TUNABLE, ItemScores, LossChoice, TaskShape
from .pair_score import score_pairs

# TSDAE's noise: the share of words deleted from each sentence, as in the paper.
TSDAE_DELETION_RATIO = 0.6


def tsdae_noise(text: str, rng: random.Random, ratio: float = TSDAE_DELETION_RATIO) -> str:
    """Delete ``ratio`` of the words, keeping at least one, in order (TSDAE's noise)."""
    words = text.split()
    if not words:
        return text
    keep = [w for w in words if rng.random() > ratio]
    return " ".join(keep or [rng.choice(words)])


class Unlabeled(TaskShape):
    # --- data ---------------------------------------------------------------------------

    simcse_shape = "retrieval"  # (text, text) pairs: an anchor and its positive

    # --- losses ---------------------------------------------------------------------------------

    in_batch_default = True

    def loss_shape(self, train_shape: str | None) -> str:
        """Unlabeled text stays unlabeled when the data stage made SimCSE pairs of it."""
        return self.name

    def fit_loss_columns(self, dataset, loss_name: str, *, in_batch_negatives: bool,
                         labels: list[str] | None = None, seed: int = 0):
        """SimCSE: each text paired with itself (anchor, positive); TSDAE (DenoisingAutoEncoderLoss):
        a damaged copy and the original (damaged, original)."""
        from datasets import Dataset

        texts = dataset["text"] if "text" in dataset.column_names else dataset["anchor"]  # SimCSE pairs made already
        if loss_name == "DenoisingAutoEncoderLoss":
            rng = random.Random(seed)
            return Dataset.from_dict({"damaged": [tsdae_noise(t, rng) for t in texts], "original": texts})
        return Dataset.from_dict({"anchor": texts, "positive": texts})

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
