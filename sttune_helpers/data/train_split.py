"""The train split's extras, applied after :func:`prepare_data`: the configured augmentation and
hard-negative mining. Each records its report in the data report and may change the train split's
shape (``train_shape``); validation and test stay as they are."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import shapes
from ..config import AugmentConfig, DataConfig, NegativesConfig
from ..core.hardware import encoding_precision
from . import augment, negatives
from .detection import output_columns
from .prepare import PreparedData
from .problems import DataError


def augment_train(prepared: PreparedData, config: DataConfig, seed: int, model_name: str = "default",
                  device: str = "auto") -> list[dict]:
    """Apply the configured augmentation to the train split only (validation and test stay as
    they are) and record each step's report; returns the reports."""
    settings = config.augment
    shape = prepared.train_shape
    train = prepared.splits["train"]
    provenance = train[[c for c in train.columns if c.startswith("_")]]
    frame = train[output_columns(train, shape)].reset_index(drop=True)
    reports = []
    if settings.rules:
        result = augment.synthesize_pairs(frame, shape, settings.rules, max_pairs_per_rule=settings.max_pairs_per_rule,
                                          seed=seed)
        frame, reports = result.frame, reports + [result.report]
    if settings.synonyms:
        result = augment.synonym_replace(frame, shape, settings.synonym_source, rate=settings.synonym_rate,
                                         copies=settings.synonym_copies, seed=seed, model=model_name)
        frame, reports = result.frame, reports + [result.report]
    if settings.back_translation:
        if not (settings.translator_forward and settings.translator_backward):
            raise DataError("data.augment.back_translation needs data.augment.translator_forward and "
                            "translator_backward (translation models, e.g. Helsinki-NLP/opus-mt-en-de and "
                            "Helsinki-NLP/opus-mt-de-en, or local paths)")
        result = augment.back_translate(frame, shape, augment.MarianTranslator(settings.translator_forward),
                                        augment.MarianTranslator(settings.translator_backward),
                                        fraction=settings.back_translation_fraction, seed=seed)
        frame, reports = result.frame, reports + [result.report]
    if settings.augmented_sbert:
        result = augmented_sbert(prepared, frame, shape, settings, seed, model_name, device)
        frame, reports = result.frame, reports + [result.report]
    if settings.simcse:
        simcse_shape = shapes.get(shape).simcse_shape
        if simcse_shape is None:
            raise DataError(f"data.augment.simcse makes (text, text) pairs from unlabeled text; the data is {shape}")
        result = augment.simcse_pairs(frame)
        frame, reports = result.frame, reports + [result.report]
        prepared.report["train_shape"] = simcse_shape
    if not reports:
        return []
    if "augmentation" not in frame.columns:
        frame["augmentation"] = ""
    # An added row keeps its source row's number (0 for rows that templates made from nothing).
    if "source_row" in frame.columns and not settings.simcse:
        source_rows = provenance["_row"].to_numpy()
        frame["_row"] = [int(source_rows[o]) if pd.notna(o) else 0 for o in frame["source_row"]]
    else:
        frame["_row"] = np.arange(1, len(frame) + 1)
    prepared.splits["train"] = frame
    prepared.report["augmentation"] = reports
    prepared.report["counts"]["train"]["rows_after_augmentation"] = len(frame)
    return reports


def augmented_sbert(prepared: PreparedData, frame: pd.DataFrame, shape: str, settings: AugmentConfig, seed: int,
                    model_name: str, device: str) -> augment.Augmented:
    """Augmented SBERT on the train split: train the cross-encoder on its gold pairs, label the
    recombined pairs of its sentences (none of validation's or test's), and report how the
    cross-encoder agrees with the validation split's labels."""
    from ..modeling import load_model

    augment.augmented_sbert.silver_label_kind(shape)
    cross_encoder, trained = augment.train_cross_encoder(
        frame, shape, settings.cross_encoder_model or model_name, epochs=settings.cross_encoder_epochs,
        batch_size=settings.cross_encoder_batch_size, learning_rate=settings.cross_encoder_learning_rate, seed=seed,
        device=device)
    held_out = [text for split in ("validation", "test") if split in prepared.splits
                for column in shapes.get(prepared.shape).text_columns for text in prepared.splits[split][column]]
    bi_encoder = load_model(model_name, device) if settings.augmented_sbert_sampling == "semantic" else None
    result = augment.silver_pairs(frame, shape, cross_encoder, sampling=settings.augmented_sbert_sampling,
                                  top_k=settings.augmented_sbert_top_k, max_pairs=settings.augmented_sbert_max_pairs,
                                  held_out_texts=held_out, bi_encoder=bi_encoder,
                                  threshold=settings.augmented_sbert_threshold, seed=seed)
    validation = prepared.splits.get("validation")
    trained["validation"] = augment.labeller_fit(cross_encoder, validation, shape, settings.augmented_sbert_threshold) \
        if validation is not None and prepared.shape == shape else {}
    result.report["cross_encoder"] = trained
    return result


def negatives_enabled(settings: NegativesConfig, shape: str) -> bool:
    """data.negatives.enabled for a train split of ``shape``: "auto" mines the shapes that were measured to
    gain from it (the shapes' ``mined_by_default``)."""
    if settings.enabled == "auto":
        return shapes.get(shape).mined_by_default
    return bool(settings.enabled)


def mine_train_negatives(prepared: PreparedData, config: DataConfig, model, seed: int,
                         store: negatives.VectorStore | None = None):
    """Mine hard negatives for the train split with the base model; the train split becomes the
    mined triplets (or n-tuples). ``store``: see :func:`negatives.mine_negatives`. Returns
    the :class:`negatives.MinedNegatives` for inspection."""
    settings = config.negatives
    shape = prepared.train_shape
    if shapes.get(shape).mining_columns is None:
        raise DataError(f"hard negatives need positive pairs: pair_binary, triplet or retrieval data, not {shape}")
    train = prepared.splits["train"]
    corpus = list(prepared.retrieval.corpus.values()) if prepared.retrieval is not None else None
    with encoding_precision(model, settings.precision) as precision:
        mined = negatives.mine_negatives(
            train[output_columns(train, shape)], shape, model, corpus=corpus, candidates=settings.candidates,
            num_negatives=settings.num_negatives, range_min=settings.range_min, range_max=settings.range_max,
            relative_margin=settings.relative_margin, absolute_margin=settings.absolute_margin,
            max_score=settings.max_score, sampling_strategy=settings.sampling_strategy,
            output_format=settings.output_format, lexical_method=settings.lexical_method,
            batch_size=settings.batch_size, fill_below_window=settings.fill_below_window, seed=seed,
            store=store)
    mined.stats["settings"]["precision"] = precision
    dataset = mined.dataset.reset_index(drop=True)
    dataset["_row"] = np.arange(1, len(dataset) + 1)
    prepared.splits["train"] = dataset
    prepared.report["train_shape"] = shapes.get(shape).mined_shape(settings.output_format)
    prepared.report["negatives"] = mined.stats
    prepared.report["counts"]["train"]["rows_after_negatives"] = len(dataset)
    return mined
