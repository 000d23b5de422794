"""pair_class: two sentences and one of k class labels, as in NLI (entailment, neutral, contradiction)."""

from __future__ import annotations

from ..core.errors import SettingError
from .base import LossChoice, TaskShape


class PairClass(TaskShape):
    # --- losses ---------------------------------------------------------------------------------

    def fit_loss_columns(self, dataset, loss_name: str, *, in_batch_negatives: bool,
                         labels: list[str] | None = None, seed: int = 0):
        """The labels as their indices in ``labels`` (SoftmaxLoss's class ids)."""
        if labels is None:
            raise SettingError("pair_class data needs its label set to train")
        index = {label: i for i, label in enumerate(labels)}

        def encode(row):
            label = row["label"]
            return {"label": label if isinstance(label, int) else index[str(label)]}
        return dataset.map(encode)


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
