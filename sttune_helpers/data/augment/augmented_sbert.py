"""Augmented SBERT (Thakur et al., 2021): a cross-encoder trained on the gold pairs labels
recombined pairs of the training sentences, and these silver pairs join the bi-encoder's training
data. As in sentence-transformers' examples/training/data_augmentation, the recombined pairs are
each sentence's top-k neighbours, by the base bi-encoder ("semantic") or by keyword overlap ("bm25").

:func:`train_cross_encoder` trains the labeller (sentence_transformers.cross_encoder, BCE on the
0..1 score or the 0/1 label); :func:`silver_pairs` samples, filters and labels the pairs with any
:class:`PairLabeler`, so that the sampling can be tested without training a model.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from ... import shapes
from ...config.schema import AugmentConfig
from ...core.errors import SettingError
from ..cleaning import normalise_text
from ..lexical import lexical_candidates, top_k_rows
from .common import AUGMENTATION_COLUMN, SOURCE_ROW_COLUMN, Augmented, check_frame, combine, make_report, with_tags

METHOD = "augmented_sbert"
SAMPLING_METHODS = ("semantic", "bm25")
SCORE_BINS = 5  # the silver score histogram in the report: [0, 0.2), ..., [0.8, 1]
MAX_SCORE_CELLS = 1 << 24  # similarity-matrix cells held at once in semantic sampling (float32: 64 MiB)


@runtime_checkable
class PairLabeler(Protocol):
    """Anything that scores text pairs in 0..1, one score per pair, in order (a CrossEncoder with a
    sigmoid head does)."""

    def predict(self, pairs: list[tuple[str, str]]) -> Sequence[float]:
        ...


def silver_label_kind(shape: str) -> str:
    """"score" or "binary": what a silver label of ``shape`` is; refuses a shape without labelled pairs."""
    kind = shapes.get(shape).silver_labels
    if kind is None:
        raise SettingError(f"data.augment.augmented_sbert labels recombined sentence pairs: it needs pair_score or "
                           f"pair_binary data, not {shape}")
    return kind


def gold_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows no augmentation step added: the cross-encoder learns from these and only their
    sentences are recombined."""
    if AUGMENTATION_COLUMN not in frame.columns:
        return frame
    return frame[frame[AUGMENTATION_COLUMN].fillna("").astype(str) == ""]


def _pair_key(first: str, second: str) -> tuple[str, str]:
    a, b = normalise_text(first), normalise_text(second)
    return (a, b) if a <= b else (b, a)


# --- the labeller ---------------------------------------------------------------------------------


def train_cross_encoder(frame: pd.DataFrame, shape: str, model_name: str, *,
                        epochs: float = AugmentConfig.cross_encoder_epochs,
                        batch_size: int = AugmentConfig.cross_encoder_batch_size,
                        learning_rate: float = AugmentConfig.cross_encoder_learning_rate, seed: int = 0,
                        device: str = "auto") -> tuple[Any, dict[str, Any]]:
    """A CrossEncoder (one sigmoid output) trained with BinaryCrossEntropyLoss on the gold rows of
    ``frame``: the 0..1 score of pair_score, the 0/1 label of pair_binary. Each pair is given in both
    orders, as a pair is unordered. ``model_name`` is any model sttune loads (a bi-encoder checkpoint
    gets a fresh classification head). Returns the model and what was trained, for the report."""
    import transformers
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from ...core.hardware import pick_device, pick_precision
    from ...modeling import resolve_model_source

    check_frame(frame, shape)
    label_column = shapes.get(shape).label_column
    silver_label_kind(shape)
    gold = gold_rows(frame)
    if gold.empty:
        raise SettingError("data.augment.augmented_sbert: the train split has no gold pairs to train the "
                           "cross-encoder on")
    first, second = gold["sentence1"].tolist(), gold["sentence2"].tolist()
    labels = gold[label_column].astype(float).tolist()
    source = resolve_model_source(model_name, key="data.augment.cross_encoder_model")
    device = pick_device(device)
    precision, _ = pick_precision("auto", device)
    transformers.set_seed(seed)  # the fresh head is drawn when the model is built, before the trainer seeds
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "classifier weights newly initialized": expected here
    try:
        model = CrossEncoder(source.location, num_labels=1, device=device, local_files_only=source.local_files_only)
    finally:
        transformers.logging.set_verbosity(verbosity)
    train = Dataset.from_dict({"sentence1": first + second, "sentence2": second + first, "label": labels + labels})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sttune-cross-encoder-") as output_dir:
        args = CrossEncoderTrainingArguments(
            output_dir=output_dir, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
            learning_rate=learning_rate, warmup_steps=0.1,  # a float below 1 is a ratio (transformers 5)
            bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device == "cpu", save_strategy="no",
            eval_strategy="no", report_to="none", logging_steps=10**9, disable_tqdm=True, seed=seed, data_seed=seed)
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=train, loss=BinaryCrossEntropyLoss(model))
        trainer.train()
    info = {"model": source.describe(), "train_pairs": len(gold), "epochs": epochs, "batch_size": batch_size,
            "learning_rate": learning_rate, "steps": int(trainer.state.global_step), "precision": precision,
            "seconds": round(time.perf_counter() - started, 1)}
    return model, info


def labeller_fit(labeler: PairLabeler, frame: pd.DataFrame, shape: str, threshold: float = 0.5) -> dict[str, Any]:
    """How well the labeller agrees with gold labels it did not train on (the validation split):
    Spearman of its scores for pair_score, accuracy at ``threshold`` for pair_binary."""
    from ...core.statistics import spearman

    kind = silver_label_kind(shape)
    if frame is None or frame.empty:
        return {}
    predicted = _checked_scores(labeler, list(zip(frame["sentence1"], frame["sentence2"])))
    gold = frame[shapes.get(shape).label_column].to_numpy(dtype=float)
    if kind == "score":
        return {"metric": "spearman", "value": float(spearman(predicted, gold)), "n": len(frame)}
    return {"metric": "accuracy", "value": float(np.mean((predicted >= threshold) == (gold >= 0.5))),
            "n": len(frame)}


def _checked_scores(labeler: PairLabeler, pairs: list[tuple[str, str]]) -> np.ndarray:
    if not pairs:
        return np.zeros(0)
    if not callable(getattr(labeler, "predict", None)):
        raise TypeError("the labeller needs a predict(pairs: list[tuple[str, str]]) -> scores method")
    scores = np.asarray(labeler.predict(pairs), dtype=float).reshape(-1)
    if len(scores) != len(pairs):
        raise ValueError(f"the labeller returned {len(scores)} scores for {len(pairs)} pairs; it must return one "
                         "per pair, in order")
    bad = np.flatnonzero(~np.isfinite(scores) | (scores < 0) | (scores > 1))
    if len(bad):
        raise ValueError(f"the labeller's score for pair {int(bad[0])} is {scores[bad[0]]!r}; silver labels must be "
                         "probabilities in 0..1 (a cross-encoder with a sigmoid head)")
    return scores


# --- the recombined pairs -------------------------------------------------------------------------


def neighbour_pairs(texts: Sequence[str], sampling: str, top_k: int, bi_encoder=None,
                    batch_size: int = 64) -> list[tuple[int, int]]:
    """Each text's ``top_k`` nearest other texts, as (i, j) with i < j, each unordered pair once, in
    the order found (text by text, nearest first). "semantic" ranks by the cosine of ``bi_encoder``'s
    embeddings; "bm25" by keyword overlap (texts sharing no word are never paired)."""
    if sampling not in SAMPLING_METHODS:
        raise SettingError(f"data.augment.augmented_sbert_sampling must be one of {', '.join(SAMPLING_METHODS)}, "
                           f"got {sampling!r}")
    if len(texts) < 2:
        return []
    k = min(top_k + 1, len(texts))  # +1: a text is its own nearest neighbour
    if sampling == "bm25":
        indices, _ = lexical_candidates(texts, texts, k, method="bm25")
    else:
        if bi_encoder is None:
            raise ValueError("semantic sampling needs the bi-encoder to embed the sentences")
        embeddings = np.asarray(bi_encoder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                                  convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)
        indices = np.empty((len(texts), k), dtype=np.int64)
        rows_per_chunk = max(1, MAX_SCORE_CELLS // len(texts))
        for start in range(0, len(texts), rows_per_chunk):
            scores = embeddings[start:start + rows_per_chunk] @ embeddings.T
            indices[start:start + len(scores)] = top_k_rows(scores, k)[0]
    pairs, seen = [], set()
    for i, row in enumerate(indices):
        for j in [int(j) for j in row if j >= 0 and j != i][:top_k]:
            pair = (min(i, j), max(i, j))
            if pair not in seen:
                seen.add(pair)
                pairs.append(pair)
    return pairs


def _distribution(kind: str, labels: np.ndarray, threshold: float) -> dict[str, Any]:
    if not len(labels):
        return {}
    if kind == "binary":
        return {"1": int((labels == 1).sum()), "0": int((labels == 0).sum()), "threshold": threshold}
    counts = np.histogram(labels, bins=SCORE_BINS, range=(0.0, 1.0))[0]
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    return {"mean": round(float(labels.mean()), 4), "min": round(float(labels.min()), 4),
            "max": round(float(labels.max()), 4),
            "histogram": {f"{low:.1f}-{high:.1f}": int(n) for low, high, n in zip(edges, edges[1:], counts)}}


def silver_pairs(frame: pd.DataFrame, shape: str, labeler: PairLabeler, *, sampling: str = "semantic",
                 top_k: int = 3, max_pairs: int | None = None, held_out_texts: Iterable[str] = (),
                 bi_encoder=None, threshold: float = 0.5, seed: int = 0) -> Augmented:
    """Add recombined pairs of the gold rows' sentences, labelled by ``labeler``, to ``frame``.

    The pool is the distinct sentences (ignoring case, punctuation and spacing) of the rows no
    augmentation step added, less every sentence that also occurs in ``held_out_texts`` (the
    validation and test splits' texts), so that no silver pair carries a held-out sentence. Each
    pooled sentence is paired with its ``top_k`` neighbours (:func:`neighbour_pairs`); a pair
    already in ``frame`` (either order) is dropped, and above ``max_pairs`` a seeded sample is kept.
    Labels: the labeller's probability for pair_score; for pair_binary 1 where it reaches
    ``threshold``, else 0. Added rows are tagged ``augmented_sbert`` with no source row.
    """
    check_frame(frame, shape)
    kind = silver_label_kind(shape)
    if top_k < 1:
        raise SettingError(f"data.augment.augmented_sbert_top_k must be at least 1, got {top_k}")
    if max_pairs is not None and max_pairs < 1:
        raise SettingError(f"data.augment.augmented_sbert_max_pairs must be at least 1 (or null), got {max_pairs}")
    if not 0.0 < threshold < 1.0:
        raise SettingError(f"data.augment.augmented_sbert_threshold must be in (0, 1), got {threshold}")
    tagged = with_tags(frame)
    held_out = {normalise_text(t) for t in held_out_texts}
    gold = gold_rows(tagged)
    pool: dict[str, str] = {}  # normalised -> the first spelling seen
    left_out: set[str] = set()
    for text in (*gold["sentence1"], *gold["sentence2"]):
        key = normalise_text(text)
        if not key:
            continue
        if key in held_out:
            left_out.add(key)
        else:
            pool.setdefault(key, text)
    texts = list(pool.values())
    existing = {_pair_key(a, b) for a, b in zip(tagged["sentence1"], tagged["sentence2"])}

    skipped = Counter()
    candidates = neighbour_pairs(texts, sampling, top_k, bi_encoder)
    fresh = [(texts[i], texts[j]) for i, j in candidates if _pair_key(texts[i], texts[j]) not in existing]
    skipped["already a pair in the train split"] = len(candidates) - len(fresh)
    if max_pairs is not None and len(fresh) > max_pairs:
        skipped["over augmented_sbert_max_pairs"] = len(fresh) - max_pairs
        keep = np.random.default_rng(seed).choice(len(fresh), size=max_pairs, replace=False)
        fresh = [fresh[i] for i in sorted(keep.tolist())]

    scores = _checked_scores(labeler, fresh)
    label_column = shapes.get(shape).label_column
    labels = scores if kind == "score" else (scores >= threshold).astype(int)
    added = pd.DataFrame({"sentence1": [a for a, _ in fresh], "sentence2": [b for _, b in fresh],
                          label_column: labels, AUGMENTATION_COLUMN: METHOD,
                          SOURCE_ROW_COLUMN: pd.array([pd.NA] * len(fresh), dtype="Int64")})
    settings = {"sampling": sampling, "top_k": top_k, "max_pairs": max_pairs, "seed": seed,
                **({"threshold": threshold} if kind == "binary" else {})}
    report = make_report(METHOD, len(tagged), len(added), skipped, settings, sentences_pooled=len(texts),
                         sentences_held_out=len(left_out), candidate_pairs=len(candidates),
                         silver_labels=_distribution(kind, np.asarray(labels, dtype=float), threshold))
    return Augmented(combine(tagged, added), report)

