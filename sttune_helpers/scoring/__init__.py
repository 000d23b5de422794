"""How one model is measured on one split of a run, shared by training (validation, the checkpoint
choice) and evaluation (the test split and the reference). The shape computes the metrics.

    taskset.py     TaskSet: the items one model is scored on
    tasks.py       a split as a TaskSet, with the corpus for retrieval
    reference.py   the general-ability reference: shipped parts in a selection and a report half, the run's
                   own source left out (general_reference)
    models.py      Encoder (each text once per model), ModelScores, score_model
    embedding_cache.py  embeddings kept on disk between scorings (the base model across runs, any
                   model when evaluation runs again)
    validation.py  the validation evaluator and the metric early stopping follows, as the trainer names it
    validation_corpus.py  a retrieval run's validation sub-corpus: distractors mined with the base model
    errors.py      EvaluationError, for an empty split and the like
"""

from .errors import EvaluationError
from .models import Encoder, ModelScores, score_model
from .reference import FAMILY_OVERLAP, PRIMARY, GeneralReference, general_reference
from .tasks import TaskSet, load_task, retrieval_tables
from .validation import LOWER_IS_BETTER, build_evaluator, primary_metric_key, validation_metric

__all__ = ["EvaluationError", "Encoder", "ModelScores", "score_model", "FAMILY_OVERLAP", "PRIMARY",
           "GeneralReference", "general_reference", "TaskSet", "load_task", "retrieval_tables", "LOWER_IS_BETTER",
           "build_evaluator", "primary_metric_key", "validation_metric"]
