"""pair_class: two sentences and one of k class labels, as in NLI (entailment, neutral, contradiction)."""

from __future__ import annotations

from .base import LossChoice, TaskShape


class PairClass(TaskShape):
    pass


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
