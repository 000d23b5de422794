"""pair_score: two sentences and a graded similarity score (normalised to 0..1), as in STS-B."""

from __future__ import annotations

from .base import LossChoice, TaskShape

_RANKING_TEMPERATURE = {"temperature": "sharpness of the pairwise ranking (loss.temperature; scale = 1/T)"}


class PairScore(TaskShape):
    pass


PAIR_SCORE = PairScore(
    name="pair_score",
    columns=("sentence1", "sentence2", "score"),
    group_columns=("sentence1", "sentence2"),
    losses=(
        LossChoice("CoSENTLoss",
                   "Optimises the ranking of all pairs in a batch by their gold scores, which is what Spearman "
                   "correlation measures; it usually beats cosine regression on STS-style data for the same budget.",
                   tunable=_RANKING_TEMPERATURE),
        LossChoice("CosineSimilarityLoss",
                   "Regresses each pair's cosine similarity onto its gold score (MSE); the classic, robust STS "
                   "recipe, but it spends effort on absolute values that a ranking metric ignores."),
        LossChoice("AnglELoss",
                   "CoSENT on angle differences, which keeps gradients alive where cosines saturate near 1; worth "
                   "a try when many pairs are near-paraphrases.",
                   tunable=_RANKING_TEMPERATURE),
    ),
    metrics=("spearman_cosine", "pearson_cosine"),
    validation_metric="spearman_cosine",
    item_score_meaning="cosine",
    item_error_meaning="|cosine - gold score (0..1)|",
)
