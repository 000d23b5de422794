"""Evaluation stage: base vs fine-tuned (and any other model) on the held-out test split, with
bootstrap intervals, error analysis, a forgetting guard with weight interpolation, and a doctor.
Each task shape (``shapes/``) says how its items are scored, ``scoring/`` scores one model on one
split (training uses it too, for validation); this package runs the comparison.

    embeddings.py      what stage 05 draws: eval/embeddings.npz and eval/similarities.npz
    evaluate.py        compared_models, evaluate_models: the stage's main step, writes eval/
    report.py          the metrics.json schema, its tables and bar plot
    error_analysis.py  per-item errors: helped most, hurt most, worst remaining (texts wrapped in full)
    interpolation.py   the forgetting guard: weight interpolation, suggest_alpha, model_final/
    doctor.py          checks that name common failures, with fixes
    seeds.py           the spread over runs that differ only in the seed

``eval/metrics.json`` (one schema for every task shape, ``METRICS_SCHEMA``)::

    {"task": shape, "primary_metric": METRIC, "n_test": int, "test_set": str,
     "confidence": 0.95, "bootstrap_samples": int,
     "models": {NAME: {"path": str, "metrics": {METRIC: {"value": v, "ci95": [lo, hi]}}}},
     "comparisons": [{"a": NAME, "b": "base", "metric": METRIC, "difference": a - b,
                      "ci95": [lo, hi], "p_value": p}],
     "reference": {"half": "report",
                   "parts": {PART: {"name": "stsb-report", "kind": "sts" | "retrieval", "primary_metric": METRIC,
                                    "n_test": int, "models": {...same as above...}, "comparisons": [...]}},
                   "excluded": [{"part": PART, "kind": KIND, "items": "all" | n, "reason": str}],
                   "not_scored": {NAME: why} (where before_selection was left out)} or {},
     "interpolation": [{"alpha": a, "task": v, "reference": v}], "final_model": {...} or null,
     "thresholds": {NAME: {"f1": t, "accuracy": t}} (pair_binary only)}

``models.base`` and ``models.fine_tuned`` are always present. The reference (``scoring/reference.py``)
is the report half of the general-ability parts: an STS part (STS-B, or SNLI when STS-B is the run's
own training source) and a retrieval part (SQuAD); ``excluded`` says which parts or items were left
out and why; ``before_selection`` is scored on it only with ``eval.reference_before_selection`` or an
interpolation sweep. An interpolation row's ``reference`` is the mean over the parts of their primary metric.

Intervals are percentile bootstrap intervals over test items (pairs, triplets or queries); each
comparison is a paired bootstrap (the same resampled items for both models) with a two-sided p-value
for "no difference". Metric names follow the sentence-transformers evaluators (``cosine_ap``, ``cosine_ndcg@10``...).
"""

from ..core.statistics import Bootstrap, mean_cosine_of_pairs, paired_comparison
from ..scoring.errors import EvaluationError
from ..scoring.models import Encoder, ModelScores, score_model
from ..scoring.reference import GeneralReference, general_reference
from ..scoring.tasks import TaskSet, load_task, retrieval_tables
from ..scoring.validation import build_evaluator, primary_metric_key, validation_metric
from .doctor import Finding, doctor_table, run_doctor
from .embeddings import load_embeddings, save_embeddings
from .error_analysis import error_analysis, error_rows_table, error_table, item_texts
from .evaluate import Evaluation, compared_models, evaluate_models, model_location
from .interpolation import (
    FINAL_MODEL_DIR,
    interpolate_models,
    interpolation_sweep,
    interpolation_table,
    plot_interpolation,
    save_final_model,
    suggest_alpha,
)
from .report import (
    METRICS_SCHEMA,
    comparisons_table,
    metrics_table,
    plot_comparison,
    reference_exclusions,
    save_report,
    validate_report,
)
from .seeds import seed_runs, seed_summary

__all__ = [
    "Bootstrap", "paired_comparison", "Finding", "doctor_table", "mean_cosine_of_pairs", "run_doctor",
    "load_embeddings", "save_embeddings", "error_analysis", "error_rows_table", "error_table", "item_texts",
    "EvaluationError",
    "Evaluation", "compared_models", "evaluate_models", "model_location", "FINAL_MODEL_DIR", "interpolate_models",
    "interpolation_sweep", "interpolation_table", "plot_interpolation", "save_final_model", "suggest_alpha",
    "METRICS_SCHEMA", "comparisons_table", "metrics_table", "plot_comparison", "save_report", "validate_report",
    "Encoder", "ModelScores", "score_model", "seed_runs", "seed_summary", "GeneralReference", "TaskSet",
    "general_reference", "load_task", "reference_exclusions", "retrieval_tables", "build_evaluator",
    "primary_metric_key", "validation_metric",
]
