"""pair_class: two sentences and one of k class labels, as in NLI (entailment, neutral, contradiction)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import LossChoice, TaskShape

if TYPE_CHECKING:
    import pandas as pd


class PairClass(TaskShape):
    # --- data ---------------------------------------------------------------------------

    symmetric_pair = True
    synthesized_rows = "labelled pairs"
    rule_label_values = None  # classes: the user names the positive and the negative class

    def parse_labels(self, frame: pd.DataFrame,
                     declared: list[str] | None = None) -> tuple[list[tuple[int, str, str]], pd.DataFrame]:
        """A label must not be empty and, when data.labels declares the set, must be in it."""
        rows = frame["_row"].to_numpy()
        frame["label"] = frame["label"].str.strip()
        blank = (frame["label"] == "").to_numpy()
        problems = [(int(row), "label", "empty label") for row in rows[blank]]
        if declared:
            outside = (~frame["label"].isin(declared) & ~blank)
            problems += [(int(row), "label", f"label {raw!r} is outside the declared set "
                          f"{{{', '.join(declared)}}} (data.labels)")
                         for row, raw in zip(rows[outside.to_numpy()], frame.loc[outside, "label"])]
        return problems, frame


PAIR_CLASS = PairClass(
    name="pair_class",
    columns=("sentence1", "sentence2", "label"),
    group_columns=("sentence1", "sentence2"),
    losses=(
        LossChoice("SoftmaxLoss",
                   "A classifier over (u, v, |u - v|) of the two embeddings, as in the original SBERT NLI training; "
                   "the labels shape the embedding space through the classifier.",
                   tunable={"concatenation_sent_multiplication": "also feed u * v to the classifier"}),
    ),
    metrics=("accuracy",),
    validation_metric="loss",  # no embedding evaluator fits: early stopping follows the validation loss
    item_score_meaning="probe probability of the gold class",
    item_error_meaning="1 - p(gold class)",
)
