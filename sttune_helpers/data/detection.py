"""Columns and task shape: the common names of the canonical columns (aliases), how a file's
columns are resolved to them, what a label column holds, the shape a table is decided to have (and
why), and the columns a frame of a shape keeps."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import shapes
from ..shapes.pair_binary import BINARY_LABELS
from .problems import DataError, Problem

CANONICAL_COLUMNS = sorted({c for shape in shapes.REGISTRY.values() for c in shape.columns})
# Common names for the canonical columns, matched case-insensitively when a file does not use ours.
COLUMN_ALIASES = {
    "sentence1": ("sentence1", "sentence_1", "sentence_a", "text1", "text_1", "text_a", "premise", "question1", "s1"),
    "sentence2": ("sentence2", "sentence_2", "sentence_b", "text2", "text_2", "text_b", "hypothesis", "question2",
                  "s2"),
    "score": ("score", "similarity", "similarity_score", "relatedness_score", "sim"),
    "label": ("label", "labels", "gold_label", "is_duplicate", "is_paraphrase", "quality", "class"),
    "anchor": ("anchor", "query", "question", "query_text"),
    "positive": ("positive", "pos", "answer", "positive_text", "document", "passage", "doc"),
    "negative": ("negative", "neg", "hard_negative", "negative_text"),
    "text": ("text", "sentence", "content"),
}


@dataclass
class ShapeDecision:
    shape: str
    renamed: dict[str, str]  # the file's column -> canonical column
    reason: str


def _find_column(frame: pd.DataFrame, canonical: str, taken: set[str]) -> str | None:
    by_lower = {c.lower(): c for c in frame.columns if c not in taken and not c.startswith("_")}
    for alias in COLUMN_ALIASES[canonical]:
        if alias in by_lower:
            return by_lower[alias]
    return None


def _resolve_columns(frame: pd.DataFrame, wanted: tuple[str, ...]) -> dict[str, str] | None:
    """canonical -> the file's column, for every wanted column, or None if one is missing."""
    found: dict[str, str] = {}
    for canonical in wanted:
        column = _find_column(frame, canonical, set(found.values()))
        if column is None:
            return None
        found[canonical] = column
    return found


def _label_kind(values: pd.Series) -> str:
    cleaned = values.str.strip().str.lower()
    cleaned = cleaned[cleaned != ""]
    if cleaned.isin(list(BINARY_LABELS)).all():
        return "binary"
    numbers = pd.to_numeric(cleaned, errors="coerce")
    if numbers.notna().all() and (numbers % 1 != 0).any():
        return "score"
    return "class"


def _single_row_labels(frame: pd.DataFrame, column: str, kind: str, file: str) -> None:
    """Refuse a detected shape that rests on a label value found in a single row (a stray ``2`` in a
    0/1 column would otherwise turn pair_binary into a three-class pair_class)."""
    raw = frame[column].str.strip()
    lowered = raw.str.lower()
    if kind == "score":  # the fractional numbers are what made it a score
        numbers = pd.to_numeric(lowered, errors="coerce")
        deciding = (numbers % 1 != 0) & (lowered != "")
        if int(deciding.sum()) != 1:
            return
        once = deciding
    else:
        values = raw[raw != ""]
        counts = values.value_counts()
        single = set(counts[counts == 1].index)
        if not single:
            return
        once = raw.isin(single)
    rest_binary = lowered[~once & (lowered != "")].isin(list(BINARY_LABELS)).all()
    rows = frame["_row"].to_numpy() if "_row" in frame.columns else range(1, len(frame) + 1)
    shape = "pair_score" if kind == "score" else "pair_class"
    found = "is the only fractional value" if kind == "score" else "occurs in this row only"
    problems = []
    for row, value in zip([r for r, o in zip(rows, once.to_numpy()) if o], raw[once]):
        ways = (f"set data.shape=pair_binary and fix row {int(row)} or drop it (data.on_invalid: drop), or "
                if rest_binary else "")
        problems.append(Problem(file, int(row), column,
                                f"label {value!r} {found}, and the detected shape {shape} rests "
                                f"on it; {ways}set data.shape={shape} if it really is "
                                f"{'a score' if kind == 'score' else 'a class'}"))
    raise DataError(problems)


def detect_shape(frame: pd.DataFrame, requested: str = "auto", file: str | None = None,
                 declared_labels: list[str] | None = None) -> ShapeDecision:
    """Decide the task shape from the columns (after the user's mapping) and, for a label column,
    its values; explain the decision. A requested shape only resolves its columns. With ``file``,
    a shape that rests on a label value found in a single row is refused (set data.shape), unless
    the labels are declared (data.labels: values outside them are the rows' own problems)."""
    def decision(shape: str, columns: dict[str, str], why: str) -> ShapeDecision:
        renamed = {src: dst for dst, src in columns.items() if src != dst}
        if renamed:
            why += "; renamed " + ", ".join(f"{s!r} -> {d!r}" for s, d in renamed.items())
        return ShapeDecision(shape, renamed, why)

    if requested != "auto":
        wanted = shapes.get(requested).columns
        columns = {}
        for canonical in wanted:
            column = _find_column(frame, canonical, set(columns.values()))
            if column is not None:
                columns[canonical] = column
        return decision(requested, columns, f"{requested} as set in data.shape")

    if (cols := _resolve_columns(frame, ("anchor", "positive", "negative"))) is not None:
        return decision("triplet", cols, "columns anchor, positive and negative make (anchor, positive, negative) "
                        "triplets")
    if (cols := _resolve_columns(frame, ("anchor", "positive"))) is not None:
        return decision("retrieval", cols, "columns anchor and positive make (query, relevant text) pairs for "
                        "retrieval")
    if (cols := _resolve_columns(frame, ("sentence1", "sentence2", "score"))) is not None:
        return decision("pair_score", cols, "a sentence pair with a numeric score column")
    if (cols := _resolve_columns(frame, ("sentence1", "sentence2", "label"))) is not None:
        kind = _label_kind(frame[cols["label"]])
        if file is not None and kind != "binary" and not declared_labels:
            _single_row_labels(frame, cols["label"], kind, file)
        if kind == "binary":
            return decision("pair_binary", cols, "a sentence pair whose label values are all 0 or 1")
        if kind == "score":
            cols["score"] = cols.pop("label")
            return decision("pair_score", cols, "a sentence pair whose label column holds fractional numbers, "
                            "read as a similarity score")
        labels = sorted(set(frame[cols["label"]].str.strip()) - {""})
        return decision("pair_class", cols, f"a sentence pair with {len(labels)} label values "
                        f"({', '.join(labels[:5])}{', ...' if len(labels) > 5 else ''})")
    if (cols := _resolve_columns(frame, ("text",))) is not None:
        return decision("unlabeled", cols, "a single text column and no labels: unlabeled text")
    found = ", ".join(c for c in frame.columns if not c.startswith("_"))
    message = (f"cannot tell the task shape from the columns {found}. The shapes need: "
               + "; ".join(f"{s.name}: {', '.join(s.columns)}" for s in shapes.REGISTRY.values())
               + ". Map your columns with data.columns (e.g. -p data.columns.question=anchor) or set data.shape")
    raise DataError([Problem(file, 1, None, message)] if file is not None else message)


def apply_column_mapping(frame: pd.DataFrame, mapping: dict[str, str], shape: str, file: str,
                         group_by: str | None = None,
                         labels: list[str] | None = None) -> tuple[pd.DataFrame, ShapeDecision]:
    """Rename the user's columns to the canonical ones, decide the shape, and keep only what the
    shape uses (plus provenance columns starting with ``_``)."""
    unknown_targets = sorted(set(mapping.values()) - set(CANONICAL_COLUMNS))
    if unknown_targets:
        raise DataError([Problem(file, None, None, f"data.columns maps to {unknown_targets}, which are not "
                                 f"canonical columns ({', '.join(CANONICAL_COLUMNS)})")])
    missing_sources = [c for c in mapping if c not in frame.columns and c not in CANONICAL_COLUMNS]
    frame = frame.rename(columns={k: v for k, v in mapping.items() if k in frame.columns})
    if group_by is not None:
        if group_by not in frame.columns:
            raise DataError([Problem(file, 1, group_by, f"data.group_by names column {group_by!r}, which the file "
                                     f"lacks; found {', '.join(c for c in frame.columns if not c.startswith('_'))}")])
        frame["_group"] = frame[group_by]
    decided = detect_shape(frame, shape, file, labels)
    frame = frame.rename(columns=decided.renamed)
    task = shapes.get(decided.shape)
    required = task.columns
    absent = [c for c in required if c not in frame.columns]
    if absent:
        found = ", ".join(c for c in frame.columns if not c.startswith("_"))
        extra = f"; data.columns names {missing_sources}, which the file lacks" if missing_sources else ""
        raise DataError([Problem(file, 1, col,
                                 f"missing column {col!r}: the {decided.shape} shape needs columns "
                                 f"{', '.join(required)}; found {found}{extra}. Map yours with data.columns "
                                 f"(e.g. -p data.columns.my_column={col})") for col in absent])
    extra_negatives = sorted((c for c in frame.columns if c.startswith("negative_")),
                             key=lambda c: int(c.split("_")[1]) if c.split("_")[1].isdigit() else 0)
    keep = [c for c in frame.columns if c.startswith("_")] + list(required)
    if task.numbered_negatives:
        keep += extra_negatives
    return frame[keep].copy(), decided


def output_columns(frame: pd.DataFrame, shape: str) -> list[str]:
    """The columns a frame of ``shape`` is written and trained with, in order."""
    columns = list(shapes.get(shape).columns)
    if shapes.get(shape).numbered_negatives:
        columns += sorted((c for c in frame.columns if c.startswith("negative_")), key=lambda c: int(c.split("_")[1]))
    return columns

