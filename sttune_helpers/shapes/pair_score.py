"""pair_score: two sentences and a graded similarity score (normalised to 0..1), as in STS-B."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import LossChoice, TaskShape

if TYPE_CHECKING:
    import pandas as pd

_RANKING_TEMPERATURE = {"temperature": "sharpness of the pairwise ranking (loss.temperature; scale = 1/T)"}


class PairScore(TaskShape):
    # --- data ---------------------------------------------------------------------------

    symmetric_pair = True
    synthesized_rows = "labelled pairs"
    rule_label_values = {"positive": 1.0, "negative": 0.0}

    def parse_labels(self, frame: pd.DataFrame,
                     declared: list[str] | None = None) -> tuple[list[tuple[int, str, str]], pd.DataFrame]:
        """Scores must be finite numbers; any scale (it is detected, or set in data.score_range)."""
        import numpy as np
        import pandas as pd

        problems = []
        rows = frame["_row"].to_numpy()
        scores = pd.to_numeric(frame["score"].str.strip(), errors="coerce")
        for row, raw in zip(rows[scores.isna().to_numpy()], frame.loc[scores.isna(), "score"]):
            problems.append((int(row), "score", "empty score: expected a number" if not raw.strip()
                             else f"expected a number, got {raw!r}"))
        infinite = np.isinf(scores.fillna(0)).to_numpy()
        for row, raw in zip(rows[infinite], frame.loc[infinite, "score"]):
            problems.append((int(row), "score", f"expected a finite number, got {raw!r}"))
        frame["score"] = scores
        return problems, frame


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
