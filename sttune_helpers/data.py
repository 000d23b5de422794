"""Data stage: load, detect the task shape, validate, normalise, de-duplicate, decontaminate, split,
and write the run's splits.

Every problem is reported with the file, the row (1-based, as a spreadsheet shows it: the header
is row 1; for JSONL the line; for Parquet and Hugging Face data sets the record number) and the
column. Rows are never dropped silently: with ``on_invalid="drop"`` each dropped row is counted in
the data report with its reason and examples, and so is every duplicate or contaminated row.
"""

from __future__ import annotations

import functools
import json
import math
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import shapes
from .config import DataConfig
from .core.errors import SttuneError
from .core.io import atomic_write_json, atomic_write_text, file_sha256
from .rundir import RunDir

EMBEDDED_DIR = Path(__file__).parent / "datasets"
EMBEDDED_PREFIX = "embedded:"
SPLITS = ("train", "validation", "test")
SHAPES = shapes.SHAPES
SHAPE_COLUMNS = {name: shape.columns for name, shape in shapes.REGISTRY.items()}
TEXT_COLUMNS = {name: shape.text_columns for name, shape in shapes.REGISTRY.items()}
SPLIT_GROUP_COLUMNS = {name: shape.group_columns for name, shape in shapes.REGISTRY.items()}
CANONICAL_COLUMNS = sorted({c for cols in SHAPE_COLUMNS.values() for c in cols})
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
BINARY_LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}
# Known score scales, tried in this order; the first that holds every score is taken.
KNOWN_SCALES = ((0.0, 1.0), (0.0, 4.0), (1.0, 5.0), (0.0, 5.0))
SPLIT_FILE_WORDS = {"train": ("train",), "validation": ("validation", "valid", "dev", "val"), "test": ("test",)}
TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".txt", ".jsonl", ".json", ".parquet"}
MAX_LISTED_PROBLEMS = 10
_NOT_WORD = re.compile(r"[\W_]+")
EXAMPLES_PER_REASON = 3
# Texts longer than this are worth a warning: beyond what most models read (512 tokens is roughly
# 2,000-3,000 characters of English); the training stage counts the ones it truncates exactly.
LONG_TEXT_CHARS = 10_000


@dataclass
class Problem:
    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.message}"


class DataError(SttuneError, ValueError):
    """The data cannot be used as it is; ``problems`` lists what is wrong and where."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(file="data", row=None, column=None, message=problems)]
        self.problems = problems
        lines = [str(p) for p in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more problems")
        super().__init__("\n".join(lines))


# --- reading tables ----------------------------------------------------------------------------


def _stringify(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV, TSV, JSONL or Parquet into a DataFrame of strings, with a ``_row`` column that
    holds each record's row number as a spreadsheet (or, for JSONL, an editor) shows it."""
    path = Path(path)
    if not path.is_file():
        raise DataError([Problem(str(path), None, None, "file does not exist")])
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError([Problem(str(path), None, None,
                                 f"unsupported file type {suffix!r}; expected one of {', '.join(sorted(TABLE_SUFFIXES))}, "
                                 "a folder saved with datasets' save_to_disk, or a BEIR folder")])
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError([Problem(str(path), None, None, f"not a readable Parquet file ({exc})")]) from None
        if frame.empty:
            raise DataError([Problem(str(path), None, None, "file has no rows")])
        frame = frame.map(_stringify)
        frame.insert(0, "_row", np.arange(1, len(frame) + 1))  # record number
        return frame

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = "the file starts with a UTF-16 byte-order mark: it is UTF-16"
        else:
            hint = "perhaps Latin-1 or Windows-1252 (a file of mixed encodings shows this at its first non-UTF-8 line)"
        raise DataError([Problem(str(path), line, None,
                                 f"bytes that are not UTF-8 (0x{raw[exc.start]:02x} at byte {exc.start}; {hint}); "
                                 "save the file as UTF-8")]) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError([Problem(str(path), line, None, "NUL bytes in a text file (a binary file, or UTF-16 without "
                                 "a byte-order mark?); save the file as UTF-8 text")])
    if not text.strip():
        raise DataError([Problem(str(path), None, None, "file is empty")])

    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path, text)
    delimiter = "," if suffix == ".csv" else "\t"
    return _read_delimited(path, text, delimiter)


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records, rows = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError([Problem(str(path), number, None, f"not valid JSON ({exc.msg})")]) from None
        if not isinstance(record, dict):
            raise DataError([Problem(str(path), number, None, "expected a JSON object per line")])
        records.append(record)
        rows.append(number)
    frame = pd.DataFrame.from_records(records).map(_stringify)
    frame.insert(0, "_row", rows)
    return frame


def _read_delimited(path: Path, text: str, delimiter: str) -> pd.DataFrame:
    import csv
    import io

    try:
        # Blank lines are read as empty rows and dropped below, so that row numbers match a spreadsheet's.
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                            quoting=csv.QUOTE_MINIMAL, skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        raise DataError([Problem(str(path), None, None, f"cannot be parsed with delimiter {delimiter!r}: {exc}")]) from None
    if frame.shape[1] == 1:
        header = frame.columns[0]
        found = [d for d in (",", "\t", ";", "|") if d != delimiter and d in header]
        if found or len(frame) == 0 or header not in COLUMN_ALIASES["text"]:
            guess = f"; the header contains {found[0]!r}, so the file may be delimited by that" if found else ""
            raise DataError([Problem(str(path), 1, None,
                                     f"found a single column {header!r} with delimiter {delimiter!r}{guess}. "
                                     "Wrong delimiter? Use .csv for commas and .tsv for tabs "
                                     "(a one-column file of unlabeled text must name its column 'text')")])
    frame = frame.fillna("")  # fields missing from a short row
    frame.insert(0, "_row", np.arange(2, len(frame) + 2))  # spreadsheet row numbers: the header is row 1
    # Only lines with nothing at all; a line of spaces is a row whose texts are empty, and is reported.
    blank = (frame.drop(columns="_row") == "").all(axis=1).to_numpy()
    frame = frame[~blank].reset_index(drop=True)
    if frame.empty:
        raise DataError([Problem(str(path), None, None, "file has a header but no data rows")])
    return frame


# --- sources -----------------------------------------------------------------------------------


@dataclass
class Source:
    """Where the data comes from: one table, a folder of split tables, a Hugging Face data set
    saved with ``save_to_disk``, or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv)."""

    kind: str  # "file" | "folder" | "hf_disk" | "beir"
    path: Path
    parts: dict[str, Any]  # part ("all" or a split) -> file path, HF split name, or qrels file


def is_beir_folder(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file() and (path / "qrels").is_dir()


def is_hf_disk_folder(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def resolve_source(source: str) -> Source:
    """Find what a ``data.source`` string names. ``embedded:NAME`` is a data set shipped in the
    package; ``embedded:NAME:SPLIT`` (or a file path) picks one split of it."""
    split = None
    if source.startswith(EMBEDDED_PREFIX):
        name, _, split = source[len(EMBEDDED_PREFIX):].partition(":")
        path = EMBEDDED_DIR / name
        if not path.is_dir():
            known = sorted(p.name for p in EMBEDDED_DIR.iterdir() if p.is_dir())
            raise DataError(f"unknown embedded data set {name!r}; embedded: {', '.join(known)}")
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError([Problem(str(path), None, None, "data source does not exist (data.source)")])
    if path.is_file():
        return Source("file", path, {"all": path})
    if is_beir_folder(path):
        qrels = split_files(path / "qrels")
        kind = "beir"
    elif is_hf_disk_folder(path):
        return Source("hf_disk", path, hf_disk_splits(path))
    else:
        qrels = split_files(path)
        kind = "folder"
    if split:
        if split not in qrels:
            raise DataError(f"{source}: no {split!r} split; it has {', '.join(qrels)}")
        qrels = {split: qrels[split]}
    return Source(kind, path, qrels)


def split_files(folder: Path) -> dict[str, Path]:
    """Find train / validation / test files in a folder by their names."""
    tables = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES]
    found: dict[str, Path] = {}
    for split, words in SPLIT_FILE_WORDS.items():
        matches = [p for p in tables if any(w in p.stem.lower().replace("-", "_").split("_") or p.stem.lower() == w
                                            for w in words)]
        if len(matches) > 1:
            raise DataError(f"{folder}: several files look like the {split} split: {', '.join(m.name for m in matches)}")
        if matches:
            found[split] = matches[0]
    if not found:
        raise DataError(f"{folder}: no file named like a split (e.g. train.csv, sts-dev.tsv, test.jsonl) among "
                        f"{', '.join(p.name for p in tables) or 'no table files'}")
    return found


def hf_disk_splits(path: Path) -> dict[str, str]:
    if not (path / "dataset_dict.json").is_file():
        return {"all": ""}
    names = json.loads((path / "dataset_dict.json").read_text())["splits"]
    parts = {}
    for split, words in SPLIT_FILE_WORDS.items():
        for name in names:
            if name.lower() in words:
                parts[split] = name
    if not parts:
        raise DataError(f"{path}: a DatasetDict with splits {names}, none of them named like train, validation "
                        "(dev) or test")
    return parts


def read_hf_disk(path: Path, split_name: str) -> pd.DataFrame:
    from datasets import ClassLabel, load_from_disk

    loaded = load_from_disk(str(path))
    dataset = loaded[split_name] if split_name else loaded
    frame = dataset.to_pandas()
    # Class labels are stored as integers; the names are what a user wrote and declares.
    for column, feature in dataset.features.items():
        if isinstance(feature, ClassLabel):
            frame[column] = [feature.int2str(int(v)) if v is not None and v >= 0 else "" for v in frame[column]]
    if frame.empty:
        raise DataError([Problem(f"{path} (split {split_name or 'all'})", None, None, "data set has no rows")])
    frame = frame.map(_stringify)
    frame.insert(0, "_row", np.arange(1, len(frame) + 1))
    return frame


def source_checksums(source: Source) -> dict[str, dict[str, str]]:
    if source.kind == "hf_disk":
        files = sorted(p for p in source.path.rglob("*") if p.is_file())
        return {str(p.relative_to(source.path)): {"path": str(p), "sha256": file_sha256(p)} for p in files}
    files = dict(source.parts)
    if source.kind == "beir":
        files.update(corpus=source.path / "corpus.jsonl", queries=source.path / "queries.jsonl")
    return {part: {"path": str(p), "sha256": file_sha256(p)} for part, p in files.items()}


# --- BEIR retrieval data -----------------------------------------------------------------------


@dataclass
class RetrievalTables:
    """Documents and queries by id, for retrieval evaluation over the whole corpus."""

    corpus: dict[str, str]
    queries: dict[str, str]


def read_beir(source: Source) -> tuple[dict[str, pd.DataFrame], RetrievalTables, list[Problem]]:
    """(query, relevant document) pairs per qrels split, with the corpus and the queries."""
    problems: list[Problem] = []
    corpus: dict[str, str] = {}
    corpus_file = source.path / "corpus.jsonl"
    for record in read_table(corpus_file).to_dict("records"):
        text = " ".join(part for part in (record.get("title", "").strip(), record.get("text", "").strip()) if part)
        if not record.get("_id"):
            problems.append(Problem(str(corpus_file), record["_row"], "_id", "document without an id"))
        elif not text:
            problems.append(Problem(str(corpus_file), record["_row"], "text", "empty document (no title, no text)"))
        corpus[record.get("_id", "")] = text
    queries: dict[str, str] = {}
    queries_file = source.path / "queries.jsonl"
    for record in read_table(queries_file).to_dict("records"):
        if not record.get("text", "").strip():
            problems.append(Problem(str(queries_file), record["_row"], "text", "empty query text"))
        queries[record.get("_id", "")] = record.get("text", "")

    frames = {}
    for part, path in source.parts.items():
        qrels = read_table(path)
        for column in ("query-id", "corpus-id"):
            if column not in qrels.columns:
                raise DataError([Problem(str(path), 1, column, f"missing column {column!r}: BEIR qrels need "
                                         f"query-id, corpus-id, score; found {', '.join(qrels.columns[1:])}")])
        if "score" in qrels.columns:
            scores = pd.to_numeric(qrels["score"], errors="coerce")
            for row, raw in zip(qrels.loc[scores.isna(), "_row"], qrels.loc[scores.isna(), "score"]):
                problems.append(Problem(str(path), int(row), "score", f"expected a number, got {raw!r}"))
            qrels = qrels[scores.fillna(1) > 0]  # score 0 marks a judged non-relevant document
        for row, qid, did in zip(qrels["_row"], qrels["query-id"], qrels["corpus-id"]):
            if qid not in queries:
                problems.append(Problem(str(path), int(row), "query-id", f"query {qid!r} is not in queries.jsonl"))
            if did not in corpus:
                problems.append(Problem(str(path), int(row), "corpus-id", f"document {did!r} is not in corpus.jsonl"))
        frame = pd.DataFrame({"_row": qrels["_row"].to_numpy(),
                              "anchor": [queries.get(q, "") for q in qrels["query-id"]],
                              "positive": [corpus.get(d, "") for d in qrels["corpus-id"]],
                              "_qid": qrels["query-id"].to_numpy(), "_did": qrels["corpus-id"].to_numpy()})
        frame["_file"] = str(path)
        frames[part] = frame
    return frames, RetrievalTables(corpus, queries), problems


# --- columns and task shape --------------------------------------------------------------------


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


def detect_shape(frame: pd.DataFrame, requested: str = "auto") -> ShapeDecision:
    """Decide the task shape from the columns (after the user's mapping) and, for a label column,
    its values; explain the decision. A requested shape only resolves its columns."""
    def decision(shape: str, columns: dict[str, str], why: str) -> ShapeDecision:
        renamed = {src: dst for dst, src in columns.items() if src != dst}
        if renamed:
            why += "; renamed " + ", ".join(f"{s!r} -> {d!r}" for s, d in renamed.items())
        return ShapeDecision(shape, renamed, why)

    if requested != "auto":
        wanted = SHAPE_COLUMNS[requested]
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
    raise DataError(f"cannot tell the task shape from the columns {found}. The shapes need: "
                    + "; ".join(f"{s}: {', '.join(c)}" for s, c in SHAPE_COLUMNS.items())
                    + ". Map your columns with data.columns (e.g. -p data.columns.question=anchor) "
                    "or set data.shape")


def apply_column_mapping(frame: pd.DataFrame, mapping: dict[str, str], shape: str, file: str,
                         group_by: str | None = None) -> tuple[pd.DataFrame, ShapeDecision]:
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
    decided = detect_shape(frame, shape)
    frame = frame.rename(columns=decided.renamed)
    required = SHAPE_COLUMNS[decided.shape]
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
    if decided.shape == "retrieval":
        keep += extra_negatives
    return frame[keep].copy(), decided


# --- validation --------------------------------------------------------------------------------


def find_problems(frame: pd.DataFrame, shape: str, file: str,
                  labels: list[str] | None = None) -> tuple[list[Problem], pd.DataFrame]:
    """Problems of each row; returns them and the frame with parsed scores and labels."""
    problems: list[Problem] = []
    frame = frame.copy()
    rows = frame["_row"].to_numpy()
    text_columns = list(TEXT_COLUMNS[shape]) + [c for c in frame.columns if c.startswith("negative_")]
    for column in text_columns:
        blank = (frame[column].str.strip() == "").to_numpy()
        for row in rows[blank]:
            problems.append(Problem(file, int(row), column, "empty text (or only whitespace)"))
    if "score" in SHAPE_COLUMNS[shape]:
        scores = pd.to_numeric(frame["score"].str.strip(), errors="coerce")
        for row, raw in zip(rows[scores.isna().to_numpy()], frame.loc[scores.isna(), "score"]):
            problems.append(Problem(file, int(row), "score", "empty score: expected a number" if not raw.strip()
                                    else f"expected a number, got {raw!r}"))
        infinite = np.isinf(scores.fillna(0)).to_numpy()
        for row, raw in zip(rows[infinite], frame.loc[infinite, "score"]):
            problems.append(Problem(file, int(row), "score", f"expected a finite number, got {raw!r}"))
        frame["score"] = scores
    if shape == "pair_binary":
        parsed = frame["label"].str.strip().str.lower().map(BINARY_LABELS)
        for row, raw in zip(rows[parsed.isna().to_numpy()], frame.loc[parsed.isna(), "label"]):
            problems.append(Problem(file, int(row), "label", f"label {raw!r} is outside the declared set {{0, 1}}"))
        frame["label"] = parsed
    if shape == "pair_class":
        frame["label"] = frame["label"].str.strip()
        blank = (frame["label"] == "").to_numpy()
        for row in rows[blank]:
            problems.append(Problem(file, int(row), "label", "empty label"))
        if labels:
            outside = (~frame["label"].isin(labels) & ~blank)
            for row, raw in zip(rows[outside.to_numpy()], frame.loc[outside, "label"]):
                problems.append(Problem(file, int(row), "label", f"label {raw!r} is outside the declared set "
                                        f"{{{', '.join(labels)}}} (data.labels)"))
    return problems, frame


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


# --- duplicates, overlap and contamination -----------------------------------------------------


@functools.lru_cache(maxsize=200_000)
def normalise_text(text: str) -> str:
    """Case-folded, punctuation removed, whitespace collapsed: 'Hello,  World!' -> 'hello world'."""
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def item_keys(frame: pd.DataFrame, shape: str, normalise: Callable[[str], str] = normalise_text) -> list[tuple]:
    """One key per row that says when two rows are the same item: a pair in either order, a
    triplet, a (query, document) pair, a text."""
    if shape in ("pair_score", "pair_binary", "pair_class"):
        return [tuple(sorted((normalise(a), normalise(b)))) for a, b in zip(frame["sentence1"], frame["sentence2"])]
    columns = list(SHAPE_COLUMNS[shape])
    return [tuple(normalise(v) for v in values) for values in frame[columns].itertuples(index=False)]


def label_of(row: pd.Series, shape: str) -> Any:
    return row["score"] if shape == "pair_score" else row["label"] if shape in ("pair_binary", "pair_class") else None


@dataclass
class Dropped:
    """Rows removed from one split for one reason, with a few examples for the report."""

    split: str
    reason: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, example: dict[str, Any]) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES_PER_REASON:
            self.examples.append(example)


def _example(frame: pd.DataFrame, position: int, shape: str) -> dict[str, Any]:
    row = frame.iloc[position]
    example = {"row": int(row["_row"])}
    for column in SHAPE_COLUMNS[shape]:
        value = row[column]
        example[column] = value.item() if hasattr(value, "item") else value
    return example


def deduplicate(frame: pd.DataFrame, shape: str, mode: str, part: str) -> tuple[pd.DataFrame, list[Dropped], dict]:
    """Drop repeated items (the first is kept). ``exact`` compares the texts as they are;
    ``normalized`` also ignores case, whitespace and punctuation and, for pairs, the order."""
    if mode == "off" or frame.empty:
        return frame, [], {}
    columns = list(SHAPE_COLUMNS[shape][:2]) if shape.startswith("pair") else list(TEXT_COLUMNS[shape])
    exact = list(frame[columns].itertuples(index=False, name=None))
    loose = item_keys(frame, shape) if mode == "normalized" else exact
    first: dict[tuple, int] = {}
    first_exact: set[tuple] = set()
    entries = {reason: Dropped(part, reason) for reason in ("exact duplicate (first kept)",
                                                            "duplicate after normalising case, whitespace and punctuation",
                                                            "same pair in swapped order (b, a)")}
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
        elif shape.startswith("pair") and _is_swap(frame, first[key_loose], position):
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
    return {normalise_text(t) for column in SPLIT_GROUP_COLUMNS[shape] for t in frame[column]}


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
    for frame, _ in _read_parts(source):
        decided = detect_shape(frame)
        frame = frame.rename(columns=decided.renamed)
        columns = TEXT_COLUMNS[decided.shape]
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
    for evaluation in evaluation_sets:
        if shape in ("pair_score", "pair_binary", "pair_class", "triplet"):
            first, second = TEXT_COLUMNS[shape][:2]
            hits = [tuple(sorted((normalise_text(a), normalise_text(b)))) in evaluation.pairs
                    for a, b in zip(frame[first], frame[second])]
        else:
            hits = [normalise_text(t) in evaluation.texts for t in frame[TEXT_COLUMNS[shape][0]]]
        hits = np.array(hits, dtype=bool) & keep
        if hits.any():
            entry = Dropped(part, f"occurs in evaluation set {evaluation.name} (data.decontaminate)")
            for position in np.flatnonzero(hits):
                entry.add(_example(frame, position, shape))
            dropped.append(entry)
            keep &= ~hits
    return frame[keep], dropped


# --- splitting -------------------------------------------------------------------------------


def group_split(frame: pd.DataFrame, text_columns: tuple[str, ...], fractions: dict[str, float],
                seed: int) -> dict[str, pd.DataFrame]:
    """Split so that no text appears in two splits: rows that share a text (directly or through a
    chain), or a ``_group`` value, form one group, and whole groups are assigned to splits."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    columns = [frame[c].map(normalise_text) for c in text_columns]
    if "_group" in frame.columns:
        columns.append("\x00group:" + frame["_group"].astype(str))
    for texts in zip(*columns):
        roots = [find(t) for t in texts]
        for other in roots[1:]:
            parent[find(other)] = find(roots[0])
    groups = [find(t) for t in columns[0]]
    members: dict[str, list[int]] = defaultdict(list)
    for position, group in enumerate(groups):
        members[group].append(position)
    order = list(members)
    np.random.default_rng(seed).shuffle(order)
    targets = {s: fractions[s] * len(frame) for s in ("validation", "test")}
    assigned: dict[str, list[int]] = {s: [] for s in SPLITS}
    for group in order:
        rows = members[group]
        for split in ("test", "validation"):
            if len(assigned[split]) + len(rows) <= targets[split] or (not assigned[split] and targets[split] >= 1):
                assigned[split].extend(rows)
                break
        else:
            assigned["train"].extend(rows)
    return {s: frame.iloc[sorted(rows)].reset_index(drop=True) for s, rows in assigned.items()}


def cap_rows(frame: pd.DataFrame, cap: int, shape: str, seed: int) -> pd.DataFrame:
    """A seeded sample of at most ``cap`` rows; retrieval keeps whole queries, so that a query's
    relevant documents stay together."""
    if len(frame) <= cap:
        return frame
    if shape != "retrieval":
        return frame.sample(n=cap, random_state=seed).sort_values("_row")
    queries = frame["anchor"].unique()
    order = np.random.default_rng(seed).permutation(len(queries))
    sizes = frame.groupby("anchor").size()
    chosen, total = set(), 0
    for index in order:
        query = queries[index]
        if total + sizes[query] > cap and chosen:
            continue
        chosen.add(query)
        total += sizes[query]
    return frame[frame["anchor"].isin(chosen)]


# --- the stage -------------------------------------------------------------------------------


@dataclass
class PreparedData:
    splits: dict[str, pd.DataFrame]
    report: dict[str, Any]
    retrieval: RetrievalTables | None = None

    @property
    def shape(self) -> str:
        return self.report["shape"]

    @property
    def train_shape(self) -> str:
        """The train split's shape: the data's own, or what augmentation and mining made of it
        (SimCSE pairs, triplets with mined negatives, n-tuples)."""
        return self.report.get("train_shape", self.shape)

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(self.report["counts"]).T


@dataclass
class LoadedData:
    source: Source
    frames: dict[str, pd.DataFrame]
    decision: ShapeDecision
    problems: list[Problem]
    retrieval: RetrievalTables | None


def _read_parts(source: Source):
    """(frame, file label) per part, in the order of ``source.parts``."""
    if source.kind == "hf_disk":
        for part, name in source.parts.items():
            yield read_hf_disk(source.path, name), f"{source.path} (split {name or 'all'})"
    elif source.kind == "beir":
        frames, _, _ = read_beir(source)
        for part, frame in frames.items():
            yield frame, str(source.parts[part])
    else:
        for part, path in source.parts.items():
            yield read_table(path), str(path)


def load_data(config: DataConfig) -> LoadedData:
    """Read every part of the source, map the columns, decide the shape and list the problems."""
    source = resolve_source(config.source)
    problems: list[Problem] = []
    retrieval = None
    frames: dict[str, pd.DataFrame] = {}
    decisions: list[ShapeDecision] = []
    if source.kind == "beir":
        if config.shape not in ("auto", "retrieval"):
            raise DataError(f"{source.path} is BEIR retrieval data (corpus, queries, qrels), but data.shape is "
                            f"{config.shape!r}; use retrieval or auto")
        raw_frames, retrieval, problems = read_beir(source)
        decisions.append(ShapeDecision("retrieval", {}, "a BEIR folder: corpus.jsonl, queries.jsonl and qrels"))
        frames = raw_frames
    else:
        shape = config.shape
        for part, (frame, label) in zip(source.parts, _read_parts(source)):
            frame, decided = apply_column_mapping(frame, config.columns, shape, label, config.group_by)
            shape = decided.shape  # every part must have the first part's shape
            decisions.append(decided)
            frame["_file"] = label
            frames[part] = frame
    decision = decisions[0]
    declared = list(config.labels) if config.labels else None
    for part, frame in frames.items():
        found, parsed = find_problems(frame, decision.shape, frame["_file"].iloc[0], declared)
        problems.extend(found)
        frames[part] = parsed
    return LoadedData(source, frames, decision, problems, retrieval)


def prepare_data(config: DataConfig, seed: int) -> PreparedData:
    """Load, validate, normalise, de-duplicate, decontaminate and split the configured data."""
    loaded = load_data(config)
    shape = loaded.decision.shape
    frames = loaded.frames
    counts: dict[str, dict[str, int]] = {part: {"rows_read": len(f)} for part, f in frames.items()}
    dropped: list[Dropped] = []

    if loaded.problems:
        if config.on_invalid == "error":
            raise DataError(loaded.problems)
        by_part: dict[str, list[Problem]] = defaultdict(list)
        for p in loaded.problems:
            by_part[p.file].append(p)
        for part, frame in frames.items():
            found = by_part.get(frame["_file"].iloc[0], [])
            bad_rows = {p.row for p in found}
            by_reason: dict[str, Dropped] = {}
            for p in found:
                reason = f"{p.column}: {p.message.split(',')[0]}"
                if p.column == "label" and "outside the declared set" in p.message:
                    reason = "label: outside the declared set"
                by_reason.setdefault(reason, Dropped(part, reason)).add({"row": p.row, "problem": p.message})
            dropped.extend(by_reason.values())
            frames[part] = frame[~frame["_row"].isin(bad_rows)]
            if bad_rows:
                counts[part]["invalid_dropped"] = len(bad_rows)

    report: dict[str, Any] = {"source": config.source, "source_kind": loaded.source.kind, "shape": shape,
                              "shape_reason": loaded.decision.reason}
    if shape == "pair_score":
        report["score_scale"] = _normalise_scores(frames, config, counts, dropped)
    if shape in ("pair_binary", "pair_class"):
        report["labels"] = _encode_labels(frames, shape, config)

    report["deduplicate"] = config.deduplicate
    duplicates = {}
    for part, frame in frames.items():
        frames[part], found, stats = deduplicate(frame, shape, config.deduplicate, part)
        dropped.extend(found)
        counts[part]["duplicates_dropped"] = sum(d.count for d in found)
        if stats:
            duplicates[part] = stats
    report["duplicates"] = duplicates

    if config.decontaminate:
        evaluation_sets = [load_evaluation_set(spec) for spec in config.decontaminate]
        contamination = {}
        for part in frames:
            if part == "test":
                continue  # the user's own test split is what they evaluate on; it stays as given
            frames[part], found = decontaminate(frames[part], shape, evaluation_sets, part)
            dropped.extend(found)
            counts[part]["contaminated_dropped"] = sum(d.count for d in found)
            contamination[part] = {d.reason: d.count for d in found}
        report["decontamination"] = {"against": list(config.decontaminate), "dropped": contamination}

    splits, report["split_method"] = _split(frames, shape, config, seed)
    report["cross_split_overlap"] = cross_split_overlap(splits, shape)
    if config.remove_cross_split_overlap:
        found = remove_overlap(splits, shape)
        dropped.extend(found)
        report["cross_split_overlap_removed"] = {d.split: d.count for d in found}

    caps = {"train": config.max_train_rows, "validation": config.max_validation_rows, "test": config.max_test_rows}
    for split, cap in caps.items():
        counts.setdefault(split, {})
        if cap is not None and len(splits[split]) > cap:
            before = len(splits[split])
            splits[split] = cap_rows(splits[split], cap, shape, seed)
            counts[split]["capped_away"] = before - len(splits[split])
        splits[split] = splits[split].reset_index(drop=True)
        counts[split]["rows"] = len(splits[split])
        if counts[split]["rows"] == 0:
            raise DataError(f"the {split} split is empty after cleaning; add data or change the split fractions")

    retrieval = build_retrieval_tables(splits, loaded.retrieval) if shape == "retrieval" else None
    if retrieval is not None:
        report["retrieval"] = {"documents": len(retrieval.corpus), "queries": len(retrieval.queries),
                               "queries_per_split": {s: int(f["anchor"].nunique()) for s, f in splits.items()}}
    report.update({
        "files": source_checksums(loaded.source),
        "columns": {"mapping": dict(config.columns), "renamed": loaded.decision.renamed,
                    "canonical": list(SHAPE_COLUMNS[shape])},
        "counts": counts,
        "dropped": [vars(d) for d in dropped],
        "seed": seed,
    })
    longest = longest_text(splits, shape)
    if longest is not None:
        report["longest_text"] = longest
        if longest["characters"] > LONG_TEXT_CHARS:
            # Not an error: encoding keeps a text's first max_seq_length tokens; training counts them exactly.
            warnings.warn(long_text_warning(longest), stacklevel=2)
    return PreparedData(splits=splits, report=report, retrieval=retrieval)


def longest_text(frames: dict[str, pd.DataFrame], shape: str) -> dict[str, Any] | None:
    """The longest text of ``frames`` (characters, and where it is), with the number of texts over
    LONG_TEXT_CHARS characters."""
    best, over = None, 0
    for part, frame in frames.items():
        for column in [c for c in frame.columns if c in TEXT_COLUMNS[shape] or c.startswith("negative")]:
            lengths = frame[column].astype(str).str.len().to_numpy()
            if not len(lengths):
                continue
            over += int((lengths > LONG_TEXT_CHARS).sum())
            position = int(np.argmax(lengths))
            if best is None or lengths[position] > best["characters"]:
                row = frame.iloc[position]
                best = {"characters": int(lengths[position]), "split": part, "column": column,
                        "row": int(row["_row"]) if "_row" in frame.columns else None,
                        "file": str(row["_file"]) if "_file" in frame.columns else None}
    if best is not None:
        best[f"texts_over_{LONG_TEXT_CHARS}_characters"] = over
    return best


def long_text_warning(longest: dict[str, Any]) -> str:
    where = Problem(longest.get("file") or longest["split"], longest.get("row"), longest["column"], "")
    count = longest[f"texts_over_{LONG_TEXT_CHARS}_characters"]
    return (f"{count} text(s) longer than {LONG_TEXT_CHARS:,} characters; the longest, {longest['characters']:,} "
            f"characters, is at {str(where).removesuffix(': ')}. A model reads at most its max_seq_length tokens "
            "(model.max_seq_length): the rest of such a text is cut off when it is encoded, and the training stage "
            "says how many texts it truncates")


def _normalise_scores(frames: dict[str, pd.DataFrame], config: DataConfig, counts: dict,
                      dropped: list[Dropped]) -> dict[str, Any]:
    # One scale for every split, so train and test are normalised alike.
    every_score = np.concatenate([f["score"].to_numpy(dtype=float) for f in frames.values()])
    if len(every_score) == 0:
        raise DataError("no usable rows are left")
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


def _encode_labels(frames: dict[str, pd.DataFrame], shape: str, config: DataConfig) -> dict[str, Any]:
    if shape == "pair_binary":
        for part, frame in frames.items():
            frames[part] = frame.assign(label=frame["label"].astype(int))
        names = ["0", "1"]
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


def _split(frames: dict[str, pd.DataFrame], shape: str, config: DataConfig, seed: int):
    group_columns = SPLIT_GROUP_COLUMNS[shape]
    fractions = {"validation": config.validation_fraction, "test": config.test_fraction}
    if "all" in frames:
        what = "query" if shape == "retrieval" else "text"
        return group_split(frames["all"], group_columns, fractions, seed), f"group split: no {what} in two splits"
    splits = dict(frames)
    missing = [s for s in ("validation", "test") if s not in splits]
    if "train" not in splits:
        raise DataError(f"the source has {', '.join(splits)} but no train split")
    if not missing:
        return splits, "given splits"
    carved = group_split(splits["train"], group_columns,
                         {s: fractions[s] if s in missing else 0.0 for s in ("validation", "test")}, seed)
    splits["train"] = carved["train"]
    for s in missing:
        splits[s] = carved[s]
    return splits, f"given splits; {', '.join(missing)} carved out of train by group split"


def build_retrieval_tables(splits: dict[str, pd.DataFrame], given: RetrievalTables | None) -> RetrievalTables:
    """The corpus and queries for retrieval evaluation: BEIR's own, or made from the pairs' texts
    (every positive and negative is a document; every anchor a query)."""
    if given is not None:
        return given
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    doc_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    for split in SPLITS:
        frame = splits[split]
        for column in [c for c in frame.columns if c == "positive" or c.startswith("negative")]:
            for text in frame[column]:
                if text not in doc_ids:
                    doc_ids[text] = f"d{len(doc_ids)}"
                    corpus[doc_ids[text]] = text
        for text in frame["anchor"]:
            if text not in query_ids:
                query_ids[text] = f"q{len(query_ids)}"
                queries[query_ids[text]] = text
        splits[split] = frame.assign(_qid=frame["anchor"].map(query_ids), _did=frame["positive"].map(doc_ids))
    return RetrievalTables(corpus, queries)


def output_columns(frame: pd.DataFrame, shape: str) -> list[str]:
    columns = list(SHAPE_COLUMNS[shape])
    if shape == "retrieval":
        columns += sorted((c for c in frame.columns if c.startswith("negative_")), key=lambda c: int(c.split("_")[1]))
    return columns


def split_shape(report: dict[str, Any], split: str) -> str:
    return report.get("train_shape", report["shape"]) if split == "train" else report["shape"]


def write_splits(run: RunDir, prepared: PreparedData) -> None:
    for split, frame in prepared.splits.items():
        columns = output_columns(frame, split_shape(prepared.report, split))
        if "augmentation" in frame.columns:
            columns.append("augmentation")  # which rows were added, and how (empty: original)
        lines = frame[columns].to_json(orient="records", lines=True, force_ascii=False)
        atomic_write_text(run.split_path(split), lines if lines.endswith("\n") else lines + "\n")
    if prepared.retrieval is not None:
        def jsonl(records):
            return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write_text(run.data_dir / "corpus.jsonl",
                          jsonl({"_id": i, "text": t} for i, t in prepared.retrieval.corpus.items()))
        atomic_write_text(run.data_dir / "queries.jsonl",
                          jsonl({"_id": i, "text": t} for i, t in prepared.retrieval.queries.items()))
        atomic_write_text(run.data_dir / "qrels.jsonl", jsonl(
            {"split": split, "query_id": q, "doc_id": d, "score": 1}
            for split, frame in prepared.splits.items() if "_qid" in frame.columns
            for q, d in zip(frame["_qid"], frame["_did"])))
    atomic_write_json(run.data_report_path, prepared.report)
    # The manifest keeps what a replay must reproduce: the source files and the splits written from them.
    written = sorted(p for p in run.data_dir.glob("*.jsonl"))
    run.record(data={"source": prepared.report["source"], "source_files": prepared.report.get("files", {}),
                     "splits": {p.name: file_sha256(p) for p in written}})


def load_split(run: RunDir, split: str):
    """A split of the run as a ``datasets.Dataset`` with the canonical columns, in order."""
    from datasets import Dataset

    path = run.split_path(split)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run stage data_prep (01_data_prep.ipynb) first")
    frame = pd.read_json(path, lines=True, dtype=False)
    shape = split_shape(read_report(run), split)
    if "score" in frame.columns:
        frame["score"] = frame["score"].astype(float)
    if "label" in frame.columns:  # pair_class labels are indices into report["labels"]["names"]
        frame["label"] = frame["label"].astype(int)
    return Dataset.from_pandas(frame[output_columns(frame, shape)], preserve_index=False)


def read_report(run: RunDir) -> dict[str, Any]:
    if not run.data_report_path.is_file():
        raise FileNotFoundError(f"{run.data_report_path} is missing: run stage data_prep (01_data_prep.ipynb) first")
    return json.loads(run.data_report_path.read_text(encoding="utf-8"))


def dropped_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per (split, reason) of dropped rows, with an example."""
    rows = [{"split": d["split"], "reason": d["reason"], "rows": d["count"],
             "example": d["examples"][0] if d["examples"] else None} for d in report["dropped"]]
    return pd.DataFrame(rows, columns=["split", "reason", "rows", "example"])


def overlap_table(report: dict[str, Any]) -> pd.DataFrame:
    rows = [{"splits": pair, "shared items": v["items"], "shared texts": v["texts"],
             "example": v["examples"][0] if v["examples"] else None}
            for pair, v in report.get("cross_split_overlap", {}).items()]
    return pd.DataFrame(rows, columns=["splits", "shared items", "shared texts", "example"])


# --- inspection --------------------------------------------------------------------------------


@dataclass
class Inspection:
    """What ``sttune data inspect`` prints: the shape and why, counts, problems, duplicates."""

    source: str
    shape: str | None = None
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    fatal: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # worth knowing, but the data can be used

    @property
    def usable(self) -> bool:
        return self.fatal is None and not self.problems

    def render(self, max_problems: int = 20) -> str:
        lines = [f"source: {self.source}"]
        if self.shape:
            lines.append(f"shape: {self.shape} ({self.reason})")
        for part, n in self.counts.items():
            lines.append(f"  {part}: {n:,} rows")
        for key, value in self.details.items():
            lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
        lines += [f"warning: {w}" for w in self.warnings]
        if self.fatal:
            lines.append(f"cannot be used: {self.fatal}")
        if self.problems:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p}" for p in self.problems[:max_problems]]
            if len(self.problems) > max_problems:
                lines.append(f"  ... and {len(self.problems) - max_problems} more")
        lines.append("usable: yes" if self.usable else
                     "usable: no (fix the problems, map columns with --map, or run with data.on_invalid=drop)")
        return "\n".join(lines)


def inspect_data(source: str, shape: str = "auto", columns: dict[str, str] | None = None,
                 labels: list[str] | None = None) -> Inspection:
    """Check a data source without a run: the detected shape and why, counts per part, every
    problem with its file, row and column, duplicates, and the overlap between given splits."""
    config = DataConfig(source=source, shape=shape, columns=dict(columns or {}), labels=labels)
    inspection = Inspection(source=source)
    try:
        loaded = load_data(config)
    except DataError as exc:
        inspection.fatal = str(exc)
        return inspection
    inspection.shape, inspection.reason = loaded.decision.shape, loaded.decision.reason
    inspection.counts = {part: len(f) for part, f in loaded.frames.items()}
    inspection.problems = list(loaded.problems)
    valid = {part: f[~f["_row"].isin({p.row for p in loaded.problems if p.file == f["_file"].iloc[0]})]
             for part, f in loaded.frames.items()}
    if inspection.shape == "pair_score":
        scores = np.concatenate([f["score"].to_numpy(dtype=float) for f in valid.values()])
        try:
            inspection.details["score range"] = (list(detect_score_scale(scores, score_locations(valid.values())))
                                                 if len(scores) else None)
        except DataError as exc:
            inspection.problems.append(Problem(source, None, "score", str(exc)))
    if inspection.shape in ("pair_binary", "pair_class"):
        inspection.details["labels"] = {part: {str(k): int(v) for k, v in f["label"].value_counts().items()}
                                        for part, f in valid.items()}
    longest = longest_text(valid, inspection.shape)
    if longest is not None:
        where = Problem(longest["file"], longest["row"], longest["column"], "")
        inspection.details["longest text"] = f"{longest['characters']:,} characters ({str(where).removesuffix(': ')})"
        if longest["characters"] > LONG_TEXT_CHARS:
            inspection.warnings.append(long_text_warning(longest))
    inspection.details["duplicates"] = {part: stats for part, f in valid.items()
                                        if (stats := deduplicate(f, inspection.shape, "normalized", part)[2])}
    if len(valid) > 1:
        inspection.details["cross-split overlap"] = {k: {"items": v["items"], "texts": v["texts"]} for k, v in
                                                     cross_split_overlap(valid, inspection.shape).items()}
    return inspection


# --- augmentation and hard negatives on the train split -----------------------------------------


def augment_train(prepared: PreparedData, config: DataConfig, seed: int, model_name: str = "default") -> list[dict]:
    """Apply the configured augmentation to the train split only (validation and test stay as
    they are) and record each step's report; returns the reports."""
    from . import augment

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
    if settings.simcse:
        if shape != "unlabeled":
            raise DataError(f"data.augment.simcse makes (text, text) pairs from unlabeled text; the data is {shape}")
        result = augment.simcse_pairs(frame)
        frame, reports = result.frame, reports + [result.report]
        prepared.report["train_shape"] = "retrieval"
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


def mine_train_negatives(prepared: PreparedData, config: DataConfig, model, seed: int):
    """Mine hard negatives for the train split with the base model; the train split becomes the
    mined triplets (or n-tuples). Returns the :class:`negatives.MinedNegatives` for inspection."""
    from . import negatives
    from .core.hardware import encoding_precision

    settings = config.negatives
    shape = prepared.train_shape
    if shape not in ("pair_binary", "triplet", "retrieval"):
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
            batch_size=settings.batch_size, seed=seed)
    mined.stats["settings"]["precision"] = precision
    dataset = mined.dataset.reset_index(drop=True)
    dataset["_row"] = np.arange(1, len(dataset) + 1)
    prepared.splits["train"] = dataset
    prepared.report["train_shape"] = "triplet" if settings.output_format == "triplet" else "retrieval"
    prepared.report["negatives"] = mined.stats
    prepared.report["counts"]["train"]["rows_after_negatives"] = len(dataset)
    return mined


def augmentation_table(reports: list[dict]) -> pd.DataFrame:
    """One row per augmentation step: rows in, added, removed or skipped (with the reasons)."""
    rows = [{"step": r.get("method"), "rows in": r.get("rows_in"), "rows added": r.get("rows_added"),
             "rows removed": r.get("rows_removed", 0), "skipped": r.get("skipped") or {}} for r in reports]
    return pd.DataFrame(rows, columns=["step", "rows in", "rows added", "rows removed", "skipped"])
