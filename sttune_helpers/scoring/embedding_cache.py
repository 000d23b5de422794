"""Embeddings kept on disk between scorings, so that a model is not encoded again on texts it has
already encoded: the base model in every run of a runs directory (same test split, same reference
parts), and every model when the evaluation stage runs again (``--from evaluation``, notebook 04
re-run). A cached entry is one ``model.encode`` call's result, keyed by everything that call depends on
(the weights, the modules' settings, the tokenizer, the device, the precision, the batch size and the
texts in order), so that a hit returns the very vectors the call would compute.

The cache is a speed-up only: where it cannot be read or written, the texts are encoded as usual."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.reporting import get_logger

log = get_logger(__name__)

CACHE_DIR_NAME = ".cache"  # in the runs directory; `sttune runs` lists only folders with a manifest
EMBEDDINGS_DIR_NAME = "embeddings"
# The most the cache may hold; beyond it the entries used least recently go first. 1 GiB is about 700k
# 384-dimensional vectors (all-MiniLM-L6-v2), every test split and reference part of many runs.
MAX_BYTES = 1 << 30
KEY_CHARS = 32


def weights_digest(model) -> str:
    """A digest of every parameter and buffer (names, dtypes, shapes and bytes), in state_dict order."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """A digest of what the tokenizer makes of a text (a fast tokenizer's whole pipeline, else its
    vocabulary, with its special tokens), not of where it was loaded from: the same model installed
    in another environment or copied to another folder keeps its cached vectors."""
    if tokenizer is None:
        return "none"
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        pipeline = json.loads(backend.to_str())
        # set per call from the model's max_seq_length (keyed on its own) and the batch
        pipeline.pop("truncation", None)
        pipeline.pop("padding", None)
    else:
        pipeline = tokenizer.get_vocab()
    payload = json.dumps([pipeline, getattr(tokenizer, "special_tokens_map", {})], sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def model_key(model, precision: str, batch_size: int, weights: str | None = None) -> str:
    """What one model's encode() results depend on, besides the texts: its weights, its modules and
    their settings (repr: pooling, normalisation), max_seq_length, prompts, its tokenizer, the device,
    the encoding precision and the batch size (the batches' padding). Not the folder it was loaded
    from. ``weights``: the weights' digest where the caller has it already."""
    import torch

    tokenizer = getattr(model, "tokenizer", None)
    parts = [weights or weights_digest(model), repr(model), str(getattr(model, "max_seq_length", None)),
             json.dumps(getattr(model, "prompts", None) or {}, sort_keys=True, default=str),
             str(getattr(model, "default_prompt_name", None)), type(tokenizer).__name__,
             tokenizer_digest(tokenizer), str(len(tokenizer) if tokenizer is not None else 0),
             str(getattr(tokenizer, "do_lower_case", None)), torch.device(model.device).type, precision,
             str(batch_size)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:KEY_CHARS]


def texts_key(texts: Sequence[str], prompt: str | None = None) -> str:
    """The texts in order; with an explicit ``prompt`` ("" included: no prompt where the model has a
    default one) that too, since the model's key names only its default."""
    payload = list(texts) if prompt is None else {"prompt": prompt, "texts": list(texts)}
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:KEY_CHARS]


@dataclass
class EmbeddingCache:
    """One model's entries in a cache directory (see :func:`for_model`)."""

    directory: Path
    key: str

    def _path(self, texts: Sequence[str], prompt: str | None = None) -> Path:
        return self.directory / self.key / f"{texts_key(texts, prompt)}.npy"

    def get(self, texts: Sequence[str], prompt: str | None = None) -> np.ndarray | None:
        """The vectors of ``texts`` (encoded with ``prompt``) as an earlier call encoded them, or None."""
        path = self._path(texts, prompt)
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # not cached, or a damaged file: encode again
            return None
        if vectors.ndim != 2 or len(vectors) != len(texts):
            return None
        try:
            os.utime(path)  # recently used: pruned last
        except OSError:
            pass
        return vectors

    def put(self, texts: Sequence[str], vectors: np.ndarray, prompt: str | None = None) -> None:
        path = self._path(texts, prompt)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                np.save(handle, np.asarray(vectors, dtype=np.float32), allow_pickle=False)
            os.replace(tmp, path)
        except OSError as exc:
            log.info(f"embedding cache not written ({path}: {exc}); the run goes on without it")
            return
        prune(self.directory)


def for_model(directory: Path | None, model, precision: str, batch_size: int,
              weights: str | None = None) -> EmbeddingCache | None:
    """``model``'s entries in ``directory`` (None: no cache); ``weights``: its digest, if known."""
    if directory is None:
        return None
    return EmbeddingCache(Path(directory), model_key(model, precision, batch_size, weights))


def cache_directory(runs_dir: Path) -> Path:
    """Where the runs of ``runs_dir`` share their cached embeddings."""
    return Path(runs_dir) / CACHE_DIR_NAME / EMBEDDINGS_DIR_NAME


def prune(directory: Path, max_bytes: int = MAX_BYTES) -> None:
    """Delete the least recently used entries until the cache holds at most ``max_bytes``."""
    try:
        entries = [(p.stat().st_mtime, p.stat().st_size, p) for p in Path(directory).glob("*/*.npy")]
    except OSError:
        return
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        try:
            path.unlink()
            total -= size
        except OSError:
            pass
