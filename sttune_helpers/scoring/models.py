"""Scoring one model on a TaskSet: encode each distinct text once, let the task's shape compute its
metrics and per-item scores, and keep the embeddings of the texts stage 05 draws."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import shapes
from ..core.hardware import encoding_precision
from ..core.progress import Progress
from ..core.statistics import Bootstrap
from ..shapes.base import ItemScores
from .embedding_cache import EmbeddingCache, for_model
from .tasks import TaskSet


@dataclass
class ModelScores(ItemScores):
    """One model on one TaskSet: the shape's ItemScores (metrics, their bootstrap distributions,
    per-item scores and errors, pair similarities, thresholds) and the texts drawn in stage 05."""

    sentences: list[str] = field(default_factory=list)  # the distinct texts encoded, for the embedding maps
    embeddings: np.ndarray | None = None


# Texts encoded per call to the model where there are many (a large retrieval corpus), so that the
# terminal can show how far the encoding is (core/progress.py).
PROGRESS_CHUNK_TEXTS = 4096


def keyed_prompt(model, prompt: str | None) -> str | None:
    """The prompt a cache entry is keyed by: None where encoding with ``prompt`` is what the model does by
    default (its key names its default prompt), so that ``prompt=""`` on a model without one shares the
    entries of a plain encode."""
    prompts = getattr(model, "prompts", None) or {}
    default = prompts.get(getattr(model, "default_prompt_name", None) or "", "") or ""
    return None if prompt is None or prompt == default else prompt


class Encoder:
    """Encodes each distinct text once per model (normalised, so a dot product is the cosine); with a
    ``disk`` cache, an encode call made before with the same model and texts is read back instead."""

    def __init__(self, model, batch_size: int, disk: EmbeddingCache | None = None, prompt: str | None = None):
        self.model, self.batch_size, self.cache, self.disk = model, batch_size, {}, disk
        self.prompt = prompt  # None: the model's default prompt; "": none (TaskSet.prompt)
        self.cache_prompt = keyed_prompt(model, prompt)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        chunk = max(PROGRESS_CHUNK_TEXTS, self.batch_size)
        task = Progress("encoding", total=len(missing), unit="texts") if len(missing) > chunk else None
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]
            vectors = self.disk.get(part, self.cache_prompt) if self.disk is not None else None
            if vectors is None:
                vectors = self.model.encode(part, batch_size=self.batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False, prompt=self.prompt)
                if self.disk is not None:
                    self.disk.put(part, vectors, self.cache_prompt)
            self.cache.update(zip(part, np.asarray(vectors, dtype=np.float32)))
            if task is not None:
                task.step(start + len(part))
        if task is not None:
            task.end()
        return np.stack([self.cache[t] for t in texts]) if len(texts) else np.zeros((0, 1), np.float32)

    def cosine(self, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        return np.sum(self(left) * self(right), axis=1)


def score_model(task: TaskSet, model, boot: Bootstrap, batch_size: int = 64, seed: int = 0,
                precision: str = "fp32", cache_dir: Path | None = None,
                cache: EmbeddingCache | None = None) -> ModelScores:
    """The task's metrics for ``model``, encoding with ``precision`` (EvalConfig.precision); with
    ``cache_dir``, reading and keeping its embeddings there (scoring/embedding_cache.py); ``cache``:
    the model's entries already keyed (for_model), for a caller that scores one model many times."""
    with encoding_precision(model, precision) as used:
        disk = cache if cache is not None else for_model(cache_dir, model, used, batch_size)
        return _score_model(task, model, boot, batch_size, seed, disk)


def _score_model(task: TaskSet, model, boot: Bootstrap, batch_size: int, seed: int,
                 disk: EmbeddingCache | None = None) -> ModelScores:
    encode = Encoder(model, batch_size, disk, prompt=task.prompt)
    shape = shapes.get(task.shape)
    scored = shape.score(task, encode, boot, seed)
    texts = shape.viz_sentences(task)
    return ModelScores(scored.metrics, scored.resampled, scored.item_score, scored.item_error,
                       pair_similarity=scored.pair_similarity, thresholds=scored.thresholds,
                       sentences=texts, embeddings=encode(texts))
