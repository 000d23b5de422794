"""pair_binary: two sentences and a 0/1 label (paraphrase or duplicate detection), as in MRPC."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import MNRL_TUNABLE, LossChoice, TaskShape

if TYPE_CHECKING:
    import pandas as pd

_MARGIN = {"margin": "cosine distance beyond which a negative costs nothing"}
# How 0/1 labels may be written; the values are what they mean.
BINARY_LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


class PairBinary(TaskShape):
    # --- data ---------------------------------------------------------------------------

    symmetric_pair = True
    label_names = ("0", "1")
    synthesized_rows = "labelled pairs"
    rule_label_values = {"positive": 1, "negative": 0}
    mining_columns = ("sentence1", "sentence2")  # the label-1 rows; sentence1 is the anchor
    stated_negative_columns = ("sentence1", "sentence2")  # the label-0 rows
    no_positives_hint = " (no rows with label 1)"

    def parse_labels(self, frame: pd.DataFrame,
                     declared: list[str] | None = None) -> tuple[list[tuple[int, str, str]], pd.DataFrame]:
        """Labels must be 0 or 1 (also written 0.0, 1.0, false, true)."""
        rows = frame["_row"].to_numpy()
        parsed = frame["label"].str.strip().str.lower().map(BINARY_LABELS)
        problems = [(int(row), "label", f"label {raw!r} is outside the declared set {{0, 1}}")
                    for row, raw in zip(rows[parsed.isna().to_numpy()], frame.loc[parsed.isna(), "label"])]
        frame["label"] = parsed
        return problems, frame

    def mining_rows(self, frame: pd.DataFrame, positive: bool) -> pd.DataFrame:
        import pandas as pd

        try:
            labels = pd.to_numeric(frame["label"], errors="raise")
        except (TypeError, ValueError) as error:
            raise ValueError(f"pair_binary column 'label' must hold 0/1 values: {error}") from None
        return frame[labels == (1 if positive else 0)]


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
