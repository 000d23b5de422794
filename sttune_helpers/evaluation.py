"""Evaluation stage: base vs fine-tuned (and any other model) on the held-out test split, with
bootstrap intervals, error analysis, a forgetting guard with weight interpolation, and a doctor.

``eval/metrics.json`` (one schema for every task shape, ``METRICS_SCHEMA``)::

    {"task": shape, "primary_metric": METRIC, "n_test": int, "test_set": str,
     "confidence": 0.95, "bootstrap_samples": int,
     "models": {NAME: {"path": str, "metrics": {METRIC: {"value": v, "ci95": [lo, hi]}}}},
     "comparisons": [{"a": NAME, "b": "base", "metric": METRIC, "difference": a - b,
                      "ci95": [lo, hi], "p_value": p}],
     "reference": {"name": "stsb-test", "primary_metric": METRIC, "n_test": int,
                   "models": {...same as above...}, "comparisons": [...]} or {},
     "interpolation": [{"alpha": a, "task": v, "reference": v}], "final_model": {...} or null,
     "thresholds": {NAME: {"f1": t, "accuracy": t}} (pair_binary only)}

``models.base`` and ``models.fine_tuned`` are always present. Intervals are percentile bootstrap
intervals over test items (pairs, triplets or queries); each comparison is a paired bootstrap (the
same resampled items for both models) with a two-sided p-value for "no difference". Metric names
follow the sentence-transformers evaluators (``cosine_ap``, ``cosine_ndcg@10``...).
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import shapes
from .config import RunConfig
from .core.io import atomic_directory, atomic_write_json, give_ordinary_mode, read_json
from .rundir import RunDir
from .shapes.retrieval import RETRIEVAL_METRICS

# The metrics reported per task shape, primary metric first, named as the sentence-transformers
# evaluators name them. Unlabeled data has no test labels: it is measured on the reference set.
METRICS = {name: shape.metrics for name, shape in shapes.REGISTRY.items()}
PRIMARY_METRIC = {shape: metrics[0] for shape, metrics in METRICS.items()}
SCHEMA_KEYS = ("task", "primary_metric", "n_test", "models", "comparisons", "reference")
# The validation metric that early stopping follows during training, per shape of the validation
# split, as the sentence-transformers evaluator names it. Shapes without an embedding evaluator
# (pair_class, unlabeled) follow the validation loss.
VALIDATION_METRIC = {name: shape.validation_metric for name, shape in shapes.REGISTRY.items()}
LOWER_IS_BETTER = {"loss"}
REFERENCE_NAME = "stsb-test"
REFERENCE_FILE = Path(__file__).parent / "datasets" / "stsb" / "sts-test.tsv"
FINAL_MODEL_DIR = "model_final"

_metric_entry = {"type": "object", "required": ["value", "ci95"],
                 "properties": {"value": {"type": ["number", "null"]},
                                "ci95": {"type": "array", "items": {"type": ["number", "null"]}, "minItems": 2,
                                         "maxItems": 2}}}
_models = {"type": "object", "required": ["base", "fine_tuned"],
           "additionalProperties": {"type": "object", "required": ["path", "metrics"],
                                    "properties": {"path": {"type": "string"},
                                                   "metrics": {"type": "object",
                                                               "additionalProperties": _metric_entry}}}}
_comparisons = {"type": "array", "items": {
    "type": "object", "required": ["a", "b", "metric", "difference", "ci95", "p_value"],
    "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "metric": {"type": "string"},
                   "difference": {"type": ["number", "null"]}, "p_value": {"type": ["number", "null"]},
                   "ci95": {"type": "array", "minItems": 2, "maxItems": 2}}}}
METRICS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": list(SCHEMA_KEYS),
    "properties": {
        "task": {"enum": list(METRICS)},
        "primary_metric": {"type": "string"},
        "n_test": {"type": "integer", "minimum": 1},
        "models": _models,
        "comparisons": _comparisons,
        "reference": {"oneOf": [
            {"type": "object", "maxProperties": 0},
            {"type": "object", "required": ["name", "primary_metric", "n_test", "models", "comparisons"],
             "properties": {"models": _models, "comparisons": _comparisons}},
        ]},
    },
}


def validate_report(report: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``report`` follows METRICS_SCHEMA."""
    import jsonschema

    jsonschema.validate(report, METRICS_SCHEMA)


def primary_metric_key(shape: str, evaluator_name: str) -> str:
    """The key under which the sentence-transformers evaluator reports the headline metric."""
    return f"{evaluator_name}_{PRIMARY_METRIC[shape]}"


def validation_metric(shape: str, chosen: str | None = None) -> tuple[str, bool]:
    """The trainer's metric_for_best_model for a validation split of ``shape`` and whether greater
    is better; ``chosen`` (train.early_stopping_metric) overrides the shape's default."""
    metric = chosen or VALIDATION_METRIC[shape]
    if metric in LOWER_IS_BETTER:
        return "eval_loss", False
    return f"eval_validation_{metric}", True


def retrieval_tables(run: RunDir, split: str) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """Corpus, the split's queries, and their relevant documents, from the data stage's files."""

    def records(name):
        path = run.data_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run stage data_prep (01_data_prep.ipynb) first")
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    corpus = {r["_id"]: r["text"] for r in records("corpus.jsonl")}
    all_queries = {r["_id"]: r["text"] for r in records("queries.jsonl")}
    relevant: dict[str, set[str]] = {}
    for r in records("qrels.jsonl"):
        if r["split"] == split and float(r.get("score", 1)) > 0:
            relevant.setdefault(r["query_id"], set()).add(r["doc_id"])
    return corpus, {q: all_queries[q] for q in relevant}, relevant


def build_evaluator(shape: str, dataset, name: str, batch_size: int = 64, run: RunDir | None = None):
    """The sentence-transformers evaluator for a split of ``shape``, or None where the shape has
    none (early stopping then follows the validation loss)."""
    from sentence_transformers.sentence_transformer import evaluation

    if shape == "pair_score":
        return evaluation.EmbeddingSimilarityEvaluator(
            dataset["sentence1"], dataset["sentence2"], dataset["score"], name=name,
            similarity_fn_names=["cosine"], batch_size=batch_size,
        )
    if shape == "pair_binary":
        return evaluation.BinaryClassificationEvaluator(
            dataset["sentence1"], dataset["sentence2"], dataset["label"], name=name,
            similarity_fn_names=["cosine"], batch_size=batch_size,
        )
    if shape == "triplet":
        return evaluation.TripletEvaluator(dataset["anchor"], dataset["positive"], dataset["negative"], name=name,
                                           similarity_fn_names=["cosine"], batch_size=batch_size)
    if shape == "retrieval":
        if run is None:
            raise ValueError("a retrieval evaluator needs the run directory (its corpus and qrels)")
        corpus, queries, relevant = retrieval_tables(run, name)
        return evaluation.InformationRetrievalEvaluator(queries, corpus, relevant, name=name,
                                                        score_functions=None, batch_size=batch_size,
                                                        show_progress_bar=False)
    return None


# --- metrics and the bootstrap ---------------------------------------------------------------


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values, axis=-1)


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis (works on a batch of resamples)."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    return (x * y).sum(axis=-1) / np.where(denominator == 0, np.nan, denominator)


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return pearson(_ranks(x), _ranks(y))


PAIR_SCORE_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "spearman_cosine": spearman,
    "pearson_cosine": pearson,
}


@dataclass
class Bootstrap:
    """Resampled item indices shared by every model, so differences are paired."""

    indices: np.ndarray  # (samples, n)
    confidence: float

    @classmethod
    def draw(cls, n: int, samples: int, confidence: float, seed: int) -> "Bootstrap":
        rng = np.random.default_rng(seed)
        return cls(rng.integers(0, n, size=(samples, n)), confidence)

    def interval(self, values: np.ndarray) -> list[float | None]:
        values = np.asarray(values, dtype=float)
        if not np.isfinite(values).any():
            return [None, None]
        tail = (1 - self.confidence) / 2 * 100
        return [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))]


def _summarise(point: dict[str, float], resampled: dict[str, np.ndarray], boot: Bootstrap) -> dict[str, dict]:
    return {name: {"value": _finite(point[name]), "ci95": boot.interval(resampled[name])} for name in point}


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def pair_score_metrics(similarities: np.ndarray, gold: np.ndarray, boot: Bootstrap) -> tuple[dict, dict]:
    """Point estimates with intervals, and the bootstrap distribution of each metric."""
    point, resampled = {}, {}
    for name, fn in PAIR_SCORE_METRICS.items():
        point[name] = float(fn(similarities, gold))
        resampled[name] = fn(similarities[boot.indices], gold[boot.indices])
    return _summarise(point, resampled, boot), resampled


def binary_thresholds(similarities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The F1- and accuracy-maximising thresholds, found by the sentence-transformers evaluator's
    own search. Call it on the validation split: thresholds chosen on test flatter the model."""
    from sentence_transformers.sentence_transformer.evaluation import BinaryClassificationEvaluator as Evaluator

    f1_threshold = Evaluator.find_best_f1_and_threshold(similarities, labels, True)[3]
    accuracy_threshold = Evaluator.find_best_acc_and_threshold(similarities, labels, True)[1]
    return {"f1": float(f1_threshold), "accuracy": float(accuracy_threshold)}


def _f1(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    true_positive = (predicted & (labels == 1)).sum(axis=-1)
    false_positive = (predicted & (labels == 0)).sum(axis=-1)
    false_negative = (~predicted & (labels == 1)).sum(axis=-1)
    denominator = 2 * true_positive + false_positive + false_negative
    return np.where(denominator == 0, np.nan, 2 * true_positive / np.maximum(denominator, 1))


def pair_binary_metrics(similarities: np.ndarray, labels: np.ndarray, thresholds: dict[str, float],
                        boot: Bootstrap) -> tuple[dict, dict]:
    """Average precision (threshold-free), and F1 and accuracy at the given (validation) thresholds."""
    from sklearn.metrics import average_precision_score

    labels = np.asarray(labels, dtype=int)

    def average_precision(rows):
        y = labels[rows]
        return np.nan if y.min() == y.max() else average_precision_score(y, similarities[rows])

    f1_predicted = similarities >= thresholds["f1"]
    accuracy_correct = (similarities >= thresholds["accuracy"]) == (labels == 1)
    point = {"cosine_ap": average_precision(np.arange(len(labels))),
             "cosine_f1": float(_f1(f1_predicted, labels)),
             "cosine_accuracy": float(accuracy_correct.mean())}
    resampled = {"cosine_ap": np.array([average_precision(rows) for rows in boot.indices]),
                 "cosine_f1": _f1(f1_predicted[boot.indices], labels[boot.indices]),
                 "cosine_accuracy": accuracy_correct[boot.indices].mean(axis=1)}
    return _summarise(point, resampled, boot), resampled


def mean_metrics(per_item: dict[str, np.ndarray], boot: Bootstrap) -> tuple[dict, dict]:
    """Metrics that are means over items (accuracy, per-query retrieval metrics)."""
    point = {name: float(values.mean()) for name, values in per_item.items()}
    resampled = {name: values[boot.indices].mean(axis=1) for name, values in per_item.items()}
    return _summarise(point, resampled, boot), resampled


def query_metrics(ranked: list[list[str]], relevant: list[set[str]]) -> dict[str, np.ndarray]:
    """Per-query NDCG@10, MRR@10, Recall@1/10/100 and MAP@100 of ranked document ids, with the
    formulas of sentence-transformers' InformationRetrievalEvaluator (binary relevance)."""
    out = {name: np.zeros(len(ranked)) for name in RETRIEVAL_METRICS}
    for q, (ranking, wanted) in enumerate(zip(ranked, relevant)):
        hits = np.array([doc in wanted for doc in ranking[:100]], dtype=float)
        first = np.flatnonzero(hits[:10])
        out["cosine_mrr@10"][q] = 1.0 / (first[0] + 1) if len(first) else 0.0
        discounts = 1.0 / np.log2(np.arange(2, 12))
        ideal = discounts[: min(len(wanted), 10)].sum()
        out["cosine_ndcg@10"][q] = float((hits[:10] * discounts[: len(hits[:10])]).sum() / ideal)
        for k in (1, 10, 100):
            out[f"cosine_recall@{k}"][q] = hits[:k].sum() / len(wanted)
        precision_at_hits = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        out["cosine_map@100"][q] = float((precision_at_hits * hits).sum() / min(100, len(wanted)))
    return out


def paired_comparison(a: str, b: str, metric: str, values: dict[str, dict], dists: dict[str, dict],
                      boot: Bootstrap) -> dict[str, Any]:
    differences = np.asarray(dists[a][metric], dtype=float) - np.asarray(dists[b][metric], dtype=float)
    differences = differences[np.isfinite(differences)]
    samples = len(differences)
    value_a, value_b = values[a][metric]["value"], values[b][metric]["value"]
    if samples == 0 or value_a is None or value_b is None:
        return {"a": a, "b": b, "metric": metric, "difference": None, "ci95": [None, None], "p_value": None}
    # Two-sided: how often the resampled difference falls on the other side of zero.
    below = (np.sum(differences <= 0) + 1) / (samples + 1)
    above = (np.sum(differences >= 0) + 1) / (samples + 1)
    return {
        "a": a,
        "b": b,
        "metric": metric,
        "difference": value_a - value_b,
        "ci95": boot.interval(differences),
        "p_value": float(min(1.0, 2 * min(below, above))),
    }


# --- the test set of each shape ----------------------------------------------------------------


@dataclass
class TaskSet:
    """The items one model is scored on and what their metrics need."""

    shape: str
    name: str  # "test" or the reference set's name
    items: Any  # pandas DataFrame, one row per item (pair, triplet or query)
    validation: Any = None  # pair_binary: where thresholds are chosen
    train: Any = None  # pair_class: where the probe is fitted
    labels: list[str] | None = None  # pair_class class names
    corpus: dict[str, str] | None = None  # retrieval
    relevant: list[set[str]] | None = None  # retrieval, per query
    score_range: tuple[float, float] = (0.0, 1.0)  # pair_score's original scale, for the colour groups
    viz_texts: list[str] | None = None  # unlabeled: the user's own test texts are what stage 05 draws

    @property
    def n(self) -> int:
        return len(self.items)


def reference_set(max_pairs: int | None = None, seed: int = 0) -> TaskSet:
    """STS-B test (general domain, shipped with the package), scores scaled to 0..1."""
    import csv

    import pandas as pd

    frame = pd.read_csv(REFERENCE_FILE, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    frame = pd.DataFrame({"sentence1": frame["sentence1"], "sentence2": frame["sentence2"],
                          "score": frame["score"].astype(float) / 5.0})
    if max_pairs is not None and len(frame) > max_pairs:
        frame = frame.sample(n=max_pairs, random_state=seed).reset_index(drop=True)
    return TaskSet("pair_score", REFERENCE_NAME, frame, score_range=(0.0, 5.0))


def load_task(run: RunDir, config: RunConfig, split: str = "test") -> TaskSet:
    """The run's test split (or ``split``) as a TaskSet; unlabeled data (no test labels) gets the
    reference set."""
    from .data import load_split, read_report

    report = read_report(run)
    shape = report["shape"]
    if shape == "unlabeled":
        task = reference_set(config.eval.reference_max_pairs, config.seed)
        task.shape = "unlabeled"
        task.viz_texts = list(dict.fromkeys(load_split(run, "test")["text"]))
        return task
    test = load_split(run, split).to_pandas()
    if len(test) == 0:
        raise ValueError(f"{run.split_path(split)} has no rows: the {split} split is empty; give "
                         f"data.{split}_fraction or a {split} file")
    if shape == "retrieval":
        corpus, queries, relevant = retrieval_tables(run, split)
        ids = list(relevant)
        import pandas as pd

        items = pd.DataFrame({"query_id": ids, "query": [queries[q] for q in ids],
                          "relevant": [" | ".join(corpus[d][:80] for d in sorted(relevant[q])) for q in ids]})
        return TaskSet(shape, split, items, corpus=corpus, relevant=[relevant[q] for q in ids])
    task = TaskSet(shape, split, test)
    if shape == "pair_score":
        task.score_range = tuple(report.get("score_scale", {}).get("original", (0.0, 1.0)))
    if shape == "pair_binary":
        task.validation = load_split(run, "validation").to_pandas()
    if shape == "pair_class":
        task.labels = (report.get("labels") or {}).get("names")
        train = load_split(run, "train").to_pandas()
        train = train[[c for c in ("sentence1", "sentence2", "label") if c in train.columns]].dropna()
        if len(train) > config.eval.probe_train_rows:
            train = train.sample(n=config.eval.probe_train_rows, random_state=config.seed)
        task.train = train
    return task


# --- scoring one model ---------------------------------------------------------------------------


@dataclass
class ModelScores:
    """One model on one TaskSet: metrics, their bootstrap distributions, and per-item detail."""

    metrics: dict[str, dict]
    resampled: dict[str, np.ndarray]
    item_score: np.ndarray  # per item: cosine (pairs), pos - neg cosine (triplets), NDCG@10 (queries), p(gold) (classes)
    item_error: np.ndarray  # per item, larger is worse (0 is perfect)
    sentences: list[str] = field(default_factory=list)  # the distinct texts encoded, for the embedding maps
    embeddings: np.ndarray | None = None
    pair_similarity: np.ndarray | None = None  # the similarity of each pair drawn in stage 05
    thresholds: dict[str, float] | None = None


class Encoder:
    """Encodes each distinct text once per model (normalised, so a dot product is the cosine)."""

    def __init__(self, model, batch_size: int):
        self.model, self.batch_size, self.cache = model, batch_size, {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            vectors = self.model.encode(missing, batch_size=self.batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
            self.cache.update(zip(missing, np.asarray(vectors, dtype=np.float32)))
        return np.stack([self.cache[t] for t in texts]) if len(texts) else np.zeros((0, 1), np.float32)

    def cosine(self, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        return np.sum(self(left) * self(right), axis=1)


def score_model(task: TaskSet, model, boot: Bootstrap, batch_size: int = 64, seed: int = 0,
                precision: str = "fp32") -> ModelScores:
    """The task's metrics for ``model``, encoding with ``precision`` (EvalConfig.precision)."""
    from .core.hardware import encoding_precision

    with encoding_precision(model, precision):
        return _score_model(task, model, boot, batch_size, seed)


def _score_model(task: TaskSet, model, boot: Bootstrap, batch_size: int, seed: int) -> ModelScores:
    encode = Encoder(model, batch_size)
    items = task.items
    if task.shape in ("pair_score", "unlabeled"):
        similarity = encode.cosine(list(items["sentence1"]), list(items["sentence2"]))
        gold = items["score"].to_numpy(dtype=float)
        metrics, resampled = pair_score_metrics(similarity, gold, boot)
        scores = ModelScores(metrics, resampled, similarity, np.abs(similarity - gold), pair_similarity=similarity)
    elif task.shape == "pair_binary":
        validation = task.validation
        thresholds = binary_thresholds(encode.cosine(list(validation["sentence1"]), list(validation["sentence2"])),
                                       validation["label"].to_numpy(dtype=int))
        similarity = encode.cosine(list(items["sentence1"]), list(items["sentence2"]))
        labels = items["label"].to_numpy(dtype=int)
        metrics, resampled = pair_binary_metrics(similarity, labels, thresholds, boot)
        # How far on the wrong side of the F1 threshold each pair is (negative: right side).
        margin = np.where(labels == 1, thresholds["f1"] - similarity, similarity - thresholds["f1"])
        scores = ModelScores(metrics, resampled, similarity, np.clip(margin, 0, None), pair_similarity=similarity,
                             thresholds=thresholds)
    elif task.shape == "triplet":
        positive = encode.cosine(list(items["anchor"]), list(items["positive"]))
        negative = encode.cosine(list(items["anchor"]), list(items["negative"]))
        metrics, resampled = mean_metrics({"cosine_accuracy": (positive > negative).astype(float)}, boot)
        scores = ModelScores(metrics, resampled, positive - negative, np.clip(negative - positive, 0, None),
                             pair_similarity=np.concatenate([positive, negative]))
    elif task.shape == "retrieval":
        scores = _score_retrieval(task, encode, boot)
    elif task.shape == "pair_class":
        scores = _score_probe(task, encode, boot, seed)
    else:
        raise ValueError(f"unknown task shape {task.shape!r}")
    texts = viz_sentences(task)
    scores.sentences, scores.embeddings = texts, encode(texts)
    return scores


def _score_retrieval(task: TaskSet, encode: Encoder, boot: Bootstrap) -> ModelScores:
    doc_ids = list(task.corpus)
    documents = encode([task.corpus[d] for d in doc_ids])
    queries = encode(list(task.items["query"]))
    similarity = queries @ documents.T
    top = min(100, len(doc_ids))
    # Highest score first, ties broken by ascending document id, as the library's evaluator does.
    order = np.lexsort((np.array(doc_ids)[None, :].repeat(len(queries), 0), -similarity), axis=1)[:, :top]
    ranked = [[doc_ids[j] for j in row] for row in order]
    per_query = query_metrics(ranked, task.relevant)
    metrics, resampled = mean_metrics(per_query, boot)
    ndcg = per_query["cosine_ndcg@10"]
    # The pairs drawn in stage 05: each query with each relevant document, and with one seeded random
    # non-relevant document per relevant one.
    positive, negative = _retrieval_pairs(task)
    index = {d: j for j, d in enumerate(doc_ids)}
    pairs = [similarity[q, index[d]] for q, d in positive] + [similarity[q, index[d]] for q, d in negative]
    return ModelScores(metrics, resampled, ndcg, 1.0 - ndcg, pair_similarity=np.array(pairs, dtype=float))


def _retrieval_pairs(task: TaskSet, seed: int = 0) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    rng = np.random.default_rng(seed)
    doc_ids = sorted(task.corpus)
    positive, negative = [], []
    for q, wanted in enumerate(task.relevant):
        for doc in sorted(wanted):
            positive.append((q, doc))
            for _ in range(20):  # a random document that is not relevant
                other = doc_ids[rng.integers(len(doc_ids))]
                if other not in wanted:
                    negative.append((q, other))
                    break
    return positive, negative


def _probe_features(encode: Encoder, frame) -> np.ndarray:
    u = encode(list(frame["sentence1"]))
    v = encode(list(frame["sentence2"]))
    return np.concatenate([u, v, np.abs(u - v)], axis=1)  # SoftmaxLoss's features


def _score_probe(task: TaskSet, encode: Encoder, boot: Bootstrap, seed: int) -> ModelScores:
    """pair_class: the embeddings' label accuracy through a logistic-regression probe fitted on the
    train split (the SoftmaxLoss classifier head is not part of the saved model)."""
    from sklearn.linear_model import LogisticRegression

    gold_train = task.train["label"].to_numpy(dtype=int)
    if len(set(gold_train)) < 2:
        raise ValueError("pair_class evaluation fits a probe on the train split, which has fewer than two classes")
    probe = LogisticRegression(max_iter=2000, random_state=seed).fit(_probe_features(encode, task.train), gold_train)
    gold = task.items["label"].to_numpy(dtype=int)
    probabilities = probe.predict_proba(_probe_features(encode, task.items))
    column = {c: i for i, c in enumerate(probe.classes_)}
    p_gold = np.array([probabilities[i, column[g]] if g in column else 0.0 for i, g in enumerate(gold)])
    correct = (probe.classes_[probabilities.argmax(axis=1)] == gold).astype(float)
    metrics, resampled = mean_metrics({"accuracy": correct}, boot)
    similarity = encode.cosine(list(task.items["sentence1"]), list(task.items["sentence2"]))
    return ModelScores(metrics, resampled, p_gold, 1.0 - p_gold, pair_similarity=similarity)


# --- what stage 05 draws ------------------------------------------------------------------------


def viz_sentences(task: TaskSet) -> list[str]:
    """The distinct texts drawn in the embedding maps, in a fixed order."""
    items = task.items
    if task.viz_texts is not None:
        return task.viz_texts
    if task.shape in ("pair_score", "pair_binary", "pair_class"):
        return list(dict.fromkeys([*items["sentence1"], *items["sentence2"]]))
    if task.shape == "triplet":
        return list(dict.fromkeys([*items["anchor"], *items["positive"], *items["negative"]]))
    documents = [task.corpus[d] for wanted in task.relevant for d in sorted(wanted)]
    return list(dict.fromkeys([*items["query"], *documents]))


def sentence_groups(task: TaskSet) -> tuple[list[str], str]:
    """The colour group of each viz sentence (the label of the first item it appears in) and what
    the groups are; all "" where the data has no labels to colour by (stage 05 clusters instead)."""
    from .viz import score_buckets

    sentences = viz_sentences(task)
    items = task.items
    first: dict[str, str] = {}
    if task.shape == "pair_score":
        bucket, names = score_buckets(items["score"].to_numpy(dtype=float), task.score_range)
        for s1, s2, b in zip(items["sentence1"], items["sentence2"], bucket):
            first.setdefault(s1, names[b])
            first.setdefault(s2, names[b])
        return [first[s] for s in sentences], "score bucket"
    if task.shape in ("pair_binary", "pair_class"):
        names = task.labels if task.shape == "pair_class" else ["negative pair", "positive pair"]
        for s1, s2, label in zip(items["sentence1"], items["sentence2"], items["label"]):
            name = names[int(label)] if names and int(label) < len(names) else str(label)
            first.setdefault(s1, name)
            first.setdefault(s2, name)
        return [first[s] for s in sentences], "class" if task.shape == "pair_class" else "label"
    return [""] * len(sentences), ""


def pair_groups(task: TaskSet) -> tuple[np.ndarray, np.ndarray]:
    """For each pair in ModelScores.pair_similarity: its bucket name, and 1/0 positive/negative
    (-1 where the data has no positive/negative split: score buckets and classes)."""
    from .viz import score_buckets

    items = task.items
    if task.shape in ("pair_score", "unlabeled"):
        bucket, names = score_buckets(items["score"].to_numpy(dtype=float), task.score_range)
        return np.array([names[b] for b in bucket], dtype=object), np.full(len(items), -1, dtype=np.int8)
    if task.shape == "pair_binary":
        labels = items["label"].to_numpy(dtype=int)
        return (np.array(["positive" if y == 1 else "negative" for y in labels], dtype=object),
                labels.astype(np.int8))
    if task.shape == "pair_class":
        names = task.labels or []
        return (np.array([names[int(y)] if int(y) < len(names) else str(y) for y in items["label"]], dtype=object),
                np.full(len(items), -1, dtype=np.int8))
    if task.shape == "triplet":
        n = len(items)
        return (np.array(["positive"] * n + ["negative"] * n, dtype=object),
                np.array([1] * n + [0] * n, dtype=np.int8))
    positive, negative = _retrieval_pairs(task)
    return (np.array(["positive"] * len(positive) + ["negative"] * len(negative), dtype=object),
            np.array([1] * len(positive) + [0] * len(negative), dtype=np.int8))


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    os.close(fd)
    np.savez(tmp, **arrays)
    give_ordinary_mode(Path(tmp))
    os.replace(tmp, path)


def save_embeddings(run: RunDir, task: TaskSet, scores: dict[str, ModelScores]) -> None:
    """Keep the test embeddings and pair similarities so stage 05 need not encode again."""
    groups, kind = sentence_groups(task)
    first = next(iter(scores.values()))
    _save_npz(run.eval_dir / "embeddings.npz", {
        "sentences": np.array(first.sentences, dtype=object),
        "groups": np.array(groups, dtype=object),
        "group_kind": np.array(kind),
        **{f"embeddings_{name}": s.embeddings for name, s in scores.items()},
    })
    similarities = run.eval_dir / "similarities.npz"
    if task.shape == "unlabeled":  # no pairs of the user's own: the reference pairs are reported in metrics.json
        similarities.unlink(missing_ok=True)
        return
    bucket, positive = pair_groups(task)
    _save_npz(similarities, {
        "bucket": bucket, "positive": positive,
        **{f"similarity_{name}": s.pair_similarity for name, s in scores.items()},
    })


def load_embeddings(run: RunDir) -> dict[str, np.ndarray]:
    path = run.eval_dir / "embeddings.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run stage evaluation (04_evaluation.ipynb) first")
    with np.load(path, allow_pickle=True) as data:
        return {key: data[key] for key in data.files}


# --- the stage ----------------------------------------------------------------------------------


def model_location(path: str) -> str:
    """A run directory stands for its fine-tuned model."""
    candidate = Path(path) / "model"
    if Path(path).is_dir() and (Path(path) / "manifest.json").is_file() and candidate.is_dir():
        return str(candidate)
    return path


def compared_models(run: RunDir, config: RunConfig, extra: dict[str, str] | None = None) -> dict[str, str]:
    """base, fine_tuned, then config.eval.extra_models and ``extra`` (name -> path, hub name or run)."""
    models = {"base": config.model.name, "fine_tuned": str(run.model_dir)}
    for name, path in {**config.eval.extra_models, **(extra or {})}.items():
        if name in ("base", "fine_tuned"):
            raise ValueError(f"extra model name {name!r} is taken: base and fine_tuned are always compared")
        models[name] = model_location(path)
    return models


def _report_block(task: TaskSet, scores: dict[str, ModelScores], paths: dict[str, str], boot: Bootstrap) -> dict:
    from .modeling import resolve_model_source

    def location(path):
        try:
            return resolve_model_source(path).location
        except Exception:  # an in-memory model (interpolation) has no source to resolve
            return path

    models = {name: {"path": location(paths[name]), "metrics": s.metrics} for name, s in scores.items()}
    values = {name: s.metrics for name, s in scores.items()}
    dists = {name: s.resampled for name, s in scores.items()}
    comparisons = [paired_comparison(name, "base", metric, values, dists, boot)
                   for name in scores if name != "base" for metric in METRICS[task.shape]]
    return {"primary_metric": PRIMARY_METRIC[task.shape], "n_test": task.n, "models": models,
            "comparisons": comparisons}


@dataclass
class Evaluation:
    """What evaluate_models computed: the report (metrics.json) and the per-item scores."""

    report: dict[str, Any]
    task: TaskSet
    scores: dict[str, ModelScores]
    reference_task: TaskSet | None = None
    reference_scores: dict[str, ModelScores] | None = None
    loaded: dict[str, Any] = field(default_factory=dict)  # base and fine_tuned in memory, for interpolation


def evaluate_models(run: RunDir, config: RunConfig, models: dict[str, str] | None = None,
                    loaded: dict[str, Any] | None = None) -> Evaluation:
    """Evaluate each named model on the test split and, when config.eval.reference is on, on the
    reference set; write eval/metrics.json, embeddings.npz, similarities.npz and errors.csv.
    ``loaded`` maps names to models already in memory (skips loading them again)."""
    from .core.hardware import resolve_encoding_precision
    from .modeling import load_model

    models = models or compared_models(run, config)
    loaded = dict(loaded or {})
    task = load_task(run, config)
    boot = Bootstrap.draw(task.n, config.eval.bootstrap_samples, config.eval.confidence, config.seed)
    reference = None
    if config.eval.reference and task.shape != "unlabeled":
        reference = reference_set(config.eval.reference_max_pairs, config.seed)
        reference_boot = Bootstrap.draw(reference.n, config.eval.bootstrap_samples, config.eval.confidence,
                                        config.seed + 1)
    scores: dict[str, ModelScores] = {}
    reference_scores: dict[str, ModelScores] = {}
    precision = config.eval.precision
    for name, path in models.items():
        model = loaded.get(name) or load_model(path, device=config.model.device,
                                               max_seq_length=config.model.max_seq_length)
        if name in ("base", "fine_tuned"):
            loaded[name] = model  # kept for the interpolation sweep
        scores[name] = score_model(task, model, boot, config.eval.batch_size, config.seed, config.eval.precision)
        if reference is not None:
            reference_scores[name] = score_model(reference, model, reference_boot, config.eval.batch_size, config.seed,
                                                 config.eval.precision)
        precision = resolve_encoding_precision(model, config.eval.precision)
    report = {"task": task.shape, "test_set": task.name, "confidence": config.eval.confidence,
              "bootstrap_samples": config.eval.bootstrap_samples, "precision": precision,
              **_report_block(task, scores, models, boot)}
    report["reference"] = ({"name": REFERENCE_NAME, **_report_block(reference, reference_scores, models,
                                                                    reference_boot)}
                           if reference is not None else {})
    if task.shape == "pair_binary":
        report["thresholds"] = {name: s.thresholds for name, s in scores.items()}
    report["interpolation"] = []
    report["final_model"] = None
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    save_embeddings(run, task, scores)
    error_table(task, scores).to_csv(run.eval_dir / "errors.csv", index=False)
    atomic_write_json(run.metrics_path, report)
    return Evaluation(report, task, scores, reference, reference_scores or None, loaded)


def metrics_table(report: dict[str, Any], block: str | None = None):
    """One row per model and metric; ``block="reference"`` for the reference set."""
    import pandas as pd

    source = report[block] if block else report
    rows = []
    for name, entry in source.get("models", {}).items():
        for metric, result in entry["metrics"].items():
            low, high = result["ci95"]
            rows.append({"model": name, "metric": metric, "value": result["value"], "ci95_low": low, "ci95_high": high})
    return pd.DataFrame(rows)


def comparisons_table(report: dict[str, Any], block: str | None = None):
    import pandas as pd

    source = report[block] if block else report
    rows = [{**c, "ci95_low": c["ci95"][0], "ci95_high": c["ci95"][1]} for c in source.get("comparisons", [])]
    return pd.DataFrame(rows).drop(columns="ci95") if rows else pd.DataFrame(rows)


def plot_comparison(report: dict[str, Any], path=None):
    """Bar plot of the primary metric per model with its interval; saved when ``path`` is given."""
    import matplotlib.pyplot as plt

    metric = report["primary_metric"]
    names = [n for n in report["models"] if report["models"][n]["metrics"][metric]["value"] is not None]
    values = [report["models"][n]["metrics"][metric]["value"] for n in names]
    lows = [v - (report["models"][n]["metrics"][metric]["ci95"][0] or v) for n, v in zip(names, values)]
    highs = [(report["models"][n]["metrics"][metric]["ci95"][1] or v) - v for n, v in zip(names, values)]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2.5, 3.5))
    colours = ["#9aa5b1", "#2f6fde", "#e0823d", "#3aa56b", "#a05fd0", "#c94c4c"]
    bars = ax.bar(names, values, yerr=[lows, highs], capsize=6, color=[colours[i % len(colours)]
                                                                      for i in range(len(names))])
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.4f}", (bar.get_x() + bar.get_width() / 2, value), ha="left",
                    va="center", xytext=(10, 0), textcoords="offset points")  # beside the error bar
    floor = min(v - l for v, l in zip(values, lows)) if values else 0.0
    ax.set_ylim(max(0.0, floor - 0.05), min(1.0, max((v + h for v, h in zip(values, highs)), default=1.0) + 0.05))
    ax.set_ylabel(metric)
    ax.set_title(f"{report['task']}: {report.get('test_set', 'test')} {metric} "
                 f"(n={report['n_test']}, {int(report['confidence'] * 100)}% CI)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


# --- error analysis -----------------------------------------------------------------------------


def item_texts(task: TaskSet):
    """The columns that identify each test item in the error tables."""
    columns = {"pair_score": ["sentence1", "sentence2", "score"], "unlabeled": ["sentence1", "sentence2", "score"],
               "pair_binary": ["sentence1", "sentence2", "label"], "pair_class": ["sentence1", "sentence2", "label"],
               "triplet": ["anchor", "positive", "negative"], "retrieval": ["query", "relevant"]}[task.shape]
    frame = task.items[columns].copy()
    if task.shape == "pair_class" and task.labels:
        frame["label"] = [task.labels[int(y)] if int(y) < len(task.labels) else y for y in frame["label"]]
    return frame


ITEM_SCORE_MEANING = {name: shape.item_score_meaning for name, shape in shapes.REGISTRY.items()}
ITEM_ERROR_MEANING = {name: shape.item_error_meaning for name, shape in shapes.REGISTRY.items()}


def error_table(task: TaskSet, scores: dict[str, ModelScores], a: str = "fine_tuned", b: str = "base"):
    """Every test item with each model's score and error and the change in error from b to a
    (negative: a is better on that item), sorted by the change."""
    frame = item_texts(task).reset_index(drop=True)
    frame.insert(0, "item", np.arange(task.n))
    for name in (b, a):
        frame[f"{name}_score"] = scores[name].item_score
        frame[f"{name}_error"] = scores[name].item_error
    frame["error_change"] = frame[f"{a}_error"] - frame[f"{b}_error"]
    return frame.sort_values("error_change", kind="stable").reset_index(drop=True)


def error_analysis(table, rows: int = 10) -> dict[str, Any]:
    """The items the fine-tuning helped most, hurt most, and the worst remaining errors."""
    error = [c for c in table.columns if c.endswith("_error")][-1]
    return {"improved": table.head(rows).reset_index(drop=True),
            "worsened": table.sort_values("error_change", ascending=False, kind="stable").head(rows)
                             .reset_index(drop=True),
            "worst": table.sort_values(error, ascending=False, kind="stable").head(rows).reset_index(drop=True)}


# --- forgetting guard: weight interpolation -----------------------------------------------------


def interpolate_models(base, tuned, alpha: float):
    """A copy of ``tuned`` whose weights are (1 - alpha) * base + alpha * tuned. alpha 0 gives the
    base weights, 1 the fine-tuned ones (torch.lerp is exact at both ends). Both models must have
    the same architecture: the same modules with the same parameter shapes."""
    import torch

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"interpolation alpha must be within 0..1, got {alpha}")
    base_state, tuned_state = base.state_dict(), tuned.state_dict()
    differing = sorted(set(base_state) ^ set(tuned_state))
    if differing:
        raise ValueError("the base and fine-tuned models differ in their modules, so their weights cannot be "
                         f"interpolated: {', '.join(differing[:5])}")
    mixed = {}
    for key, tuned_value in tuned_state.items():
        base_value = base_state[key].to(tuned_value.device)
        if base_value.shape != tuned_value.shape:
            raise ValueError(f"weight {key} has shape {tuple(base_value.shape)} in the base model and "
                             f"{tuple(tuned_value.shape)} in the fine-tuned one: they cannot be interpolated")
        if tuned_value.is_floating_point():
            mixed[key] = torch.lerp(base_value.float(), tuned_value.float(), alpha).to(tuned_value.dtype)
        else:
            mixed[key] = tuned_value
    model = copy.deepcopy(tuned)
    model.load_state_dict(mixed)
    return model


def interpolation_sweep(evaluation: Evaluation, config: RunConfig, alphas: Sequence[float] | None = None,
                        base=None, tuned=None) -> list[dict[str, Any]]:
    """The primary metric on the test set and on the reference set at each alpha. alpha 0 and 1
    reuse the base's and the fine-tuned model's scores."""
    alphas = list(config.eval.interpolation_alphas if alphas is None else alphas)
    loaded = evaluation.loaded
    base = base if base is not None else loaded.get("base")
    tuned = tuned if tuned is not None else loaded.get("fine_tuned")
    task, reference = evaluation.task, evaluation.reference_task
    metric = PRIMARY_METRIC[task.shape]
    boot = Bootstrap.draw(task.n, 1, config.eval.confidence, config.seed)  # points only: no intervals needed
    rows = []
    for alpha in alphas:
        known = {0.0: "base", 1.0: "fine_tuned"}.get(float(alpha))
        if known:
            on_task = evaluation.scores[known].metrics[metric]["value"]
            on_reference = (evaluation.reference_scores[known].metrics["spearman_cosine"]["value"]
                            if evaluation.reference_scores else None)
        else:
            model = interpolate_models(base, tuned, float(alpha))
            on_task = score_model(task, model, boot, config.eval.batch_size, config.seed,
                                  config.eval.precision).metrics[metric]["value"]
            on_reference = None
            if reference is not None:
                reference_boot = Bootstrap.draw(reference.n, 1, config.eval.confidence, config.seed)
                on_reference = score_model(reference, model, reference_boot, config.eval.batch_size, config.seed,
                                           config.eval.precision).metrics["spearman_cosine"]["value"]
            del model
        rows.append({"alpha": float(alpha), "task": on_task, "reference": on_reference})
    evaluation.report["interpolation"] = rows
    return rows


def suggest_alpha(rows: list[dict[str, Any]], tolerance: float = 0.005) -> float | None:
    """The alpha that keeps the most general ability (reference) while staying within
    ``tolerance`` of the best task score; None without reference scores."""
    usable = [r for r in rows if r["task"] is not None and r["reference"] is not None]
    if not usable:
        return None
    best = max(r["task"] for r in usable)
    close = [r for r in usable if r["task"] >= best - tolerance]
    return max(close, key=lambda r: (r["reference"], r["task"]))["alpha"]


def interpolation_table(rows: list[dict[str, Any]], task_metric: str):
    import pandas as pd

    return pd.DataFrame(rows).rename(columns={"task": f"test {task_metric}", "reference": "reference spearman_cosine"})


def plot_interpolation(rows: list[dict[str, Any]], task_metric: str, path=None):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    alphas = [r["alpha"] for r in rows]
    ax.plot(alphas, [r["task"] for r in rows], marker="o", color="#2f6fde", label=f"test {task_metric}")
    if any(r["reference"] is not None for r in rows):
        ax.plot(alphas, [r["reference"] for r in rows], marker="s", color="#e0823d",
                label=f"reference ({REFERENCE_NAME}) spearman")
    ax.set_xlabel("alpha (0 = base weights, 1 = fine-tuned weights)")
    ax.set_ylabel("score")
    ax.legend(loc="best")
    ax.set_title("Weight interpolation: task vs general ability")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def save_final_model(run: RunDir, evaluation: Evaluation, alpha: float) -> Path:
    """Save the base/fine-tuned mix at ``alpha`` as model_final/ and record it in metrics.json."""
    model = interpolate_models(evaluation.loaded["base"], evaluation.loaded["fine_tuned"], alpha)
    target = run.root / FINAL_MODEL_DIR
    with atomic_directory(target) as tmp:
        model.save(str(tmp))
    row = next((r for r in evaluation.report.get("interpolation", []) if r["alpha"] == alpha), None)
    evaluation.report["final_model"] = {"alpha": alpha, "path": str(target), "scores": row}
    atomic_write_json(run.metrics_path, evaluation.report)
    return target


# --- doctor -------------------------------------------------------------------------------------


@dataclass
class Finding:
    check: str
    fired: bool
    message: str
    fix: str = ""


COLLAPSE_COSINE = 0.9  # mean pairwise cosine of distinct test texts above this: the space has collapsed
OVERFIT_DROP = 0.01  # the validation metric fell this far below its best while the training loss fell
MIN_TRAIN_ROWS = 500
MIN_IN_BATCH_BATCHES = 20  # in-batch-negative losses need many distinct batches to learn from


def mean_cosine_of_pairs(embeddings: np.ndarray) -> float:
    """Mean cosine similarity over all distinct pairs of rows (0 for fewer than two rows)."""
    unit = np.nan_to_num(np.asarray(embeddings, dtype=np.float64))
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    n = len(unit)
    if n < 2:
        return 0.0
    total = unit.sum(axis=0)
    # Sum over i != j of e_i . e_j = |sum e|^2 - sum |e_i|^2, without the n x n matrix.
    return float(total @ total - (unit * unit).sum()) / (n * (n - 1))


def _mean_pairwise_cosine(embeddings: np.ndarray, sample: int, seed: int) -> tuple[float, int]:
    if len(embeddings) > sample:
        embeddings = embeddings[np.random.default_rng(seed).choice(len(embeddings), sample, replace=False)]
    return mean_cosine_of_pairs(embeddings), len(embeddings)


def check_collapse(embeddings: np.ndarray, base_embeddings: np.ndarray | None = None,
                   threshold: float = COLLAPSE_COSINE, sample: int = 500, seed: int = 0) -> Finding:
    """Fires when the fine-tuned texts crowd together (high mean pairwise cosine) more than the
    base model's did: a space that was already that tight was not collapsed by the training."""
    mean, n = _mean_pairwise_cosine(embeddings, sample, seed)
    base = _mean_pairwise_cosine(base_embeddings, sample, seed)[0] if base_embeddings is not None else None
    fired = mean > threshold and (base is None or mean > base + 0.02)
    message = f"mean pairwise cosine of {n} test texts is {mean:.3f}"
    if base is not None:
        message += f" (base model: {base:.3f})"
    return Finding("collapsed embeddings", fired, message,
                   "lower the learning rate, check the loss fits the data (labels on the right scale), keep "
                   "train.collapse_threshold on to stop such runs early" if fired else "")


def check_overfitting(summary: dict[str, Any] | None, drop: float = OVERFIT_DROP) -> Finding:
    if not summary:
        return Finding("overfitting", False, "no training summary (training.json) to read")
    key, greater = summary["metric_for_best_model"], summary.get("greater_is_better", True)
    curve = [(e["step"], e[key]) for e in summary.get("log_history", []) if key in e]
    losses = [(e["step"], e["loss"]) for e in summary.get("log_history", []) if "loss" in e]
    if len(curve) < 2 or len(losses) < 2:
        return Finding("overfitting", False, f"too few validation points ({len(curve)}) to judge")
    values = np.array([v for _, v in curve], dtype=float)
    best_at = int(np.argmax(values) if greater else np.argmin(values))
    worsened = (values[best_at] - values[-1]) if greater else (values[-1] - values[best_at])
    best_step = curve[best_at][0]
    loss_at_best = [l for s, l in losses if s <= best_step] or [losses[0][1]]
    loss_fell = losses[-1][1] < loss_at_best[-1]
    fired = worsened > drop and loss_fell and best_at < len(values) - 1
    name = key.removeprefix("eval_")
    message = (f"{name} peaked at step {best_step} ({values[best_at]:.4f}) and ended at {values[-1]:.4f} while the "
               f"training loss kept falling" if fired else f"{name} ended within {drop} of its best")
    kept_best = summary.get("kept_checkpoint", summary.get("best_checkpoint")) == summary.get("best_checkpoint")
    kept = ("the best checkpoint was restored" if kept_best else
            "the last model was kept: on the validation split the best checkpoint was not better beyond the noise "
            "(train.restore_best)")
    return Finding("overfitting", fired, message,
                   f"{kept}; to spend less time past it, set train.early_stopping_patience, fewer train.epochs, "
                   "a lower train.learning_rate or more train.weight_decay" if fired else "")


def check_score_scale(task: TaskSet, similarity: np.ndarray | None = None) -> Finding:
    """Gold scores must be on the 0..1 scale the similarity losses compare cosines against."""
    if task.shape in ("pair_score", "unlabeled"):
        gold = task.items["score"].to_numpy(dtype=float)
        if gold.min() < 0 or gold.max() > 1:
            return Finding("score scale", True, f"gold scores span {gold.min():g}..{gold.max():g}, not 0..1",
                           "set data.score_scale to the data's range (e.g. [0, 5]) so scores are normalised")
        if similarity is not None and len(similarity) > 2 and np.ptp(gold) > 0:
            spread_ratio = float(np.ptp(similarity) / np.ptp(gold))
            if spread_ratio < 0.2:
                return Finding("score scale", True, f"cosines span only {np.ptp(similarity):.3f} of the gold scores' "
                               f"{np.ptp(gold):.3f}", "check the score scale and that the loss is a similarity loss")
        return Finding("score scale", False, f"gold scores within 0..1 ({gold.min():g}..{gold.max():g})")
    if task.shape == "pair_binary":
        labels = set(task.items["label"].astype(int))
        fired = not labels <= {0, 1}
        return Finding("score scale", fired, f"labels {sorted(labels)}" + (" are not 0/1" if fired else " are 0/1"),
                       "map the labels to 0 (different) and 1 (same)" if fired else "")
    return Finding("score scale", False, f"{task.shape} has no scores to scale")


def check_batch_duplicates(train, plan: dict[str, Any], batch_sampler: str) -> Finding:
    """In-batch-negative losses score every other row of a batch as a negative: a duplicate text in
    the same batch is then a false negative."""
    if not plan.get("in_batch_negatives"):
        return Finding("duplicates in in-batch-negative batches", False, "the loss does not use in-batch negatives")
    if batch_sampler == "no_duplicates":
        return Finding("duplicates in in-batch-negative batches", False,
                       "the no_duplicates batch sampler keeps duplicate texts out of a batch")
    columns = [c for c in ("anchor", "positive", "sentence1", "sentence2") if c in train.columns]
    duplicated = {c: int(train[c].duplicated().sum()) for c in columns}
    total = sum(duplicated.values())
    fired = total > 0
    return Finding("duplicates in in-batch-negative batches", fired,
                   (f"{total} repeated texts ({', '.join(f'{c}: {n}' for c, n in duplicated.items() if n)}) can share a "
                    f"batch under the {batch_sampler} sampler") if fired else "no repeated texts in the train split",
                   "set train.batch_sampler=no_duplicates (or auto)" if fired else "")


def check_data_size(n_train: int, loss_name: str, batch_size: int, in_batch_negatives: bool) -> Finding:
    needed = max(MIN_TRAIN_ROWS, MIN_IN_BATCH_BATCHES * batch_size if in_batch_negatives else 0)
    fired = n_train < needed
    return Finding("too little data for the loss", fired,
                   f"{n_train} train rows for {loss_name}" + (f"; it needs about {needed}" if fired else ""),
                   "add rows: data.augment (synonyms, back-translation), synthetic pairs, or unsupervised SimCSE on "
                   "unlabeled text; or a smaller train.batch_size" if fired else "")


def check_test_overlap(splits: dict[str, Any], shape: str) -> Finding:
    """Test items (or their texts) that also occur in train or validation inflate the test score."""
    from .data import cross_split_overlap

    overlap = cross_split_overlap(splits, shape)
    # A shared sentence between two different pairs is common (STS-B) and mild; a shared item, or a
    # shared query or text where the text is the whole item, is leakage.
    whole_item = shape in ("retrieval", "unlabeled")
    shared = {pair: info for pair, info in overlap.items()
              if pair.endswith("test") and (info["items"] or (whole_item and info["texts"]))}
    detail = "; ".join(f"{pair}: {info['items']} items and {info['texts']} texts shared"
                       + (f", e.g. {info['examples'][0]}" if info["examples"] else "") for pair, info in shared.items())
    texts = sum(info["texts"] for pair, info in overlap.items() if pair.endswith("test"))
    return Finding("test set overlaps training", bool(shared),
                   detail or f"no test item appears in train or validation ({texts} single texts are shared)",
                   "set data.remove_cross_split_overlap=true and re-run the data stage (or split by group)"
                   if shared else "")


def run_doctor(run: RunDir, config: RunConfig, evaluation: Evaluation | None = None) -> list[Finding]:
    """Every doctor check on a finished run."""
    from .data import load_split, read_report, split_shape

    report = read_report(run)
    plan = read_json(run.plan_path) if run.plan_path.is_file() else {}
    summary = read_json(run.training_summary_path) if run.training_summary_path.is_file() else None
    frames = {split: load_split(run, split).to_pandas() for split in ("train", "validation", "test")
              if run.split_path(split).is_file()}
    task = evaluation.task if evaluation else load_task(run, config)
    stored = load_embeddings(run) if (run.eval_dir / "embeddings.npz").is_file() else {}
    findings = []
    if "embeddings_fine_tuned" in stored:
        findings.append(check_collapse(stored["embeddings_fine_tuned"], stored.get("embeddings_base"), seed=config.seed))
    findings.append(check_overfitting(summary))
    similarity = evaluation.scores["fine_tuned"].pair_similarity if evaluation and task.shape in (
        "pair_score", "unlabeled") else None
    findings.append(check_score_scale(task, similarity))
    sampler = (summary or {}).get("batch_sampler") or config.train.batch_sampler
    if "train" in frames:
        findings.append(check_batch_duplicates(frames["train"], plan, sampler))
    loss_name = (plan.get("loss") or {}).get("name", config.loss.name)
    findings.append(check_data_size(len(frames.get("train", [])), loss_name, config.train.batch_size,
                                    bool(plan.get("in_batch_negatives"))))
    shape = split_shape(report, "test")
    findings.append(check_test_overlap({s: f for s, f in frames.items() if s != "train" or
                                        split_shape(report, "train") == shape}, shape))
    return findings


def doctor_table(findings: list[Finding]):
    import pandas as pd

    return pd.DataFrame([{"check": f.check, "status": "WARN" if f.fired else "ok", "finding": f.message,
                          "suggested fix": f.fix} for f in findings])


# --- several seeds ------------------------------------------------------------------------------


def seed_runs(run: RunDir) -> list[Path]:
    """Runs beside this one (same runs directory) with the same config but for the seed, that have
    finished evaluation, this one included."""
    from .config import load_config

    mine = run.load_config().to_dict()
    mine.pop("seed")
    found = []
    for other in sorted(run.root.parent.iterdir()):
        config_path, metrics_path = other / "config.yaml", other / "eval" / "metrics.json"
        if not (config_path.is_file() and metrics_path.is_file()):
            continue
        theirs = load_config(config_path).to_dict()
        theirs.pop("seed")
        if theirs == mine:
            found.append(other)
    return found


def seed_summary(run_roots: Sequence[Path]):
    """Mean ± sd over runs (seeds) of every model's metrics on the test set."""
    import pandas as pd

    rows = []
    for root in run_roots:
        report = read_json(Path(root) / "eval" / "metrics.json")
        seed = read_json(Path(root) / "manifest.json").get("seed") if (Path(root) / "manifest.json").is_file() else None
        for name, entry in report["models"].items():
            for metric, result in entry["metrics"].items():
                rows.append({"run": Path(root).name, "seed": seed, "model": name, "metric": metric,
                             "value": result["value"]})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    summary = frame.groupby(["model", "metric"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return summary.rename(columns={"std": "sd", "count": "seeds"})


def save_report(run: RunDir, evaluation: Evaluation) -> None:
    """Write metrics.json again (after the interpolation sweep added its rows)."""
    atomic_write_json(run.metrics_path, evaluation.report)
