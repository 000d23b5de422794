"""Guards that stop training with an explanation: a NaN or infinite training loss, and embeddings
that collapse onto one point (measured on a fixed probe set of validation texts)."""

from __future__ import annotations

import math

from transformers import TrainerCallback

from ..core.statistics import mean_cosine_of_pairs
from .errors import EmbeddingCollapseError, TrainingDivergedError

# Texts whose embeddings the collapse guard compares at every evaluation.
COLLAPSE_PROBE_SIZE = 32


class NonFiniteLossGuard(TrainerCallback):
    """Stops training with an explanation when a logged training loss is NaN or infinite."""

    def __init__(self, learning_rate: float, precision: str):
        self.learning_rate = learning_rate
        self.precision = precision

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            causes = [f"a learning rate too high for this model (train.learning_rate={self.learning_rate:g}; "
                      "2e-5 is the usual start)",
                      "a temperature too low or a scale too high in the loss (loss.temperature, loss.params)",
                      "bad targets: scores outside 0..1 or labels the loss does not expect"]
            if self.precision == "fp16":
                causes.insert(0, "fp16 overflow: use bf16 or fp32 (train.precision)")
            raise TrainingDivergedError(f"training stopped at step {state.global_step}: the training loss is {loss}. "
                                        "Likely causes: " + "; ".join(causes) + ".")


def mean_pairwise_cosine(model, texts: list[str], batch_size: int = 32) -> float:
    """Mean cosine similarity over all distinct pairs of ``texts``' embeddings."""
    return mean_cosine_of_pairs(model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                             show_progress_bar=False))


class CollapseGuard(TrainerCallback):
    """Stops training when the embeddings of a fixed probe set have collapsed onto one point:
    their mean pairwise cosine above ``threshold`` and above the base model's."""

    def __init__(self, model, probe_texts: list[str], threshold: float, base_value: float | None = None):
        self.model = model
        self.probe_texts = probe_texts
        self.threshold = threshold
        self.base_value = base_value if base_value is not None else mean_pairwise_cosine(model, probe_texts)
        self.values: list[tuple[int, float]] = []

    def check(self, step: int) -> float:
        was_training = self.model.training
        value = mean_pairwise_cosine(self.model, self.probe_texts)
        self.model.train(was_training)
        self.values.append((step, value))
        if value > self.threshold and value > self.base_value:
            raise EmbeddingCollapseError(
                f"training stopped at step {step}: the embeddings have collapsed (mean pairwise cosine of "
                f"{len(self.probe_texts)} validation texts is {value:.3f}, the base model's {self.base_value:.3f}, "
                f"threshold {self.threshold}). Likely causes: a learning rate too high; a loss temperature too "
                "high (loss.temperature) or a margin that every pair already satisfies; training pairs that are "
                "all positives with nothing to push apart (pair_binary data without label 0, or no negatives).")
        return value

    def on_evaluate(self, args, state, control, **kwargs):
        self.check(state.global_step)


def probe_texts(dataset, size: int = COLLAPSE_PROBE_SIZE) -> list[str]:
    """Up to ``size`` distinct texts from a split's first text column, in order."""
    column = [c for c in dataset.column_names if c not in ("score", "label")][0]
    seen: dict[str, None] = {}
    for text in dataset[column]:
        seen.setdefault(text, None)
        if len(seen) >= size:
            break
    return list(seen)
