"""Cleaning: de-duplication (exact, or after normalising case, whitespace, punctuation and a pair's
order), the overlap between splits and its removal, and decontamination against evaluation sets.
Every removed row is counted with its reason (:class:`Dropped`)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from .. import shapes
from .detection import detect_shape
from .problems import EXAMPLES_PER_REASON, Dropped
from .readers import read_parts
from .sources import resolve_source

_NOT_WORD = re.compile(r"[\W_]+")


@functools.lru_cache(maxsize=200_000)
def normalise_text(text: str) -> str:
    """Case-folded, punctuation removed, whitespace collapsed: 'Hello,  World!' -> 'hello world'."""
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def item_keys(frame: pd.DataFrame, shape: str, normalise: Callable[[str], str] = normalise_text) -> list[tuple]:
    """One key per row that says when two rows are the same item: a pair in either order, a
    triplet, a (query, document) pair, a text."""
    return shapes.get(shape).item_keys(frame, normalise)


def label_of(row: pd.Series, shape: str) -> Any:
    column = shapes.get(shape).label_column
    return row[column] if column is not None else None



def _example(frame: pd.DataFrame, position: int, shape: str) -> dict[str, Any]:
    row = frame.iloc[position]
    example = {"row": int(row["_row"])}
    for column in shapes.get(shape).columns:
        value = row[column]
        example[column] = value.item() if hasattr(value, "item") else value
    return example


def deduplicate(frame: pd.DataFrame, shape: str, mode: str, part: str) -> tuple[pd.DataFrame, list[Dropped], dict]:
    """Drop repeated items (the first is kept). ``exact`` compares the texts as they are;
    ``normalized`` also ignores case, whitespace and punctuation and, for pairs, the order."""
    if mode == "off" or frame.empty:
        return frame, [], {}
    task = shapes.get(shape)
    columns = list(task.text_columns)
    exact = list(frame[columns].itertuples(index=False, name=None))
    loose = item_keys(frame, shape) if mode == "normalized" else exact
    first: dict[tuple, int] = {}
    first_exact: set[tuple] = set()
    reasons = ("exact duplicate (first kept)", "duplicate after normalising case, whitespace and punctuation",
               "same pair in swapped order (b, a)")
    entries = {reason: Dropped(part, reason) for reason in reasons}
    keep = np.ones(len(frame), dtype=bool)
    conflicts = 0
    for position, (key_exact, key_loose) in enumerate(zip(exact, loose)):
        if key_loose not in first:
            first[key_loose] = position
            first_exact.add(key_exact)
            continue
        keep[position] = False
        if key_exact in first_exact:
            reason = "exact duplicate (first kept)"
        elif task.symmetric_pair and _is_swap(frame, first[key_loose], position):
            reason = "same pair in swapped order (b, a)"
        else:
            reason = "duplicate after normalising case, whitespace and punctuation"
        example = _example(frame, position, shape)
        example["first_row"] = int(frame.iloc[first[key_loose]]["_row"])
        entries[reason].add(example)
        if label_of(frame.iloc[position], shape) != label_of(frame.iloc[first[key_loose]], shape):
            conflicts += 1
    dropped = [e for e in entries.values() if e.count]
    stats = {e.reason: e.count for e in dropped}
    if conflicts:
        stats["of which with a different label or score than the kept row"] = conflicts
    return frame[keep], dropped, stats


def _is_swap(frame: pd.DataFrame, first: int, other: int) -> bool:
    a, b = frame.iloc[first], frame.iloc[other]
    return (normalise_text(a["sentence1"]) == normalise_text(b["sentence2"])
            and normalise_text(a["sentence2"]) == normalise_text(b["sentence1"])
            and normalise_text(a["sentence1"]) != normalise_text(a["sentence2"]))


def split_texts(frame: pd.DataFrame, shape: str) -> set[str]:
    return {normalise_text(t) for column in shapes.get(shape).group_columns for t in frame[column]}


def cross_split_overlap(splits: dict[str, pd.DataFrame], shape: str) -> dict[str, dict[str, Any]]:
    """Items and texts that occur in two splits, per pair of splits."""
    keys = {s: item_keys(f, shape) for s, f in splits.items()}
    texts = {s: split_texts(f, shape) for s, f in splits.items()}
    overlap = {}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        if a not in splits or b not in splits:
            continue
        shared = set(keys[a]) & set(keys[b])
        examples = [list(k) for k in sorted(shared)[:EXAMPLES_PER_REASON]]
        overlap[f"{a}-{b}"] = {"items": len(shared), "texts": len(texts[a] & texts[b]), "examples": examples}
    return overlap


def remove_overlap(splits: dict[str, pd.DataFrame], shape: str) -> list[Dropped]:
    """Drop from train the items that also occur in validation or test, and from validation those
    in test: the evaluation splits stay as given, so scores remain comparable."""
    dropped = []
    for split, later in (("train", ("validation", "test")), ("validation", ("test",))):
        held_out = set().union(*(set(item_keys(splits[s], shape)) for s in later if s in splits))
        inside = np.array([k in held_out for k in item_keys(splits[split], shape)], dtype=bool)
        if inside.any():
            entry = Dropped(split, f"also in {' or '.join(later)} (data.remove_cross_split_overlap)")
            for position in np.flatnonzero(inside):
                entry.add(_example(splits[split], position, shape))
            dropped.append(entry)
            splits[split] = splits[split][~inside]
    return dropped


@dataclass
class EvaluationSet:
    name: str
    pairs: set[tuple]
    texts: set[str]


def load_evaluation_set(spec: str) -> EvaluationSet:
    """The pairs and texts of an evaluation set to decontaminate against (any shape, detected)."""
    source = resolve_source(spec)
    pairs: set[tuple] = set()
    texts: set[str] = set()
    for frame, _ in read_parts(source):
        decided = detect_shape(frame)
        frame = frame.rename(columns=decided.renamed)
        columns = shapes.get(decided.shape).text_columns
        for column in columns:
            texts.update(normalise_text(t) for t in frame[column])
        if len(columns) >= 2:
            pairs.update(tuple(sorted((normalise_text(a), normalise_text(b))))
                         for a, b in zip(frame[columns[0]], frame[columns[1]]))
    return EvaluationSet(spec, pairs, texts)


def decontaminate(frame: pd.DataFrame, shape: str, evaluation_sets: list[EvaluationSet],
                  part: str) -> tuple[pd.DataFrame, list[Dropped]]:
    """Drop training items found in an evaluation set: a pair (either order; a triplet's anchor and
    positive), a retrieval query, or an unlabeled text."""
    dropped = []
    keep = np.ones(len(frame), dtype=bool)
    columns = shapes.get(shape).contamination_columns
    for evaluation in evaluation_sets:
        if len(columns) == 2:
            first, second = columns
            hits = [tuple(sorted((normalise_text(a), normalise_text(b)))) in evaluation.pairs
                    for a, b in zip(frame[first], frame[second])]
        else:
            hits = [normalise_text(t) in evaluation.texts for t in frame[columns[0]]]
        hits = np.array(hits, dtype=bool) & keep
        if hits.any():
            entry = Dropped(part, f"occurs in evaluation set {evaluation.name} (data.decontaminate)")
            for position in np.flatnonzero(hits):
                entry.add(_example(frame, position, shape))
            dropped.append(entry)
            keep &= ~hits
    return frame[keep], dropped

