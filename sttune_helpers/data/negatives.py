"""Hard-negative mining for the data stage.

Turns (anchor, positive) pairs into (anchor, positive, negative) triplets or (anchor, positive,
negative_1..n) tuples for contrastive losses. Two candidate sources can be mixed:

- embedding: ``sentence_transformers.util.mine_hard_negatives`` ranks the corpus by base-model
  similarity and applies its rank range and false-negative filters (relative/absolute margin to the
  positive score, max_score);
- lexical: BM25 or TF-IDF keyword overlap (:mod:`.lexical`), the "same words, different intent"
  negatives of FAQ matching, passed through the same false-negative filters using the same
  base-model scores.

The library drops filtered candidates silently; here they are reported (``MinedNegatives.rejected``)
so that likely false negatives (paraphrases of the positive) can be inspected. Explicit negatives
already in the data (label-0 pairs, the negative column of triplets) are kept and used first. Which
shapes can be mined, and from which columns, the shapes say (``mining_columns``).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence

import numpy as np
import pandas as pd

from .. import shapes
from ..core.errors import SettingError
from ..core.progress import Progress
from ..core.reporting import get_logger
from .lexical import LEXICAL_METHODS, MAX_CHUNK_ROWS, MAX_SCORE_CELLS, lexical_candidates, top_k_rows
from .problems import DataError

log = get_logger(__name__)

# The shapes that hold positive pairs to mine for.
MINEABLE_SHAPES = tuple(name for name, shape in shapes.REGISTRY.items() if shape.mining_columns is not None)
CANDIDATE_SOURCES = ("embedding", "lexical", "both")
SAMPLING_STRATEGIES = ("top", "random")
OUTPUT_FORMATS = ("triplet", "n-tuple")
# The order in which mine_hard_negatives applies its filters; a candidate is attributed to the first
# rule it breaks, as the library counts it.
REJECTION_RULES = ("absolute_margin", "relative_margin", "max_score")

# Where a chosen negative came from: the data, the embedding or lexical window, or below the window
# (fill_below_window).
NEGATIVE_SOURCES = ("explicit", "embedding", "lexical", "below_window")
CHOSEN_COLUMNS = ["anchor", "positive", "negative", "source", "positive_score", "negative_score", "rank"]
REJECTED_COLUMNS = ["anchor", "positive", "candidate", "candidate_score", "positive_score", "rule", "source",
                    "rank"]


@dataclass
class MinedNegatives:
    """The outcome of :func:`mine_negatives`.

    dataset: training rows, ``anchor, positive, negative`` (triplet) or ``anchor, positive,
        negative_1..negative_n`` (n-tuple).
    rejected: candidates in the rank window that the false-negative filters threw out, with the rule.
    stats: JSON-serialisable counts, score summaries, settings and timing (for data/report.json).
    chosen: one row per (anchor, positive, negative) in ``dataset`` with scores, source and rank,
        where rank is the negative's position among the anchor's non-positive candidates by base-model
        score (0 = most similar).
    positives: every (anchor, positive) pair with its base-model score.
    """

    dataset: pd.DataFrame
    rejected: pd.DataFrame
    stats: dict[str, Any]
    chosen: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHOSEN_COLUMNS))
    positives: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["anchor", "positive", "score"]))


# --------------------------------------------------------------------------------------------------
# Data shapes


def _check_shape(frame: pd.DataFrame, shape: str) -> shapes.TaskShape:
    if shape not in MINEABLE_SHAPES:
        raise ValueError(f"shape must be one of {sorted(MINEABLE_SHAPES)}, got shape={shape!r}")
    task = shapes.get(shape)
    missing = [column for column in task.columns if column not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing column(s) {missing} required by shape={shape!r}")
    return task


def _text_pairs(frame: pd.DataFrame, first: str, second: str, names: tuple[str, str]) -> pd.DataFrame:
    pairs = frame[[first, second]].dropna()
    pairs = pairs.astype(str)
    pairs.columns = list(names)
    return pairs.drop_duplicates().reset_index(drop=True)


def positive_pairs(frame: pd.DataFrame, shape: str) -> pd.DataFrame:
    """The (anchor, positive) pairs of a canonical frame, de-duplicated, columns ``anchor, positive``.

    pair_binary: the label-1 rows (sentence1 is the anchor); triplet and retrieval: anchor/positive.
    """
    task = _check_shape(frame, shape)
    return _text_pairs(task.mining_rows(frame, positive=True), *task.mining_columns, ("anchor", "positive"))


def explicit_negatives(frame: pd.DataFrame, shape: str) -> pd.DataFrame:
    """Negatives the data already states, columns ``anchor, negative``.

    pair_binary: the label-0 rows; triplet: the negative column; retrieval has none.
    """
    task = _check_shape(frame, shape)
    if task.stated_negative_columns is not None:
        return _text_pairs(task.mining_rows(frame, positive=False), *task.stated_negative_columns,
                           ("anchor", "negative"))
    return pd.DataFrame({"anchor": pd.Series(dtype=str), "negative": pd.Series(dtype=str)})


# --------------------------------------------------------------------------------------------------
# Mining


def _validate_settings(*, shape, candidates, num_negatives, range_min, range_max, relative_margin,
                       absolute_margin, max_score, sampling_strategy, output_format, lexical_method,
                       batch_size) -> None:
    if shape not in MINEABLE_SHAPES:
        raise ValueError(f"shape must be one of {sorted(MINEABLE_SHAPES)}, got shape={shape!r}")
    if candidates not in CANDIDATE_SOURCES:
        raise SettingError(f"candidates must be one of {CANDIDATE_SOURCES}, got candidates={candidates!r}")
    if not isinstance(num_negatives, (int, np.integer)) or num_negatives < 1:
        raise SettingError(f"num_negatives must be an integer >= 1, got num_negatives={num_negatives!r}")
    if not isinstance(range_min, (int, np.integer)) or range_min < 0:
        raise SettingError(f"range_min must be an integer >= 0, got range_min={range_min!r}")
    if not isinstance(range_max, (int, np.integer)) or range_min >= range_max:
        raise SettingError(f"range_min must be smaller than range_max, got range_min={range_min!r} and "
                           f"range_max={range_max!r}")
    if num_negatives > range_max - range_min:
        raise SettingError(f"num_negatives={num_negatives} does not fit in the rank window: only "
                           f"{range_max - range_min} candidates between range_min={range_min} and "
                           f"range_max={range_max}")
    if relative_margin is not None and not 0 <= relative_margin < 1:
        raise SettingError(f"relative_margin must be in [0, 1) or None, got relative_margin={relative_margin!r}")
    if absolute_margin is not None and not absolute_margin >= 0:
        raise SettingError(f"absolute_margin must be >= 0 or None, got absolute_margin={absolute_margin!r}")
    if max_score is not None and not math.isfinite(max_score):
        raise SettingError(f"max_score must be a finite number or None, got max_score={max_score!r}")
    if sampling_strategy not in SAMPLING_STRATEGIES:
        raise SettingError(f"sampling_strategy must be one of {SAMPLING_STRATEGIES}, "
                           f"got sampling_strategy={sampling_strategy!r}")
    if output_format not in OUTPUT_FORMATS:
        raise SettingError(f"output_format must be one of {OUTPUT_FORMATS}, got output_format={output_format!r}")
    if lexical_method not in LEXICAL_METHODS:
        raise SettingError(f"lexical_method must be one of {LEXICAL_METHODS}, got lexical_method={lexical_method!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise SettingError(f"batch_size must be an integer >= 1, got batch_size={batch_size!r}")


class VectorStore(Protocol):
    """Vectors kept between runs, keyed by the texts in order (scoring/embedding_cache.py's EmbeddingCache,
    for the model and the encoding settings)."""

    def get(self, texts: Sequence[str]) -> np.ndarray | None: ...

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None: ...


@contextlib.contextmanager
def _seeded_python_random(seed: int):
    """mine_hard_negatives samples with the global ``random`` module: seed it, then restore it."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _load_cached_embeddings(folder: str, n_queries: int, n_documents: int):
    """The embeddings mine_hard_negatives saved in ``cache_folder``, if they match the expected sizes."""
    query_files = glob.glob(os.path.join(folder, "query_embeddings_*.npy"))
    corpus_files = glob.glob(os.path.join(folder, "corpus_embeddings_*.npy"))
    if len(query_files) != 1 or len(corpus_files) != 1:
        return None
    queries, documents = np.load(query_files[0]), np.load(corpus_files[0])
    if len(queries) != n_queries or len(documents) != n_documents:
        return None
    return queries, documents


def _encode_options(batch_size: int) -> dict[str, Any]:
    # Same calls and normalisation as mine_hard_negatives, so scores match the library's.
    return dict(batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


def _document_vectors(model, documents: list[str], batch_size: int, store: VectorStore | None) -> np.ndarray:
    """The documents' vectors as mine_hard_negatives computes them (the same call on the same list),
    read from ``store`` where an earlier run kept them, and kept there otherwise."""
    vectors = store.get(documents) if store is not None else None
    if vectors is None:
        vectors = model.encode_document(documents, **_encode_options(batch_size))
        if store is not None:
            store.put(documents, vectors)
    return vectors


def _encode(model, anchors: list[str], documents: list[str], batch_size: int, store: VectorStore | None = None):
    return (model.encode_query(anchors, **_encode_options(batch_size)),
            _document_vectors(model, documents, batch_size, store))


def _library_corpus_file(folder: str, model, corpus: list[str]) -> str:
    """Where mine_hard_negatives, called without prompts, looks for its cached embeddings of ``corpus``
    in ``cache_folder`` (its own naming): a file there is read instead of encoding the corpus."""
    model_name = model.model_card_data.base_model or ""
    digest = hashlib.sha256(repr((model_name, None, None, corpus)).encode(), usedforsecurity=False).hexdigest()
    return os.path.join(folder, f"corpus_embeddings_{digest}.npy")


def _embedding_choices(pairs: pd.DataFrame, model, documents: list[str], document_index: dict[str, int],
                       anchor_index: dict[str, int], settings: dict[str, Any], num_negatives: int, seed: int,
                       store: VectorStore | None = None):
    """Run mine_hard_negatives; per anchor, its chosen documents (best first) and the embeddings it made
    (with a ``store``, the documents' come from it and reach the library through its cache folder)."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    # The library masks an anchor's positives but not the anchor's own text. Listing the anchor as one
    # more of its positives masks it too; the margin uses the lowest positive score, so is unchanged.
    self_pairs = [(a, a) for a in anchor_index if a in document_index]
    library_pairs = pairs
    if self_pairs:
        library_pairs = pd.concat([pairs, pd.DataFrame(self_pairs, columns=["anchor", "positive"])],
                                  ignore_index=True)
    with tempfile.TemporaryDirectory(prefix="sttune-negatives-") as cache, _seeded_python_random(seed):
        if store is not None:
            np.save(_library_corpus_file(cache, model, documents),
                    _document_vectors(model, documents, settings["batch_size"], store))
        mined = mine_hard_negatives(
            Dataset.from_pandas(library_pairs, preserve_index=False), model,
            anchor_column_name="anchor", positive_column_name="positive", corpus=documents,
            range_min=settings["range_min"], range_max=settings["range_max"],
            max_score=settings["max_score"], absolute_margin=settings["absolute_margin"],
            relative_margin=settings["relative_margin"] or None,  # 0 means the filter is off
            num_negatives=num_negatives, sampling_strategy=settings["sampling_strategy"],
            output_format="triplet", batch_size=settings["batch_size"], verbose=False,
            cache_folder=cache,  # so its embeddings can be reused for scoring, not recomputed
        )
        embeddings = _load_cached_embeddings(cache, len(anchor_index), len(documents))
    if embeddings is None:
        log.warning("mine_hard_negatives' cache folder did not hold one query and one corpus file (its file "
                    "naming may have changed); encoding again")
        embeddings = _encode(model, list(anchor_index), documents, settings["batch_size"], store)

    choices: dict[int, list[int]] = {}
    for anchor, negative in zip(mined["anchor"], mined["negative"]):
        chosen = choices.setdefault(anchor_index[anchor], [])
        doc = document_index[negative]
        if doc not in chosen:  # triplets repeat the same negatives once per positive
            chosen.append(doc)
    return choices, embeddings


def _rejection_codes(scores: np.ndarray, floor_positive: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """0 where a candidate passes the false-negative filters, else 1 + index of the first rule it breaks."""
    codes = np.zeros(scores.shape, dtype=np.int8)
    floor = floor_positive[:, None]
    absolute_margin, relative_margin, max_score = (settings[rule] for rule in REJECTION_RULES)
    breaks = (
        scores + absolute_margin > floor if absolute_margin is not None else None,
        scores > floor - np.abs(floor) * relative_margin if relative_margin else None,  # 0: off
        scores > max_score if max_score is not None else None,
    )
    for code, broken in enumerate(breaks, start=1):
        if broken is not None:
            codes[(codes == 0) & broken] = code
    return codes


def _ranks_in_rows(ascending: np.ndarray, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each (row, value): how many candidates of that row score higher (rows sorted ascending)."""
    ranks = np.zeros(len(rows), dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    boundaries = np.flatnonzero(np.diff(rows[order])) + 1
    for group in np.split(order, boundaries):
        if len(group):
            row = ascending[rows[group[0]]]
            ranks[group] = len(row) - np.searchsorted(row, values[group], side="right")
    return ranks


def _pick(candidates: list[int], count: int, strategy: str, rng: np.random.Generator) -> list[int]:
    if strategy == "top" or len(candidates) <= count:
        return candidates[:count]
    picked = rng.choice(len(candidates), size=count, replace=False)
    return [candidates[i] for i in sorted(picked)]  # keep the ranking order, as the library does


def _interleave(first: list[int], second: list[int]) -> list[int]:
    merged: list[int] = []
    for i in range(max(len(first), len(second))):
        for source in (first, second):
            if i < len(source) and source[i] not in merged:
                merged.append(source[i])
    return merged


def _summary(values: Iterable[float]) -> dict[str, float | None]:
    values = np.asarray(list(values), dtype=np.float64)
    if values.size == 0:
        return {"count": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"count": int(values.size), "mean": float(values.mean()), "median": float(np.median(values)),
            "min": float(values.min()), "max": float(values.max())}


def mine_negatives(frame: pd.DataFrame, shape: str, model, *, corpus: Sequence[str] | None = None,
                   candidates: str = "embedding", num_negatives: int = 1, range_min: int = 0,
                   range_max: int = 50, relative_margin: float | None = 0.05,
                   absolute_margin: float | None = None, max_score: float | None = None,
                   sampling_strategy: str = "top", output_format: str = "triplet",
                   lexical_method: str = "bm25", batch_size: int = 64, fill_below_window: bool = True,
                   seed: int = 42, store: VectorStore | None = None) -> MinedNegatives:
    """Add hard negatives to the positive pairs of ``frame`` (a canonical pair_binary/triplet/retrieval frame).

    corpus: extra candidate documents; the positives, and the explicit negatives of the data, always join it.
    candidates: "embedding" (mine_hard_negatives), "lexical" (keyword overlap, ``lexical_method`` bm25 or
        tfidf) or "both" (alternating embedding and lexical picks, embedding first).
    num_negatives: mined negatives per anchor. range_min/range_max: the rank window of candidates, as in
        mine_hard_negatives (ranks of the candidates that survive the filters; lexical candidates are
        ranked by lexical score). relative_margin (0 or None: off), absolute_margin, max_score: the
        library's false-negative filters, applied to lexical candidates too, with base-model scores.
    sampling_strategy: "top" or "random" (seeded by ``seed``) within the window.
    output_format: "triplet" (one row per negative; explicit negatives of the data kept as extra rows)
        or "n-tuple" (``negative_1..n``; explicit negatives fill the first slots).
    fill_below_window: an anchor whose window holds fewer than ``num_negatives`` candidates that pass
        the filters takes the best-scoring ones below ``range_max`` that pass them (source
        "below_window"). Without it, as in the library, its pairs get fewer negatives: in triplet
        format a pair without any has no row, in n-tuple format a pair short of ``num_negatives`` is
        dropped. Such anchors are often the ones the base model ranks worst, so dropping them loses
        the hardest training pairs; any pair left out is counted (``pairs_without_row``) and warned.
    store: where the candidate documents' vectors are kept between runs (the runs directory's embedding
        cache for this model, precision and batch size): a run on the same documents reads them instead
        of encoding them again; they are the vectors the library computes, so the negatives are the same.
    """
    started = time.perf_counter()
    _validate_settings(shape=shape, candidates=candidates, num_negatives=num_negatives, range_min=range_min,
                       range_max=range_max, relative_margin=relative_margin, absolute_margin=absolute_margin,
                       max_score=max_score, sampling_strategy=sampling_strategy, output_format=output_format,
                       lexical_method=lexical_method, batch_size=batch_size)
    settings = {"candidates": candidates, "num_negatives": int(num_negatives), "range_min": int(range_min),
                "range_max": int(range_max),
                "relative_margin": None if relative_margin is None else float(relative_margin),
                "absolute_margin": None if absolute_margin is None else float(absolute_margin),
                "max_score": None if max_score is None else float(max_score),
                "sampling_strategy": sampling_strategy, "output_format": output_format,
                "lexical_method": lexical_method, "batch_size": int(batch_size),
                "fill_below_window": bool(fill_below_window), "seed": int(seed)}

    pairs = positive_pairs(frame, shape)
    if pairs.empty:
        raise DataError(f"frame has no positive pairs for shape={shape!r}" + shapes.get(shape).no_positives_hint)
    stated = explicit_negatives(frame, shape)
    extra_documents = [] if corpus is None else [str(document) for document in corpus]
    # The same order mine_hard_negatives builds (corpus, then positives, de-duplicated), so that indices
    # into this list are indices into its corpus and its cached embeddings.
    documents = list(dict.fromkeys([*extra_documents, *stated["negative"], *pairs["positive"]]))
    document_index = {text: i for i, text in enumerate(documents)}
    anchor_index = {text: i for i, text in enumerate(dict.fromkeys(pairs["anchor"]))}
    anchors = list(anchor_index)
    n_anchors, n_documents = len(anchors), len(documents)
    mining = Progress("hard-negative mining", total=n_anchors, unit="anchors")
    mining.milestone(0, f"{n_anchors} anchors against {n_documents} documents ({candidates} candidates)")

    pair_anchor = pairs["anchor"].map(anchor_index).to_numpy()
    pair_document = pairs["positive"].map(document_index).to_numpy()
    # Never a negative: any positive of the anchor, or the anchor's own text.
    anchors_in_corpus = [a for a in anchors if a in document_index]
    excluded_anchor = np.concatenate([pair_anchor, np.array([anchor_index[a] for a in anchors_in_corpus],
                                                            dtype=np.int64)]).astype(np.int64)
    excluded_document = np.concatenate([pair_document, np.array([document_index[a] for a in anchors_in_corpus],
                                                                dtype=np.int64)]).astype(np.int64)
    excluded_codes = np.unique(excluded_anchor * n_documents + excluded_document)
    max_excluded = int(np.bincount(excluded_anchor, minlength=n_anchors).max())

    excluded = set(excluded_codes.tolist())
    stated_in = len(stated)
    stated = stated[stated["anchor"].isin(anchor_index)]  # a triplet needs the anchor's positive
    stated_choices: dict[int, list[int]] = {}
    for anchor, negative in zip(stated["anchor"], stated["negative"]):
        q, d = anchor_index[anchor], document_index[negative]
        if q * n_documents + d not in excluded:  # a label-0 row contradicting a label-1 row loses
            listed = stated_choices.setdefault(q, [])
            if d not in listed:
                listed.append(d)

    # Mined negatives must differ from the anchor's explicit ones, so the library is asked for that many
    # more (within its rank window) and the explicit ones are dropped from its picks.
    most_stated = max((len(listed) for listed in stated_choices.values()), default=0)
    library_negatives = min(num_negatives + most_stated, range_max - range_min)

    use_embedding = candidates in ("embedding", "both")
    use_lexical = candidates in ("lexical", "both")
    embedding_choices: dict[int, list[int]] = {}
    if use_embedding:
        embedding_choices, (anchor_embeddings, document_embeddings) = _embedding_choices(
            pairs, model, documents, document_index, anchor_index, settings, library_negatives, seed,
            store)
    else:
        anchor_embeddings, document_embeddings = _encode(model, anchors, documents, batch_size, store)
    if use_lexical:
        # Room for the excluded positives and anchor, so that range_max candidates remain.
        lexical_indices, _ = lexical_candidates(anchors, documents, range_max + max_excluded,
                                                method=lexical_method)

    import torch

    document_tensor = torch.as_tensor(document_embeddings)
    rng = np.random.default_rng(seed)
    positive_score = np.empty(len(pairs), dtype=np.float32)
    chosen_by_anchor: dict[int, list[tuple[int, str, float, int]]] = {}
    mined_count = np.zeros(n_anchors, dtype=np.int64)
    rejected_parts: list[pd.DataFrame] = []
    rows_per_chunk = max(1, min(MAX_CHUNK_ROWS, MAX_SCORE_CELLS // max(1, n_documents)))

    for start in range(0, n_anchors, rows_per_chunk):
        stop = min(start + rows_per_chunk, n_anchors)
        scores = model.similarity(torch.as_tensor(anchor_embeddings[start:stop]), document_tensor)
        scores = scores.float().cpu().numpy()

        in_chunk = (pair_anchor >= start) & (pair_anchor < stop)
        positive_score[in_chunk] = scores[pair_anchor[in_chunk] - start, pair_document[in_chunk]]
        # The margins compare with the anchor's lowest positive score, as mine_hard_negatives does.
        floor_positive = np.full(stop - start, np.inf, dtype=np.float32)
        np.minimum.at(floor_positive, pair_anchor[in_chunk] - start, positive_score[in_chunk])
        floor_pair = np.full(stop - start, -1, dtype=np.int64)
        for pair in np.flatnonzero(in_chunk):  # which positive that was, for the report
            row = pair_anchor[pair] - start
            if floor_pair[row] < 0 and positive_score[pair] == floor_positive[row]:
                floor_pair[row] = pair

        # Candidate scores: positives and the anchor itself can never be candidates.
        candidate_scores = scores.copy()
        code_in_chunk = (excluded_codes >= start * n_documents) & (excluded_codes < stop * n_documents)
        chunk_codes = excluded_codes[code_in_chunk] - start * n_documents
        candidate_scores[chunk_codes // n_documents, chunk_codes % n_documents] = -np.inf
        ascending = np.sort(candidate_scores, axis=1)

        def rejected_frame(rows, documents_at, scores_at, codes_at, source, start=start, floor_pair=floor_pair,
                           floor_positive=floor_positive, ascending=ascending):
            return pd.DataFrame({
                "anchor": [anchors[start + r] for r in rows],
                "positive": pairs["positive"].to_numpy()[floor_pair[rows]],
                "candidate": [documents[d] for d in documents_at],
                "candidate_score": scores_at.astype(np.float64),
                "positive_score": floor_positive[rows].astype(np.float64),
                "rule": [REJECTION_RULES[c - 1] for c in codes_at],
                "source": source,
                "rank": _ranks_in_rows(ascending, rows, scores_at),
            })

        if use_embedding:
            window, window_scores = top_k_rows(candidate_scores, min(range_max, n_documents))
            codes = _rejection_codes(window_scores, floor_positive, settings)
            codes[~np.isfinite(window_scores)] = 0
            rows, cols = np.nonzero(codes)
            rejected_parts.append(rejected_frame(rows, window[rows, cols], window_scores[rows, cols],
                                                 codes[rows, cols], "embedding"))

        lexical_choices: dict[int, list[int]] = {}
        if use_lexical:
            indices = lexical_indices[start:stop]
            valid = indices >= 0
            valid &= ~np.isin(np.arange(start, stop)[:, None] * n_documents + indices, excluded_codes)
            valid &= np.cumsum(valid, axis=1) <= range_max  # the window: the top range_max by lexical score
            model_scores = np.take_along_axis(scores, np.where(valid, indices, 0), axis=1)
            codes = _rejection_codes(model_scores, floor_positive, settings)
            codes[~valid] = 0
            rows, cols = np.nonzero(codes)
            rejected_parts.append(rejected_frame(rows, indices[rows, cols], model_scores[rows, cols],
                                                 codes[rows, cols], "lexical"))
            survivors = valid & (codes == 0)
            for row in range(stop - start):
                # As in mine_hard_negatives, range_min skips the best candidates that passed the filters.
                stated_documents = stated_choices.get(start + row, [])
                kept = [d for d in indices[row][survivors[row]].tolist() if d not in stated_documents][range_min:]
                if kept:
                    lexical_choices[row] = _pick(kept, num_negatives, sampling_strategy, rng)

        for row in range(stop - start):
            q = start + row
            stated_documents = stated_choices.get(q, [])
            embedding_documents = _pick([d for d in embedding_choices.get(q, []) if d not in stated_documents],
                                        num_negatives, sampling_strategy, rng)
            mined = _interleave(embedding_documents, lexical_choices.get(row, []))[:num_negatives]
            mined_count[q] = len(mined)
            below = []
            if fill_below_window and len(mined) < num_negatives:
                below = _below_window(candidate_scores[row], floor_positive[row], settings,
                                      {*stated_documents, *mined}, num_negatives - len(mined))
            picked = [(d, "explicit") for d in stated_documents]
            picked += [(d, "embedding" if d in embedding_documents else "lexical") for d in mined]
            picked += [(d, "below_window") for d in below]
            if not picked:
                continue
            picked_scores = scores[row, [d for d, _ in picked]]
            ranks = _ranks_in_rows(ascending, np.full(len(picked), row), picked_scores)
            chosen_by_anchor[q] = [(int(d), source, float(score), int(rank))
                                   for (d, source), score, rank in zip(picked, picked_scores, ranks)]

    # Assemble the training rows, one group per (anchor, positive) pair, in the data's order.
    dataset_rows, chosen_rows, pairs_without_row = [], [], 0
    for pair, (anchor, positive) in enumerate(zip(pairs["anchor"], pairs["positive"])):
        negatives = chosen_by_anchor.get(anchor_index[anchor], [])
        if not negatives or (output_format == "n-tuple" and len(negatives) < num_negatives):
            pairs_without_row += 1
            continue
        if output_format == "n-tuple":
            negatives = negatives[:num_negatives]
            dataset_rows.append([anchor, positive, *(documents[d] for d, *_ in negatives)])
        else:
            dataset_rows.extend([anchor, positive, documents[d]] for d, *_ in negatives)
        chosen_rows.extend([anchor, positive, documents[d], source, float(positive_score[pair]), score, rank]
                           for d, source, score, rank in negatives)

    negative_columns = (["negative"] if output_format == "triplet"
                        else [f"negative_{i}" for i in range(1, num_negatives + 1)])
    dataset = pd.DataFrame(dataset_rows, columns=["anchor", "positive", *negative_columns])
    chosen = pd.DataFrame(chosen_rows, columns=CHOSEN_COLUMNS)
    rejected = _merge_rejected(rejected_parts)
    positives = pairs.assign(score=positive_score.astype(np.float64))

    anchors_with_negative = chosen["anchor"].nunique()
    stats = {
        "shape": shape,
        "anchors_in": n_anchors,
        "pairs_in": int(len(pairs)),
        "explicit_negatives_in": int(sum(len(v) for v in stated_choices.values())),
        "explicit_negatives_without_positive": int(stated_in - len(stated)),
        "corpus_size": n_documents,
        "rows_out": int(len(dataset)),
        "negatives_out": int(len(chosen)),
        "negatives_by_source": {source: int((chosen["source"] == source).sum()) for source in NEGATIVE_SOURCES},
        "anchors_with_negative": int(anchors_with_negative),
        "anchors_without_negative": int(n_anchors - anchors_with_negative),
        "anchors_short_of_mined": int((mined_count < num_negatives).sum()),
        "anchors_filled_below_window": int(chosen.loc[chosen["source"] == "below_window", "anchor"].nunique()),
        "pairs_without_row": pairs_without_row,
        "rejected": {**{rule: int((rejected["rule"] == rule).sum()) for rule in REJECTION_RULES},
                     "total": int(len(rejected))},
        "positive_score": _summary(positives["score"]),
        "negative_score": _summary(chosen["negative_score"]),
        "rejected_score": _summary(rejected["candidate_score"]),
        "settings": settings,
        "seconds": round(time.perf_counter() - started, 3),
    }
    mining.end(n_anchors, f"{len(chosen)} negatives for {anchors_with_negative} anchors")
    if stated_in > len(stated):
        log.warning(f"hard negatives: {stated_in - len(stated)} of {stated_in} stated negatives (pair_binary: label-0 "
                    "rows) have no positive pair for their anchor, so a triplet has no place for them and they "
                    "leave training; data.negatives.enabled: false keeps every labelled pair for a pairwise loss")
    if pairs_without_row:
        log.warning(f"hard negatives: {pairs_without_row} of {len(pairs)} (anchor, positive) pairs are left out "
                    f"of training: no{' ' + str(num_negatives) if output_format == 'n-tuple' else ''} candidate "
                    f"negative passes the false-negative filters"
                    + ("" if fill_below_window else " within the rank window (data.negatives.fill_below_window "
                       "would search below it)"))
    return MinedNegatives(dataset=dataset, rejected=rejected, stats=stats, chosen=chosen, positives=positives)


def _below_window(scores: np.ndarray, floor_positive: float, settings: dict[str, Any], taken: set[int],
                  count: int) -> list[int]:
    """Up to ``count`` documents ranked below the window (``range_max`` and lower, by base-model score;
    excluded documents score -inf) that pass the false-negative filters and are not ``taken``, best first."""
    order = np.argsort(-scores, kind="stable")[settings["range_max"]:]
    order = order[np.isfinite(scores[order])]
    passing = order[_rejection_codes(scores[order][None, :], np.array([floor_positive]), settings)[0] == 0]
    return [int(d) for d in passing if int(d) not in taken][:count]


def _merge_rejected(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per (anchor, candidate); a candidate found by both sources is marked "embedding+lexical"."""
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame(columns=REJECTED_COLUMNS).astype({"candidate_score": float, "positive_score": float})
    rejected = pd.concat(parts, ignore_index=True)
    found_twice = rejected.duplicated(["anchor", "candidate"], keep=False)
    if found_twice.any():
        first = found_twice & ~rejected.duplicated(["anchor", "candidate"], keep="first")
        rejected.loc[first, "source"] = "embedding+lexical"
        rejected = rejected.drop_duplicates(["anchor", "candidate"], keep="first")
    return rejected.sort_values(["anchor", "candidate_score"], ascending=[True, False],
                                kind="stable").reset_index(drop=True)[REJECTED_COLUMNS]

