"""The items a model is scored on: the run's test split as a TaskSet (with what its shape's scoring
needs: validation thresholds, a probe's train sample, a corpus); a shape without test labels gets the
general-ability reference's STS part (scoring/reference.py)."""

from __future__ import annotations

import json
from typing import Literal

from .. import shapes
from ..config import RunConfig
from ..data import load_split, read_report
from ..rundir import RunDir
from . import validation_corpus
from .errors import EvaluationError
from .reference import sts_reference
from .taskset import TaskSet, sub_corpus

__all__ = ["TaskSet", "load_task", "retrieval_tables", "sub_corpus"]  # TaskSet is re-exported: callers import it here


def retrieval_tables(run: RunDir, split: str, corpus_size: int | Literal["auto"] | None = None,
                     seed: int = 0) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """Corpus, the split's queries, and their relevant documents, from the data stage's files.
    ``corpus_size`` (train.validation_corpus_size, for the validation split) cuts the corpus with
    :func:`validation_sub_corpus`; None keeps it whole."""

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
    return (validation_sub_corpus(run, corpus, relevant, corpus_size, seed), {q: all_queries[q] for q in relevant},
            relevant)


def validation_sub_corpus(run: RunDir, corpus: dict[str, str], relevant: dict[str, set[str]],
                          setting: int | Literal["auto"] | None, seed: int) -> dict[str, str]:
    """``corpus`` cut as train.validation_corpus_size (``setting``) asks: to the documents the data stage
    or training mined for that setting (scoring/validation_corpus.py); without them (a run prepared by an
    older version), a size draws random distractors with ``seed`` and "auto" keeps the whole corpus,
    where random distractors could misrank models."""
    if setting is None:
        return corpus
    mined = validation_corpus.read(run, setting)
    if mined is not None:
        keep = set(mined)
        return {d: text for d, text in corpus.items() if d in keep}
    return corpus if setting == "auto" else sub_corpus(corpus, relevant, setting, seed)


def validation_corpus_size(config: RunConfig, split: str) -> int | Literal["auto"] | None:
    """The corpus size a retrieval ``split`` is scored with: train.validation_corpus_size for the
    validation split (training's evaluator and model selection agree), the whole corpus otherwise."""
    return config.train.validation_corpus_size if split == "validation" else None


def load_task(run: RunDir, config: RunConfig, split: str = "test") -> TaskSet:
    """The run's test split (or ``split``) as a TaskSet; unlabeled data (no test labels) gets the
    report half's STS reference part."""
    report = read_report(run)
    shape = shapes.get(report["shape"])
    if shape.measured_on_reference:
        task = sts_reference(run, config, "report")
        task.shape = shape.name
        task.viz_texts = list(dict.fromkeys(load_split(run, "test")["text"]))
        return task
    test = load_split(run, split).to_pandas()
    if len(test) == 0:
        raise EvaluationError(f"{run.split_path(split)} has no rows: the {split} split is empty; give "
                              f"data.{split}_fraction or a {split} file")
    if shape.uses_corpus:
        corpus, queries, relevant = retrieval_tables(run, split, validation_corpus_size(config, split), config.seed)
        ids = list(relevant)
        import pandas as pd

        items = pd.DataFrame({"query_id": ids, "query": [queries[q] for q in ids],
                              "relevant": [" | ".join(corpus[d][:80] for d in sorted(relevant[q])) for q in ids]})
        return TaskSet(shape.name, split, items, corpus=corpus, relevant=[relevant[q] for q in ids])
    task = TaskSet(shape.name, split, test)
    if shape.gold == "score":
        task.score_range = tuple(report.get("score_scale", {}).get("original", (0.0, 1.0)))
    if shape.thresholds_from_validation:
        task.validation = load_split(run, "validation").to_pandas()
    if shape.probe_on_train:
        task.labels = (report.get("labels") or {}).get("names")
        train = load_split(run, "train").to_pandas()
        train = train[[c for c in ("sentence1", "sentence2", "label") if c in train.columns]].dropna()
        if len(train) > config.eval.probe_train_rows:
            train = train.sample(n=config.eval.probe_train_rows, random_state=config.seed)
        task.train = train
    return task
