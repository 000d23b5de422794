"""What stage 05 draws, saved by stage 04 so nothing is encoded again: the distinct test texts, their
colour groups and the pairs whose similarities are plotted (each shape says which), in
``eval/embeddings.npz`` and ``eval/similarities.npz``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .. import shapes
from ..core.io import give_ordinary_mode
from ..rundir import RunDir
from ..scoring.models import ModelScores
from ..scoring.tasks import TaskSet


def viz_sentences(task: TaskSet) -> list[str]:
    """The distinct texts drawn in the embedding maps, in a fixed order."""
    return shapes.get(task.shape).viz_sentences(task)


def sentence_groups(task: TaskSet) -> tuple[list[str], str]:
    """The colour group of each viz sentence (the label of the first item it appears in) and what
    the groups are; all "" where the data has no labels to colour by (stage 05 clusters instead)."""
    shape = shapes.get(task.shape)
    return shape.sentence_groups(task), shape.group_kind


def pair_groups(task: TaskSet) -> tuple[np.ndarray, np.ndarray] | None:
    """For each pair in ModelScores.pair_similarity: its bucket name, and 1/0 positive/negative
    (-1 where the data has no positive/negative split: score buckets and classes); None where the
    task has no pairs of its own (unlabeled data)."""
    return shapes.get(task.shape).pair_groups(task)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    os.close(fd)
    np.savez(tmp, **arrays)
    give_ordinary_mode(Path(tmp))
    os.replace(tmp, path)


def save_embeddings(run: RunDir, task: TaskSet, scores: dict[str, ModelScores]) -> None:
    """Keep the test embeddings and pair similarities so stage 05 need not encode again."""
    groups, kind = sentence_groups(task)
    first = next(iter(scores.values()))
    _save_npz(run.eval_dir / "embeddings.npz", {
        "sentences": np.array(first.sentences, dtype=object),
        "groups": np.array(groups, dtype=object),
        "group_kind": np.array(kind),
        **{f"embeddings_{name}": s.embeddings for name, s in scores.items()},
    })
    similarities = run.eval_dir / "similarities.npz"
    pairs = pair_groups(task)
    if pairs is None:  # no pairs of the user's own: the reference pairs are reported in metrics.json
        similarities.unlink(missing_ok=True)
        return
    bucket, positive = pairs
    _save_npz(similarities, {
        "bucket": bucket, "positive": positive,
        **{f"similarity_{name}": s.pair_similarity for name, s in scores.items()},
    })


def load_embeddings(run: RunDir) -> dict[str, np.ndarray]:
    path = run.eval_dir / "embeddings.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run stage evaluation (04_evaluation.ipynb) first")
    with np.load(path, allow_pickle=True) as data:
        return {key: data[key] for key in data.files}
