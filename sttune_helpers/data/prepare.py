"""The data stage: load the configured source, decide the task shape, validate, normalise scores
and labels, de-duplicate, decontaminate, split and cap, into :class:`PreparedData` with its report.

Rows are never dropped silently: with ``on_invalid="drop"`` each dropped row is counted in the data
report with its reason and examples, and so is every duplicate or contaminated row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import shapes
from ..config import DataConfig
from ..core.reporting import get_logger
from .cleaning import cross_split_overlap, decontaminate, deduplicate, load_evaluation_set, remove_overlap
from .detection import ShapeDecision, apply_column_mapping
from .labels import encode_labels, normalise_scores
from .problems import DataError, Dropped, Problem
from .readers import JSON_TYPES, RetrievalTables, json_type_problems, read_beir, read_parts
from .sources import Source, resolve_source, source_checksums
from .splits import SPLITS, cap_rows, split_frames
from .validation import find_problems

log = get_logger(__name__)

# Texts longer than this are worth a warning: beyond what most models read (512 tokens is roughly
# 2,000-3,000 characters of English); the training stage counts the ones it truncates exactly.
LONG_TEXT_CHARS = 10_000


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
        for part, (frame, label) in zip(source.parts, read_parts(source)):
            json_types = frame.attrs.get(JSON_TYPES, {})
            frame, decided = apply_column_mapping(frame, config.columns, shape, label, config.group_by,
                                                   config.labels)
            shape = decided.shape  # every part must have the first part's shape
            task = shapes.get(shape)
            canonical = {column: decided.renamed.get(column, column) for column in json_types}
            text_columns = {column: name for column, name in canonical.items()
                            if name in task.text_columns or name.startswith("negative_")}
            problems += json_type_problems(json_types, text_columns, label)
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


def prepare_data(config: DataConfig, seed: int, loaded: LoadedData | None = None) -> PreparedData:
    """Load, validate, normalise, de-duplicate, decontaminate and split the configured data.

    ``loaded`` is what :func:`load_data` read for ``config`` (``sttune data inspect`` passes it so as
    not to read the source twice); it is left as it was."""
    loaded = load_data(config) if loaded is None else loaded
    shape = loaded.decision.shape
    frames = dict(loaded.frames)
    counts: dict[str, dict[str, int]] = {part: {"rows_read": len(f)} for part, f in frames.items()}
    dropped: list[Dropped] = []

    if loaded.problems:
        if config.on_invalid == "error":
            raise DataError(loaded.problems)
        by_part: dict[str, list[Problem]] = defaultdict(list)
        for p in loaded.problems:
            by_part[p.file].append(p)
        for part, frame in frames.items():
            found = by_part.pop(frame["_file"].iloc[0], [])
            bad_rows = {p.row for p in found}
            dropped.extend(_dropped_by_reason(part, found))
            frames[part] = frame[~frame["_row"].isin(bad_rows)]
            if bad_rows:
                counts[part]["invalid_dropped"] = len(bad_rows)
        # Records of files that are no split of their own (a BEIR corpus.jsonl or queries.jsonl):
        # the reader left them out (a repeated _id keeps its first record); counted under the file's name.
        for file, found in by_part.items():
            dropped.extend(_dropped_by_reason(Path(file).stem, found))
        invalid = len({(p.file, p.row) for p in loaded.problems})
        log.warning(f"{invalid} invalid row(s) dropped (data.on_invalid: drop); why is in the data report "
                    "(data/report.json, 'dropped')")

    report: dict[str, Any] = {"source": config.source, "source_kind": loaded.source.kind, "shape": shape,
                              "shape_reason": loaded.decision.reason}
    task = shapes.get(shape)
    if task.label_column == "score":
        report["score_scale"] = normalise_scores(frames, config, counts, dropped)
    if task.label_column == "label":
        report["labels"] = encode_labels(frames, shape, config)

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

    splits, report["split_method"] = split_frames(frames, shape, config, seed)
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

    retrieval = build_retrieval_tables(splits, loaded.retrieval) if task.query_groups else None
    if retrieval is not None:
        report["retrieval"] = {"documents": len(retrieval.corpus), "queries": len(retrieval.queries),
                               "queries_per_split": {s: int(f["anchor"].nunique()) for s, f in splits.items()}}
    report.update({
        "files": source_checksums(loaded.source),
        "columns": {"mapping": dict(config.columns), "renamed": loaded.decision.renamed,
                    "canonical": list(task.columns)},
        "counts": counts,
        "dropped": [vars(d) for d in dropped],
        "seed": seed,
    })
    longest = longest_text(splits, shape)
    if longest is not None:
        report["longest_text"] = longest
        if longest["characters"] > LONG_TEXT_CHARS:
            # Not an error: encoding keeps a text's first max_seq_length tokens; training counts them exactly.
            log.warning(long_text_warning(longest))
    return PreparedData(splits=splits, report=report, retrieval=retrieval)


def _dropped_by_reason(part: str, found: list[Problem]) -> list[Dropped]:
    """The problems of one part's dropped rows, counted per reason."""
    by_reason: dict[str, Dropped] = {}
    for p in found:
        reason = f"{p.column}: {p.message.split(',')[0]}"
        if p.column == "label" and "outside the declared set" in p.message:
            reason = "label: outside the declared set"
        by_reason.setdefault(reason, Dropped(part, reason)).add({"row": p.row, "problem": p.message})
    return list(by_reason.values())


def longest_text(frames: dict[str, pd.DataFrame], shape: str) -> dict[str, Any] | None:
    """The longest text of ``frames`` (characters, and where it is), with the number of texts over
    LONG_TEXT_CHARS characters."""
    best, over = None, 0
    text_columns = shapes.get(shape).text_columns
    for part, frame in frames.items():
        for column in [c for c in frame.columns if c in text_columns or c.startswith("negative")]:
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

