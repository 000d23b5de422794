"""The data stage: from a ``data.source`` to the run's train / validation / test splits and report.

problems.py   Problem, DataError, Dropped: what is wrong, where, and what was removed
sources.py    resolve a data.source (file, folder, HF disk, BEIR, embedded) and checksum it
readers.py    read tables, HF data sets on disk and BEIR folders into frames of strings
detection.py  column aliases and mapping, the task shape decided from the columns
validation.py every problem of every row (the shape checks its own labels)
labels.py     score scales and their normalisation, class labels as indices
cleaning.py   de-duplication, cross-split overlap, decontamination
splits.py     group split, carving missing splits, row caps
prepare.py    load_data and prepare_data: the stage's steps in order -> PreparedData
store.py      write the splits and report to the run directory, read them back
inspect.py    `sttune data inspect`
lexical.py, negatives.py   hard-negative mining (BM25/TF-IDF and embedding candidates)
augment/      synonyms, back-translation, SimCSE, rule-based pairs
train_split.py augmentation and mining applied to the prepared train split
tables.py     what notebook 01 displays
"""

from .cleaning import cross_split_overlap, deduplicate, normalise_text
from .detection import detect_shape, output_columns
from .inspect import inspect_data
from .labels import detect_score_scale
from .prepare import PreparedData, load_data, prepare_data
from .problems import DataError, Problem
from .readers import read_table
from .sources import resolve_source
from .splits import group_split
from .store import load_split, read_report, split_shape, write_splits
from .tables import (
    augmentation_gains_table,
    augmentation_table,
    dropped_table,
    negatives_off_note,
    negatives_table,
    overlap_table,
    plot_score_distributions,
    rejected_table,
)
from .train_split import augment_train, mine_train_negatives, negatives_enabled

__all__ = [
    "DataError", "PreparedData", "Problem", "augment_train", "augmentation_gains_table", "augmentation_table",
    "cross_split_overlap", "deduplicate",
    "detect_score_scale", "detect_shape", "dropped_table", "group_split", "inspect_data", "load_data", "load_split",
    "mine_train_negatives", "negatives_enabled", "negatives_off_note", "negatives_table", "normalise_text",
    "output_columns", "overlap_table",
    "plot_score_distributions", "prepare_data", "read_report", "read_table", "rejected_table", "resolve_source",
    "split_shape", "write_splits",
]
