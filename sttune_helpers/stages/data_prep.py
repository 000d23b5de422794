"""Stage 1 (notebook 01): load the data, decide its shape, check every row, clean and split it,
augment the train split, mine hard negatives, write the splits and the report, and (retrieval) mine
the validation sub-corpus."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import data, shapes
from ..config import RunConfig
from ..core.hardware import encoding_precision, resolve_encoding_precision
from ..data.negatives import MinedNegatives
from ..modeling import load_model
from ..rundir import RunDir, open_run
from ..scoring import validation_corpus
from ..scoring.embedding_cache import cache_directory, for_model
from ..scoring.models import Encoder
from ..scoring.tasks import retrieval_tables

NAME = "data_prep"


def start(run_dir: str | Path, preset: str | None = "default", config_path: str | Path | None = None,
          overrides: dict[str, Any] | list[str] | None = None) -> tuple[RunDir, RunConfig]:
    """Open (or create) the run with its config and mark the stage running."""
    return open_run(run_dir, NAME, preset=preset, config_path=config_path, overrides=overrides)


def prepare(config: RunConfig) -> data.PreparedData:
    """Load, detect the shape, validate, normalise, de-duplicate, decontaminate and split."""
    return data.prepare_data(config.data, seed=config.seed)


def describe(prepared: data.PreparedData) -> str:
    """The shape, the score scale or labels, and how the data was split, in a few lines."""
    report = prepared.report
    lines = [f"shape: {prepared.shape} ({report['shape_reason']})"]
    if "score_scale" in report:
        scale = report["score_scale"]
        lines.append(f"scores on a {scale['original'][0]:g}-{scale['original'][1]:g} scale "
                     f"({'detected' if scale['detected'] else 'from data.score_range'}), normalised to 0..1")
    if "labels" in report:
        lines.append(f"labels: {', '.join(report['labels']['names'])}")
    lines.append(f"split: {report['split_method']}")
    return "\n".join(lines)


def augment(prepared: data.PreparedData, config: RunConfig) -> list[dict[str, Any]]:
    """Rule-based pairs, synonyms, back-translation, Augmented SBERT's silver pairs and SimCSE pairs
    on the train split (data.augment)."""
    return data.augment_train(prepared, config.data, seed=config.seed, model_name=config.model.name,
                              device=config.model.device)


def mine_negatives(run: RunDir, prepared: data.PreparedData, config: RunConfig) -> MinedNegatives | None:
    """Hard negatives for the train split with the base model, where data.negatives.enabled (or "auto",
    for data of the shapes measured to gain from them: the data's shape, so SimCSE pairs made from
    unlabeled text, retrieval-shaped, are not mined unasked)."""
    if not data.negatives_enabled(config.data.negatives, prepared.shape):
        return None
    base_model = load_model(config.model.name, config.model.device, config.model.max_seq_length)
    # The candidate documents' vectors are kept in the runs directory's embedding cache (SciFact's
    # corpus: 70-88 s to encode), so that the next run on the same data reads them.
    store = None
    if config.eval.cache_embeddings:
        settings = config.data.negatives
        store = for_model(cache_directory(run.root.parent), base_model,
                          resolve_encoding_precision(base_model, settings.precision), settings.batch_size)
    return data.mine_train_negatives(prepared, config.data, base_model, seed=config.seed, store=store)


def mine_validation_corpus(run: RunDir, config: RunConfig) -> dict[str, Any] | None:
    """Retrieval: the validation sub-corpus train.validation_corpus_size asks for, its distractors
    mined with the base model (scoring/validation_corpus.py), kept in the data folder for training's
    evaluator and model selection. None where the whole corpus is used (other shapes, a small corpus,
    null). Runs after :func:`write`."""
    validation_corpus.path(run).unlink(missing_ok=True)  # a file from an earlier preparation is stale
    if not shapes.get(data.read_report(run)["shape"]).uses_corpus:
        return None
    corpus, queries, relevant = retrieval_tables(run, "validation")
    setting = config.train.validation_corpus_size
    n_relevant = len({d for wanted in relevant.values() for d in wanted if d in corpus})
    size = validation_corpus.resolved_size(setting, n_relevant)
    if size is None or size >= len(corpus) or not relevant:
        return None
    started = time.perf_counter()
    model = load_model(config.model.name, config.model.device, config.model.max_seq_length)
    cache_dir = cache_directory(run.root.parent) if config.eval.cache_embeddings else None
    with encoding_precision(model, config.eval.precision) as used:
        encode = Encoder(model, config.eval.batch_size, for_model(cache_dir, model, used, config.eval.batch_size))
        documents = validation_corpus.mine(corpus, queries, relevant, size, encode)
    info = {"documents_kept": len(documents), "corpus_documents": len(corpus), "relevant_documents": n_relevant,
            "validation_queries": len(relevant), "model": config.model.name,
            "seconds": round(time.perf_counter() - started, 1)}
    validation_corpus.save(run, setting, documents, info)
    return info


def ensure_validation_corpus(run: RunDir, config: RunConfig) -> dict[str, Any] | None:
    """:func:`mine_validation_corpus` unless stage 01 already mined it for the current setting: for
    training, where train.validation_corpus_size may have changed since stage 01."""
    if validation_corpus.read(run, config.train.validation_corpus_size) is not None:
        return None
    return mine_validation_corpus(run, config)


def write(run: RunDir, prepared: data.PreparedData) -> dict[str, int]:
    """Write the splits and the report; returns the rows of each split."""
    data.write_splits(run, prepared)
    return {split: len(frame) for split, frame in prepared.splits.items()}


def complete(run: RunDir, rows: dict[str, int]) -> float:
    return run.complete_stage(NAME, rows=rows)


def run(run_dir: str | Path | RunDir) -> dict[str, int]:
    """The whole stage on the run's config.yaml; returns the rows of each split."""
    run, config = start(run_dir.root if isinstance(run_dir, RunDir) else run_dir)
    with run.stage(NAME) as recorded:
        prepared = prepare(config)
        augment(prepared, config)
        mine_negatives(run, prepared, config)
        recorded["rows"] = write(run, prepared)
        mine_validation_corpus(run, config)
    return recorded["rows"]
