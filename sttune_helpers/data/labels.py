"""Scores and labels: the scale of a score column (detected among the known scales, or declared)
and its normalisation to 0..1, and class labels encoded as indices into the label names."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .. import shapes
from ..config import DataConfig
from .problems import DataError, Dropped, Problem

# Known score scales, tried in this order; the first that holds every score is taken.
KNOWN_SCALES = ((0.0, 1.0), (0.0, 4.0), (1.0, 5.0), (0.0, 5.0))


def detect_score_scale(scores: np.ndarray, where: list[str] | None = None) -> tuple[float, float]:
    """The first known scale that holds every score; ``where`` (one 'file, row N' per score) lets the
    error name the rows of the lowest and the highest score."""
    scores = np.asarray(scores, dtype=float)
    low, high = float(np.min(scores)), float(np.max(scores))
    for scale in KNOWN_SCALES:
        if scale[0] <= low and high <= scale[1]:
            return scale
    at = (lambda i: f" ({where[i]})") if where is not None else (lambda i: "")
    raise DataError(f"scores range from {low:g}{at(int(np.argmin(scores)))} to {high:g}{at(int(np.argmax(scores)))}, "
                    f"which fits none of the known scales ({', '.join(f'{a:g}-{b:g}' for a, b in KNOWN_SCALES)}): "
                    f"fix those rows, or set data.score_range, e.g. "
                    f"-p 'data.score_range=[{math.floor(low)}, {math.ceil(high)}]'")


def score_locations(frames) -> list[str]:
    """'file, row N, column 'score'' for every score of ``frames``, in order."""
    return [f"{file}, row {row}, column 'score'" for f in frames for file, row in zip(f["_file"], f["_row"])]


def single_score_problems(frames) -> list[Problem]:
    """A problem per file when every score of ``frames`` is the same value: nothing to learn from,
    and Spearman correlation is undefined (a scale guess would map them all to one number)."""
    frames = list(frames)
    every_score = np.concatenate([f["score"].to_numpy(dtype=float) for f in frames]) if frames else np.array([])
    if len(every_score) == 0 or len(np.unique(every_score)) > 1:
        return []
    files = dict.fromkeys(file for frame in frames for file in frame["_file"])
    return [Problem(file, None, "score", f"every score is {every_score[0]:g} ({len(every_score)} rows): the model "
                    "cannot learn which pairs are more similar, and Spearman correlation is undefined; check the "
                    "column mapping (data.columns) or use data with varied scores") for file in files]


def normalise_scores(frames: dict[str, pd.DataFrame], config: DataConfig, counts: dict,
                     dropped: list[Dropped]) -> dict[str, Any]:
    """Scores mapped from their scale to 0..1, one scale for every split; rows outside it are
    problems (dropped with data.on_invalid=drop). Returns the scale for the report."""
    # One scale for every split, so train and test are normalised alike.
    every_score = np.concatenate([f["score"].to_numpy(dtype=float) for f in frames.values()])
    if len(every_score) == 0:
        raise DataError("no usable rows are left")
    if single := single_score_problems(frames.values()):
        raise DataError(single)
    if config.score_range is not None:
        if len(config.score_range) != 2 or config.score_range[0] >= config.score_range[1]:
            raise DataError(f"data.score_range must be [low, high] with low < high, got {config.score_range}")
        scale, detected = (float(config.score_range[0]), float(config.score_range[1])), False
    else:
        scale, detected = detect_score_scale(every_score, score_locations(frames.values())), True
    out_of_range: list[Problem] = []
    for part, frame in frames.items():
        outside = ((frame["score"] < scale[0]) | (frame["score"] > scale[1])).to_numpy()
        for row, value, file in zip(frame["_row"].to_numpy()[outside], frame["score"].to_numpy()[outside],
                                    frame["_file"].to_numpy()[outside]):
            out_of_range.append(Problem(file, int(row), "score",
                                        f"{value:g} is outside the score range {scale[0]:g}-{scale[1]:g}"))
        if outside.any() and config.on_invalid == "drop":
            entry = Dropped(part, "score: outside the score range")
            for row, value in zip(frame["_row"].to_numpy()[outside], frame["score"].to_numpy()[outside]):
                entry.add({"row": int(row), "score": float(value)})
            dropped.append(entry)
            frames[part] = frame[~outside]
            counts[part]["invalid_dropped"] = counts[part].get("invalid_dropped", 0) + int(outside.sum())
    if out_of_range and config.on_invalid == "error":
        raise DataError(out_of_range)
    for part, frame in frames.items():
        frames[part] = frame.assign(score=(frame["score"] - scale[0]) / (scale[1] - scale[0]))
    return {"original": list(scale), "detected": detected, "normalised_to": [0.0, 1.0]}


def encode_labels(frames: dict[str, pd.DataFrame], shape: str, config: DataConfig) -> dict[str, Any]:
    """Labels as indices into the label names (the shape's own, data.labels, or those of train);
    returns the names and the distribution read, for the report."""
    fixed = shapes.get(shape).label_names
    if fixed is not None:  # already parsed into their indices (pair_binary: 0 and 1)
        for part, frame in frames.items():
            frames[part] = frame.assign(label=frame["label"].astype(int))
        names = list(fixed)
    else:
        if config.labels:
            names = list(config.labels)
        else:
            # Inferred from train: a label that only occurs in an evaluation split cannot be learned.
            names = sorted(set(frames.get("train", frames.get("all"))["label"]))
            unseen = [Problem(f["_file"].iloc[0], int(r), "label", f"label {v!r} does not occur in the training data "
                              f"({', '.join(names)}); declare every label in data.labels")
                      for part, f in frames.items() if part not in ("train", "all")
                      for r, v in zip(f["_row"], f["label"]) if v not in names]
            if unseen:
                raise DataError(unseen)
        index = {name: i for i, name in enumerate(names)}
        for part, frame in frames.items():
            frames[part] = frame.assign(label=frame["label"].map(index).astype(int))
    distribution = {part: {names[k]: int(v) for k, v in sorted(frame["label"].value_counts().items())}
                    for part, frame in frames.items()}
    return {"names": names, "distribution_read": distribution}

