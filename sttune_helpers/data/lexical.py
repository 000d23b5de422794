"""Keyword-overlap candidates for hard-negative mining: the corpus documents that share the most
(weighted) words with each anchor, by Okapi BM25 or TF-IDF cosine, computed in bounded chunks."""

from __future__ import annotations

from typing import Sequence

import numpy as np

LEXICAL_METHODS = ("bm25", "tfidf")

# Bound on similarity-matrix cells held at once (float32: 64 MiB).
MAX_SCORE_CELLS = 1 << 24
MAX_CHUNK_ROWS = 1024


def _bm25_document_weights(counts, k1: float, b: float):
    """Per (document, term) BM25 weights from a CSR count matrix, so that a query's score is a sum."""
    counts = counts.tocsr().astype(np.float64)
    n_docs = counts.shape[0]
    document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log1p((n_docs - document_frequency + 0.5) / (document_frequency + 0.5))
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    average_length = lengths.mean() if n_docs and lengths.mean() > 0 else 1.0
    rows = np.repeat(np.arange(n_docs), np.diff(counts.indptr))
    tf = counts.data
    counts.data = idf[counts.indices] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[rows] / average_length))
    return counts


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest entries of each row, best first."""
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


def lexical_candidates(anchors: Sequence[str], corpus: Sequence[str], top_k: int, method: str = "bm25", *,
                       k1: float = 1.5, b: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` corpus documents sharing the most (weighted) keywords with each anchor.

    method "bm25" (Okapi BM25 over word counts) or "tfidf" (cosine of TF-IDF vectors); the vocabulary
    and document frequencies come from the corpus. Returns ``(indices, scores)``, both shaped
    ``(len(anchors), min(top_k, len(corpus)))`` and sorted best first; where fewer documents share a
    term with the anchor the row is padded with index -1 and score 0.
    """
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    if method not in LEXICAL_METHODS:
        raise ValueError(f"method must be one of {LEXICAL_METHODS}, got method={method!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got top_k={top_k}")
    anchors, corpus = [str(a) for a in anchors], [str(d) for d in corpus]
    k = min(top_k, len(corpus))
    indices = np.full((len(anchors), k), -1, dtype=np.int64)
    scores = np.zeros((len(anchors), k), dtype=np.float32)
    if not anchors or not corpus:
        return indices, scores

    if method == "bm25":
        vectorizer = CountVectorizer()
        try:
            documents = _bm25_document_weights(vectorizer.fit_transform(corpus), k1, b)
        except ValueError:  # empty vocabulary: nothing can overlap
            return indices, scores
        queries = vectorizer.transform(anchors)
        queries.data[:] = 1.0  # a query term counts once, as in the usual BM25 sum over query terms
    else:
        vectorizer = TfidfVectorizer()
        try:
            documents = vectorizer.fit_transform(corpus)
        except ValueError:
            return indices, scores
        queries = vectorizer.transform(anchors)

    documents_t = documents.T.tocsc()
    rows_per_chunk = max(1, min(MAX_CHUNK_ROWS, MAX_SCORE_CELLS // max(1, len(corpus))))
    for start in range(0, len(anchors), rows_per_chunk):
        chunk = (queries[start:start + rows_per_chunk] @ documents_t).toarray().astype(np.float32)
        top_indices, top_scores = top_k_rows(chunk, k)
        top_indices[top_scores <= 0] = -1
        top_scores[top_scores <= 0] = 0.0
        indices[start:start + len(chunk)] = top_indices
        scores[start:start + len(chunk)] = top_scores
    return indices, scores
