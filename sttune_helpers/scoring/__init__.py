"""How one model is measured on one split of a run, shared by training (validation, the checkpoint
choice) and evaluation (the test split and the reference). The shape computes the metrics.

    tasks.py       a split (or the general-ability reference set) as a TaskSet, with the corpus for retrieval
    models.py      Encoder (each text once per model), ModelScores, score_model
    validation.py  the validation evaluator and the metric early stopping follows, as the trainer names it
    errors.py      EvaluationError, for an empty split and the like
"""

from .errors import EvaluationError
from .models import Encoder, ModelScores, score_model
from .tasks import REFERENCE_NAME, TaskSet, load_task, reference_set, retrieval_tables
from .validation import LOWER_IS_BETTER, build_evaluator, primary_metric_key, validation_metric

__all__ = ["EvaluationError", "Encoder", "ModelScores", "score_model", "REFERENCE_NAME", "TaskSet", "load_task",
           "reference_set", "retrieval_tables", "LOWER_IS_BETTER", "build_evaluator", "primary_metric_key",
           "validation_metric"]
