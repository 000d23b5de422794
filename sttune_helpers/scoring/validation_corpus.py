"""The validation split's sub-corpus for retrieval (train.validation_corpus_size): every document
relevant to a validation query plus distractors mined with the base model, each query's
top-ranked documents in turn. Random distractors misranked models on SQuAD, whose hard competitors
are the other paragraphs of the same article; mined ones kept the whole corpus's order on SciFact
and SQuAD from 5x the relevant documents (bench/RESULTS.md, session 15).

The data stage mines it once and keeps the document ids in the run's data folder, so that
training's evaluator and model selection rank against the same documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np

from ..core.io import atomic_write_json
from ..rundir import RunDir

FILE_NAME = "validation_corpus.json"
# "auto": this many times the validation queries' relevant documents, and at least the floor.
AUTO_PER_RELEVANT = 5
AUTO_MIN_DOCUMENTS = 1000
QUERY_CHUNK = 256  # queries ranked at a time: bounds the similarity matrix's memory


def resolved_size(setting: int | Literal["auto"] | None, n_relevant: int) -> int | None:
    """The number of documents ``setting`` (train.validation_corpus_size) asks for; None: all."""
    if setting == "auto":
        return max(AUTO_MIN_DOCUMENTS, AUTO_PER_RELEVANT * n_relevant)
    return setting


def path(run: RunDir) -> Path:
    return run.data_dir / FILE_NAME


def mined_documents(doc_ids: Sequence[str], rankings: np.ndarray, relevant: set[str], size: int) -> list[str]:
    """The relevant documents plus the distractors: rank 1 of every query's ranking (rows of indices
    into ``doc_ids``, best first), then rank 2, ... until ``size`` documents; in the corpus's order."""
    keep = set(relevant) & set(doc_ids)
    for rank in range(rankings.shape[1] if rankings.ndim == 2 else 0):
        for index in rankings[:, rank]:
            if len(keep) >= size:
                return [d for d in doc_ids if d in keep]
            keep.add(doc_ids[index])
    return [d for d in doc_ids if d in keep]


def top_rankings(query_vectors: np.ndarray, doc_vectors: np.ndarray, depth: int) -> np.ndarray:
    """Each query's ``depth`` most similar documents (indices, best first); normalised vectors."""
    depth = min(depth, len(doc_vectors))
    rows = []
    for start in range(0, len(query_vectors), QUERY_CHUNK):
        similarity = query_vectors[start:start + QUERY_CHUNK] @ doc_vectors.T
        top = np.argpartition(-similarity, depth - 1, axis=1)[:, :depth]
        order = np.take_along_axis(similarity, top, axis=1).argsort(axis=1)[:, ::-1]
        rows.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, depth), dtype=int)


def mine(corpus: dict[str, str], queries: dict[str, str], relevant: dict[str, set[str]], size: int,
         encode: Callable[[list[str]], np.ndarray]) -> list[str]:
    """The sub-corpus of ``size`` documents, with ``encode`` (the base model's normalised vectors)."""
    doc_ids = list(corpus)
    needed = {d for wanted in relevant.values() for d in wanted if d in corpus}
    query_ids = [q for q in relevant if q in queries]
    # Documents first, as the evaluation stage encodes them: the embedding cache then serves it the base's.
    doc_vectors = encode([corpus[d] for d in doc_ids])
    query_vectors = encode([queries[q] for q in query_ids])
    # Each query's share of the distractors, past its own relevant documents; deeper where queries
    # share their top documents (paragraphs of one article), until the size is reached.
    depth = max(1, -(-(size - len(needed)) // max(1, len(query_ids)))
                + max((len(relevant[q]) for q in query_ids), default=0))
    while True:
        documents = mined_documents(doc_ids, top_rankings(query_vectors, doc_vectors, depth), needed, size)
        if len(documents) >= size or depth >= len(doc_ids):
            return documents
        depth *= 2


def save(run: RunDir, setting: int | str | None, documents: list[str], info: dict[str, Any]) -> None:
    atomic_write_json(path(run), {"setting": setting, "documents": documents, **info})


def read(run: RunDir, setting: int | str | None) -> list[str] | None:
    """The mined documents, where the data stage mined them for this ``setting``; else None."""
    try:
        kept = json.loads(path(run).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kept.get("documents") if kept.get("setting") == setting else None
