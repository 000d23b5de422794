"""pair_class: two sentences and one of k class labels, as in NLI (entailment, neutral, contradiction)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import SettingError
from ..core.statistics import mean_metrics
from .base import ItemScores, LossChoice, ScoringError, TaskShape, first_pair_groups

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

    # --- evaluation -------------------------------------------------------------------------

    probe_on_train = True
    item_columns = ("sentence1", "sentence2", "label")
    group_kind = "class"

    def score(self, task, encode, boot, seed: int = 0) -> ItemScores:
        """The embeddings' label accuracy through a logistic-regression probe fitted on the train
        split (the SoftmaxLoss classifier head is not part of the saved model)."""
        from sklearn.linear_model import LogisticRegression

        gold_train = task.train["label"].to_numpy(dtype=int)
        if len(set(gold_train)) < 2:
            raise ScoringError("pair_class evaluation fits a probe on the train split, which has fewer than two "
                               "classes")
        probe = LogisticRegression(max_iter=2000, random_state=seed).fit(_probe_features(encode, task.train),
                                                                         gold_train)
        gold = task.items["label"].to_numpy(dtype=int)
        probabilities = probe.predict_proba(_probe_features(encode, task.items))
        column = {c: i for i, c in enumerate(probe.classes_)}
        p_gold = np.array([probabilities[i, column[g]] if g in column else 0.0 for i, g in enumerate(gold)])
        correct = (probe.classes_[probabilities.argmax(axis=1)] == gold).astype(float)
        metrics, resampled = mean_metrics({"accuracy": correct}, boot)
        similarity = encode.cosine(list(task.items["sentence1"]), list(task.items["sentence2"]))
        return ItemScores(metrics, resampled, p_gold, 1.0 - p_gold, pair_similarity=similarity)

    def item_texts(self, task):
        frame = super().item_texts(task)
        if task.labels:
            frame["label"] = [task.labels[int(y)] if int(y) < len(task.labels) else y for y in frame["label"]]
        return frame

    def sentence_groups(self, task) -> list[str]:
        names = task.labels
        labels = [names[int(y)] if names and int(y) < len(names) else str(y) for y in task.items["label"]]
        return first_pair_groups(task.items, self.viz_sentences(task), labels)

    def pair_groups(self, task):
        names = task.labels or []
        return (np.array([names[int(y)] if int(y) < len(names) else str(y) for y in task.items["label"]],
                         dtype=object), np.full(len(task.items), -1, dtype=np.int8))


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


# --- evaluation -------------------------------------------------------------------------------


def _probe_features(encode, frame) -> np.ndarray:
    u = encode(list(frame["sentence1"]))
    v = encode(list(frame["sentence2"]))
    return np.concatenate([u, v, np.abs(u - v)], axis=1)  # SoftmaxLoss's features
