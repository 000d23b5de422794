"""Reading the data's files into DataFrames of strings, each with a ``_row`` column (the row as a
spreadsheet or an editor shows it): tables (CSV, TSV, JSONL, JSON, Parquet), Hugging Face data sets
saved to disk, and BEIR retrieval folders (corpus, queries, qrels)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .detection import COLUMN_ALIASES
from .paths import require_regular_file
from .problems import DataError, Problem
from .sources import TABLE_SUFFIXES, Source


def _stringify(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV, TSV, JSONL or Parquet into a DataFrame of strings, with a ``_row`` column that
    holds each record's row number as a spreadsheet (or, for JSONL, an editor) shows it."""
    path = Path(path)
    require_regular_file(path)  # before opening it: a named pipe would block
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        expected = ", ".join(sorted(TABLE_SUFFIXES))
        raise DataError([Problem(str(path), None, None,
                                 f"unsupported file type {suffix!r}; expected one of {expected}, "
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
    json_types: dict[str, dict[int, str]] = {}
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
        for column, value in record.items():
            if value is not None and not isinstance(value, str):
                found = json_types.setdefault(column, {})
                found[number] = f"{_json_type(value)} {_preview(value)}"
    frame = pd.DataFrame.from_records(records).map(_stringify)
    frame.insert(0, "_row", rows)
    frame.attrs[JSON_TYPES] = json_types
    return frame


# frame.attrs key of a JSONL frame: column -> {line: "object {...}"} for each value that is not a
# JSON string (or null), so that a text column can refuse it once the columns are known.
JSON_TYPES = "json_types"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "object" if isinstance(value, dict) else "array"


def _preview(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_type_problems(json_types: dict[str, dict[int, str]], columns: dict[str, str], file: str) -> list[Problem]:
    """A problem for each value of the text ``columns`` (the file's name -> the name to report)
    that was not a JSON string: an object or a list would become its Python repr, e.g. "{'a': 1}"."""
    return [Problem(file, line, reported, f"expected a text (a JSON string), found a JSON {found}")
            for column, reported in columns.items() for line, found in sorted(json_types.get(column, {}).items())]


def _parser_error_row(message: str) -> tuple[int | None, str]:
    """The spreadsheet row (the header is row 1) that a pandas parser error is about, and its words.
    pandas counts records from 1 in "Expected 3 fields in line 5, saw 4" (a spreadsheet's row), but
    from 0 in "EOF inside string starting at row 3" (the header is row 0)."""
    import re

    if match := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message):
        expected, line, saw = match.groups()
        return int(line), f"expected {expected} fields, saw {saw} (pandas: Expected {expected} fields in line {line})"
    if match := re.search(r"EOF inside string starting at row (\d+)", message):
        return int(match.group(1)) + 1, ("a quoted field that starts on this row is never closed "
                                         "(an unbalanced '\"'); the file ends inside it")
    return None, message


def _refuse_repeated_header_names(path: Path, text: str, delimiter: str) -> None:
    """A name twice in the header (row 1) is refused: pandas would rename the second 'sentence1.1',
    a column the file does not have."""
    import csv
    import io

    try:
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter))
    except (csv.Error, StopIteration):
        return  # the parser below says what is wrong
    positions: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        if name.strip():
            positions.setdefault(name.strip(), []).append(position)
    problems = [Problem(str(path), 1, name, f"the header names this column {len(at)} times (fields "
                        f"{', '.join(map(str, at))}); rename all but one of them, or remove the copies")
                for name, at in positions.items() if len(at) > 1]
    if problems:
        raise DataError(problems)


def _read_delimited(path: Path, text: str, delimiter: str) -> pd.DataFrame:
    import csv
    import io

    _refuse_repeated_header_names(path, text, delimiter)
    try:
        # Blank lines are read as empty rows and dropped below, so that row numbers match a spreadsheet's.
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                            quoting=csv.QUOTE_MINIMAL, skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        row, detail = _parser_error_row(str(exc).strip())
        raise DataError([Problem(str(path), row, None,
                                 f"cannot be parsed with delimiter {delimiter!r}: {detail}")]) from None
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



def _is_repeated_id(record: dict[str, Any], first_lines: dict[str, int], path: Path,
                    problems: list[Problem]) -> bool:
    """Whether the record's ``_id`` was on an earlier line (a problem naming both lines; the first
    record is the one kept): a later text would otherwise silently replace the first."""
    record_id = record.get("_id", "")
    if not record_id:
        return False  # reported as an id-less record
    if record_id in first_lines:
        problems.append(Problem(str(path), int(record["_row"]), "_id",
                                f"duplicate _id, {record_id!r} is already on line {first_lines[record_id]} "
                                "(with data.on_invalid=drop the first is kept)"))
        return True
    first_lines[record_id] = int(record["_row"])
    return False


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
    corpus_lines: dict[str, int] = {}
    corpus_frame = read_table(corpus_file)
    problems += json_type_problems(corpus_frame.attrs.get(JSON_TYPES, {}), {"title": "title", "text": "text"},
                                   str(corpus_file))
    for record in corpus_frame.to_dict("records"):
        text = " ".join(part for part in (record.get("title", "").strip(), record.get("text", "").strip()) if part)
        if not record.get("_id"):
            problems.append(Problem(str(corpus_file), record["_row"], "_id", "document without an id"))
        elif not text:
            problems.append(Problem(str(corpus_file), record["_row"], "text", "empty document (no title, no text)"))
        if _is_repeated_id(record, corpus_lines, corpus_file, problems):
            continue
        corpus[record.get("_id", "")] = text
    queries: dict[str, str] = {}
    query_lines: dict[str, int] = {}
    queries_file = source.path / "queries.jsonl"
    queries_frame = read_table(queries_file)
    problems += json_type_problems(queries_frame.attrs.get(JSON_TYPES, {}), {"text": "text"}, str(queries_file))
    for record in queries_frame.to_dict("records"):
        if not record.get("text", "").strip():
            problems.append(Problem(str(queries_file), record["_row"], "text", "empty query text"))
        if _is_repeated_id(record, query_lines, queries_file, problems):
            continue
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


def read_parts(source: Source) -> Iterator[tuple[pd.DataFrame, str]]:
    """(frame, file label) per part, in the order of ``source.parts``."""
    if source.kind == "hf_disk":
        for name in source.parts.values():
            yield read_hf_disk(source.path, name), f"{source.path} (split {name or 'all'})"
    elif source.kind == "beir":
        frames, _, _ = read_beir(source)
        for part, frame in frames.items():
            yield frame, str(source.parts[part])
    else:
        for path in source.parts.values():
            yield read_table(path), str(path)
