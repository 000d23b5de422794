"""Evaluation stage: base vs fine-tuned on the held-out test split, with bootstrap intervals.

``eval/metrics.json`` (one schema for every task shape)::

    {"task": shape, "primary_metric": name, "n_test": int, "confidence": 0.95, "bootstrap_samples": int,
     "models": {NAME: {"path": str, "metrics": {METRIC: {"value": v, "ci95": [lo, hi]}}}},
     "comparisons": [{"a": NAME, "b": NAME, "metric": METRIC, "difference": a - b,
                      "ci95": [lo, hi], "p_value": p}],
     "reference": {}}

``models.base`` and ``models.fine_tuned`` are always present. Intervals are percentile bootstrap
intervals over test items; each comparison is a paired bootstrap (the same resampled items for
both models), with a two-sided p-value for "no difference".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pathlib import Path

import numpy as np

from .config import RunConfig
from .rundir import RunDir, atomic_write_json, give_ordinary_mode

PRIMARY_METRIC = {"pair_score": "spearman_cosine"}
METRICS = {"pair_score": ("spearman_cosine", "pearson_cosine")}
SCHEMA_KEYS = ("task", "primary_metric", "n_test", "models", "comparisons", "reference")
# The validation metric that early stopping follows during training, per shape of the validation
# split, as the sentence-transformers evaluator names it. Shapes without an embedding evaluator
# (pair_class, unlabeled) follow the validation loss.
VALIDATION_METRIC = {"pair_score": "spearman_cosine", "pair_binary": "cosine_ap", "triplet": "cosine_accuracy",
                     "retrieval": "cosine_ndcg@10", "pair_class": "loss", "unlabeled": "loss"}
LOWER_IS_BETTER = {"loss"}


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
    import json

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

    def interval(self, values: np.ndarray) -> list[float]:
        tail = (1 - self.confidence) / 2 * 100
        return [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))]


def pair_score_metrics(similarities: np.ndarray, gold: np.ndarray, boot: Bootstrap) -> tuple[dict, dict]:
    """Point estimates with intervals, and the bootstrap distribution of each metric."""
    summary, distributions = {}, {}
    for name, fn in PAIR_SCORE_METRICS.items():
        value = float(fn(similarities, gold))
        resampled = fn(similarities[boot.indices], gold[boot.indices])
        distributions[name] = resampled
        summary[name] = {"value": value, "ci95": boot.interval(resampled)}
    return summary, distributions


def paired_comparison(a: str, b: str, metric: str, values: dict[str, dict], dists: dict[str, dict],
                      boot: Bootstrap) -> dict[str, Any]:
    differences = dists[a][metric] - dists[b][metric]
    samples = len(differences)
    # Two-sided: how often the resampled difference falls on the other side of zero.
    below = (np.sum(differences <= 0) + 1) / (samples + 1)
    above = (np.sum(differences >= 0) + 1) / (samples + 1)
    return {
        "a": a,
        "b": b,
        "metric": metric,
        "difference": values[a][metric]["value"] - values[b][metric]["value"],
        "ci95": boot.interval(differences),
        "p_value": float(min(1.0, 2 * min(below, above))),
    }


# --- the stage -------------------------------------------------------------------------------


def cosine_pairs(model, sentences1: list[str], sentences2: list[str], batch_size: int) -> tuple[np.ndarray, dict]:
    """Cosine similarity of each pair, and the embedding of each distinct sentence."""
    unique = list(dict.fromkeys([*sentences1, *sentences2]))
    embeddings = model.encode(unique, batch_size=batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
    index = {s: i for i, s in enumerate(unique)}
    left = embeddings[[index[s] for s in sentences1]]
    right = embeddings[[index[s] for s in sentences2]]
    return np.sum(left * right, axis=1), {"sentences": unique, "embeddings": embeddings}


def evaluate_models(run: RunDir, config: RunConfig, models: dict[str, str]) -> dict[str, Any]:
    """Evaluate each named model path on the test split; write metrics.json and embeddings."""
    from .data import load_split
    from .modeling import load_model, resolve_model_source

    shape = config.data.shape
    if shape != "pair_score":
        raise ValueError(f"evaluation of task shape {shape!r} is not supported yet")
    test = load_split(run, "test")
    gold = np.asarray(test["score"], dtype=float)
    boot = Bootstrap.draw(len(test), config.eval.bootstrap_samples, config.eval.confidence, config.seed)
    report: dict[str, Any] = {
        "task": shape,
        "primary_metric": PRIMARY_METRIC[shape],
        "n_test": len(test),
        "confidence": config.eval.confidence,
        "bootstrap_samples": config.eval.bootstrap_samples,
        "models": {},
        "comparisons": [],
        "reference": {},
    }
    distributions: dict[str, dict] = {}
    embeddings: dict[str, np.ndarray] = {}
    sentences: list[str] = []
    for name, path in models.items():
        model = load_model(path, device=config.model.device, max_seq_length=config.model.max_seq_length)
        similarities, encoded = cosine_pairs(model, list(test["sentence1"]), list(test["sentence2"]),
                                             config.eval.batch_size)
        metrics, distributions[name] = pair_score_metrics(similarities, gold, boot)
        report["models"][name] = {"path": resolve_model_source(path).location, "metrics": metrics}
        embeddings[name] = encoded["embeddings"]
        sentences = encoded["sentences"]
    values = {name: entry["metrics"] for name, entry in report["models"].items()}
    for name in models:
        if name != "base":
            for metric in METRICS[shape]:
                report["comparisons"].append(paired_comparison(name, "base", metric, values, distributions, boot))

    run.eval_dir.mkdir(parents=True, exist_ok=True)
    save_embeddings(run, sentences, embeddings, test)
    atomic_write_json(run.metrics_path, report)
    return report


def save_embeddings(run: RunDir, sentences: list[str], embeddings: dict[str, np.ndarray], test) -> None:
    """Keep the test embeddings so the visualisation stage need not encode again."""
    import os
    import tempfile

    # The score of the first pair each sentence appears in colours it in the embedding maps.
    first_score: dict[str, float] = {}
    for s1, s2, score in zip(test["sentence1"], test["sentence2"], test["score"]):
        first_score.setdefault(s1, score)
        first_score.setdefault(s2, score)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=run.eval_dir)
    os.close(fd)
    np.savez(tmp, sentences=np.array(sentences, dtype=object), scores=np.array([first_score[s] for s in sentences]),
             **{f"embeddings_{name}": value for name, value in embeddings.items()})
    give_ordinary_mode(Path(tmp))
    os.replace(tmp, run.eval_dir / "embeddings.npz")


def load_embeddings(run: RunDir) -> dict[str, np.ndarray]:
    path = run.eval_dir / "embeddings.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run stage evaluation (04_evaluation.ipynb) first")
    with np.load(path, allow_pickle=True) as data:
        return {key: data[key] for key in data.files}


def metrics_table(report: dict[str, Any]):
    import pandas as pd

    rows = []
    for name, entry in report["models"].items():
        for metric, result in entry["metrics"].items():
            low, high = result["ci95"]
            rows.append({"model": name, "metric": metric, "value": result["value"], "ci95_low": low, "ci95_high": high})
    return pd.DataFrame(rows)


def comparisons_table(report: dict[str, Any]):
    import pandas as pd

    return pd.DataFrame([{**c, "ci95_low": c["ci95"][0], "ci95_high": c["ci95"][1]} for c in report["comparisons"]]
                        ).drop(columns="ci95")


def plot_comparison(report: dict[str, Any], path=None):
    """Bar plot of the primary metric per model with its interval; saved when ``path`` is given."""
    import matplotlib.pyplot as plt

    metric = report["primary_metric"]
    names = list(report["models"])
    values = [report["models"][n]["metrics"][metric]["value"] for n in names]
    lows = [v - report["models"][n]["metrics"][metric]["ci95"][0] for n, v in zip(names, values)]
    highs = [report["models"][n]["metrics"][metric]["ci95"][1] - v for n, v in zip(names, values)]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bars = ax.bar(names, values, yerr=[lows, highs], capsize=6, color=["#9aa5b1", "#2f6fde", "#e0823d"][: len(names)])
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.4f}", (bar.get_x() + bar.get_width() / 2, value), ha="left",
                    va="center", xytext=(10, 0), textcoords="offset points")  # beside the error bar
    floor = min(v - l for v, l in zip(values, lows))
    ax.set_ylim(max(0.0, floor - 0.05), min(1.0, max(v + h for v, h in zip(values, highs)) + 0.05))
    ax.set_ylabel(metric)
    ax.set_title(f"{report['task']}: test {metric} (n={report['n_test']}, {int(report['confidence'] * 100)}% CI)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
