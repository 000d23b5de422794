"""Data stage: load, validate, normalise, de-duplicate, split, and write the run's splits.

Every problem is reported with the file, the row (1-based, as a spreadsheet shows it: the header
is row 1) and the column. Rows are never dropped silently: with ``on_invalid="drop"`` each dropped
row is counted in the data report with its reason and examples.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import DataConfig
from .rundir import RunDir, atomic_write_json, atomic_write_text

EMBEDDED_DIR = Path(__file__).parent / "datasets"
EMBEDDED_PREFIX = "embedded:"
SPLITS = ("train", "validation", "test")
SHAPE_COLUMNS = {"pair_score": ("sentence1", "sentence2", "score")}
TEXT_COLUMNS = {"pair_score": ("sentence1", "sentence2")}
# Known score scales, tried in this order; the first that holds every score is taken.
KNOWN_SCALES = ((0.0, 1.0), (0.0, 4.0), (1.0, 5.0), (0.0, 5.0))
SPLIT_FILE_WORDS = {"train": ("train",), "validation": ("validation", "valid", "dev", "val"), "test": ("test",)}
TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".txt", ".jsonl", ".json", ".parquet"}
MAX_LISTED_PROBLEMS = 10
EXAMPLES_PER_REASON = 3


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


class DataError(ValueError):
    """The data cannot be used as it is; ``problems`` lists what is wrong and where."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(file="data", row=None, column=None, message=problems)]
        self.problems = problems
        lines = [str(p) for p in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            lines.append(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more problems")
        super().__init__("\n".join(lines))


# --- reading ---------------------------------------------------------------------------------


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV, TSV, JSONL or Parquet into a DataFrame of strings, with a ``_row`` column that
    holds each record's row number as a spreadsheet (or, for JSONL, an editor) shows it."""
    path = Path(path)
    if not path.is_file():
        raise DataError([Problem(str(path), None, None, "file does not exist")])
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError([Problem(str(path), None, None,
                                 f"unsupported file type {suffix!r}; expected one of {', '.join(sorted(TABLE_SUFFIXES))}")])
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
        if frame.empty:
            raise DataError([Problem(str(path), None, None, "file has no rows")])
        frame = frame.astype(str)
        frame.insert(0, "_row", np.arange(2, len(frame) + 2))
        return frame

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError([Problem(str(path), line, None,
                                 f"bytes that are not UTF-8 (0x{raw[exc.start]:02x} at byte {exc.start}); "
                                 "save the file as UTF-8")]) from None
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
    frame = pd.DataFrame.from_records(records)
    frame = frame.map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    frame.insert(0, "_row", rows)
    return frame


def _read_delimited(path: Path, text: str, delimiter: str) -> pd.DataFrame:
    import csv
    import io

    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                            quoting=csv.QUOTE_MINIMAL, skip_blank_lines=True)
    except pd.errors.ParserError as exc:
        raise DataError([Problem(str(path), None, None, f"cannot be parsed with delimiter {delimiter!r}: {exc}")]) from None
    if frame.shape[1] == 1:
        header = frame.columns[0]
        found = [d for d in (",", "\t", ";", "|") if d != delimiter and d in header]
        guess = f"; the header contains {found[0]!r}, so the file may be delimited by that" if found else ""
        raise DataError([Problem(str(path), 1, None,
                                 f"found a single column {header!r} with delimiter {delimiter!r}{guess}. "
                                 "Wrong delimiter? Use .csv for commas and .tsv for tabs")])
    if frame.empty:
        raise DataError([Problem(str(path), None, None, "file has a header but no data rows")])
    # Spreadsheet row numbers; blank lines that pandas skipped are not counted (rare, documented).
    frame.insert(0, "_row", np.arange(2, len(frame) + 2))
    return frame


# --- sources ---------------------------------------------------------------------------------


def resolve_source(source: str) -> dict[str, Path] | Path:
    """A dict split -> file for a folder (or embedded set) with its own splits, else one file."""
    if source.startswith(EMBEDDED_PREFIX):
        name = source[len(EMBEDDED_PREFIX):]
        folder = EMBEDDED_DIR / name
        if not folder.is_dir():
            known = sorted(p.name for p in EMBEDDED_DIR.iterdir() if p.is_dir())
            raise DataError(f"unknown embedded data set {name!r}; embedded: {', '.join(known)}")
        return split_files(folder)
    path = Path(source).expanduser()
    if path.is_dir():
        return split_files(path)
    if not path.exists():
        raise DataError([Problem(str(path), None, None, "data source does not exist (data.source)")])
    return path


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
    if "train" not in found:
        raise DataError(f"{folder}: no file named like a train split (e.g. train.csv, sts-train.tsv) among "
                        f"{', '.join(p.name for p in tables) or 'no table files'}")
    return found


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- validation and normalisation -------------------------------------------------------------


def apply_column_mapping(frame: pd.DataFrame, mapping: dict[str, str], shape: str, file: str) -> pd.DataFrame:
    required = SHAPE_COLUMNS[shape]
    unknown_targets = sorted(set(mapping.values()) - set(required))
    if unknown_targets:
        raise DataError([Problem(file, None, None,
                                 f"data.columns maps to {unknown_targets}, which are not columns of the {shape} shape "
                                 f"({', '.join(required)})")])
    missing_sources = [c for c in mapping if c not in frame.columns and c not in required]
    frame = frame.rename(columns={k: v for k, v in mapping.items() if k in frame.columns})
    absent = [c for c in required if c not in frame.columns]
    if absent:
        found = ", ".join(c for c in frame.columns if c != "_row")
        extra = f"; data.columns names {missing_sources}, which the file lacks" if missing_sources else ""
        raise DataError([Problem(file, 1, col,
                                 f"missing column {col!r}: the {shape} shape needs columns {', '.join(required)}; "
                                 f"found {found}{extra}. Map yours with data.columns "
                                 f"(e.g. -p data.columns.my_column={col})") for col in absent])
    return frame[["_row", *required]].copy()


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


def find_problems(frame: pd.DataFrame, shape: str, file: str) -> tuple[list[Problem], pd.Series]:
    """Problems of each row (empty text, non-numeric score); returns them and a parsed score column."""
    problems: list[Problem] = []
    for column in TEXT_COLUMNS[shape]:
        blank = frame[column].str.strip() == ""
        for row in frame.loc[blank, "_row"]:
            problems.append(Problem(file, int(row), column, "empty text (or only whitespace)"))
    scores = pd.to_numeric(frame["score"].str.strip(), errors="coerce")
    for row, raw in zip(frame.loc[scores.isna(), "_row"], frame.loc[scores.isna(), "score"]):
        problems.append(Problem(file, int(row), "score", f"expected a number, got {raw!r}"))
    infinite = np.isinf(scores.fillna(0))
    for row, raw in zip(frame.loc[infinite, "_row"], frame.loc[infinite, "score"]):
        problems.append(Problem(file, int(row), "score", f"expected a finite number, got {raw!r}"))
    return problems, scores


def detect_score_scale(scores: np.ndarray) -> tuple[float, float]:
    low, high = float(np.min(scores)), float(np.max(scores))
    for scale in KNOWN_SCALES:
        if scale[0] <= low and high <= scale[1]:
            return scale
    raise DataError(f"scores range from {low:g} to {high:g}, which fits none of the known scales "
                    f"({', '.join(f'{a:g}-{b:g}' for a, b in KNOWN_SCALES)}): set data.score_range, e.g. "
                    f"-p 'data.score_range=[{math.floor(low)}, {math.ceil(high)}]'")


# --- splitting -------------------------------------------------------------------------------


def group_split(frame: pd.DataFrame, text_columns: tuple[str, ...], fractions: dict[str, float],
                seed: int) -> dict[str, pd.DataFrame]:
    """Split so that no sentence appears in two splits: rows that share a sentence (directly or
    through a chain) form one group, and whole groups are assigned to splits."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for texts in frame[list(text_columns)].itertuples(index=False):
        roots = [find(t) for t in texts]
        for other in roots[1:]:
            parent[other] = roots[0]
    groups = frame[text_columns[0]].map(find)
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


# --- the stage -------------------------------------------------------------------------------


@dataclass
class PreparedData:
    splits: dict[str, pd.DataFrame]
    report: dict[str, Any]

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(self.report["counts"]).T


def prepare_data(config: DataConfig, seed: int) -> PreparedData:
    """Load, validate, normalise, de-duplicate and split the configured data."""
    shape = config.shape
    source = resolve_source(config.source)
    files: dict[str, Path] = source if isinstance(source, dict) else {"all": source}
    counts: dict[str, dict[str, int]] = {}
    dropped: list[Dropped] = []

    frames: dict[str, pd.DataFrame] = {}
    all_problems: list[Problem] = []
    for part, path in files.items():
        frame = apply_column_mapping(read_table(path), config.columns, shape, str(path))
        problems, scores = find_problems(frame, shape, str(path))
        frame["score"] = scores
        frame["_file"] = str(path)
        counts[part] = {"rows_read": len(frame)}
        if problems:
            bad_rows = {p.row for p in problems}
            if config.on_invalid == "error":
                all_problems.extend(problems)
            else:
                by_reason: dict[str, Dropped] = {}
                for p in problems:
                    reason = f"{p.column}: {p.message.split(',')[0]}"
                    entry = by_reason.setdefault(reason, Dropped(part, reason))
                    entry.add({"row": p.row, "problem": p.message})
                dropped.extend(by_reason.values())
                frame = frame[~frame["_row"].isin(bad_rows)]
            counts[part]["invalid_dropped"] = len(bad_rows)
        frames[part] = frame
    if all_problems:
        raise DataError(all_problems)

    # One scale for every split, so train and test are normalised alike.
    every_score = np.concatenate([f["score"].to_numpy(dtype=float) for f in frames.values()])
    if len(every_score) == 0:
        raise DataError("no usable rows are left")
    if config.score_range is not None:
        if len(config.score_range) != 2 or config.score_range[0] >= config.score_range[1]:
            raise DataError(f"data.score_range must be [low, high] with low < high, got {config.score_range}")
        scale = (float(config.score_range[0]), float(config.score_range[1]))
        detected = False
    else:
        scale = detect_score_scale(every_score)
        detected = True
    out_of_range: list[Problem] = []
    for part, frame in frames.items():
        outside = (frame["score"] < scale[0]) | (frame["score"] > scale[1])
        for row, value, file in zip(frame.loc[outside, "_row"], frame.loc[outside, "score"], frame.loc[outside, "_file"]):
            out_of_range.append(Problem(file, int(row), "score", f"{value:g} is outside the score range {scale[0]:g}-{scale[1]:g}"))
        if outside.any() and config.on_invalid == "drop":
            entry = Dropped(part, "score: outside the score range")
            for row, value in zip(frame.loc[outside, "_row"], frame.loc[outside, "score"]):
                entry.add({"row": int(row), "score": float(value)})
            dropped.append(entry)
            frames[part] = frame[~outside]
            counts[part]["invalid_dropped"] = counts[part].get("invalid_dropped", 0) + int(outside.sum())
    if out_of_range and config.on_invalid == "error":
        raise DataError(out_of_range)
    for frame in frames.values():
        frame["score"] = (frame["score"] - scale[0]) / (scale[1] - scale[0])

    if config.deduplicate:
        for part, frame in frames.items():
            duplicated = frame.duplicated(subset=list(TEXT_COLUMNS[shape]), keep="first")
            if duplicated.any():
                entry = Dropped(part, "exact duplicate pair (first kept)")
                for row, s1, s2 in zip(frame.loc[duplicated, "_row"], frame.loc[duplicated, "sentence1"],
                                       frame.loc[duplicated, "sentence2"]):
                    entry.add({"row": int(row), "sentence1": s1, "sentence2": s2})
                dropped.append(entry)
            frames[part] = frame[~duplicated]
            counts[part]["duplicates_dropped"] = int(duplicated.sum())

    if "all" in frames:
        splits = group_split(frames["all"], TEXT_COLUMNS[shape],
                             {"validation": config.validation_fraction, "test": config.test_fraction}, seed)
        split_method = "group split: no sentence in two splits"
    else:
        splits = dict(frames)
        if "validation" not in splits or "test" not in splits:
            missing = [s for s in ("validation", "test") if s not in splits]
            carved = group_split(splits["train"], TEXT_COLUMNS[shape],
                                 {"validation": config.validation_fraction if "validation" in missing else 0.0,
                                  "test": config.test_fraction if "test" in missing else 0.0}, seed)
            splits["train"] = carved["train"]
            for s in missing:
                splits[s] = carved[s]
            split_method = f"given splits; {', '.join(missing)} carved out of train by group split"
        else:
            split_method = "given splits"

    caps = {"train": config.max_train_rows, "validation": config.max_validation_rows, "test": config.max_test_rows}
    for split, cap in caps.items():
        counts.setdefault(split, {})
        if cap is not None and len(splits[split]) > cap:
            counts[split]["capped_away"] = len(splits[split]) - cap
            splits[split] = splits[split].sample(n=cap, random_state=seed).sort_values("_row")
        splits[split] = splits[split].reset_index(drop=True)
        counts[split]["rows"] = len(splits[split])
        if counts[split]["rows"] == 0:
            raise DataError(f"the {split} split is empty after cleaning; add data or change the split fractions")

    report = {
        "source": config.source,
        "shape": shape,
        "files": {part: {"path": str(p), "sha256": file_sha256(p)} for part, p in files.items()},
        "columns": {"mapping": dict(config.columns), "canonical": list(SHAPE_COLUMNS[shape])},
        "score_scale": {"original": list(scale), "detected": detected, "normalised_to": [0.0, 1.0]},
        "split_method": split_method,
        "counts": counts,
        "dropped": [vars(d) for d in dropped],
        "seed": seed,
    }
    return PreparedData(splits=splits, report=report)


def write_splits(run: RunDir, prepared: PreparedData) -> None:
    shape = prepared.report["shape"]
    columns = list(SHAPE_COLUMNS[shape])
    for split, frame in prepared.splits.items():
        lines = frame[columns].to_json(orient="records", lines=True, force_ascii=False)
        atomic_write_text(run.split_path(split), lines if lines.endswith("\n") else lines + "\n")
    atomic_write_json(run.data_report_path, prepared.report)


def load_split(run: RunDir, split: str):
    """A split of the run as a ``datasets.Dataset`` with the canonical columns, in order."""
    from datasets import Dataset

    path = run.split_path(split)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run stage data_prep (01_data_prep.ipynb) first")
    frame = pd.read_json(path, lines=True, dtype=False)
    frame["score"] = frame["score"].astype(float)
    shape = read_report(run)["shape"]
    return Dataset.from_pandas(frame[list(SHAPE_COLUMNS[shape])], preserve_index=False)


def read_report(run: RunDir) -> dict[str, Any]:
    if not run.data_report_path.is_file():
        raise FileNotFoundError(f"{run.data_report_path} is missing: run stage data_prep (01_data_prep.ipynb) first")
    return json.loads(run.data_report_path.read_text(encoding="utf-8"))


def dropped_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per (split, reason) of dropped rows, with an example."""
    rows = [{"split": d["split"], "reason": d["reason"], "rows": d["count"],
             "example": d["examples"][0] if d["examples"] else None} for d in report["dropped"]]
    return pd.DataFrame(rows, columns=["split", "reason", "rows", "example"])
