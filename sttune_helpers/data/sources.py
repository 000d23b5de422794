"""Where the data comes from: a ``data.source`` string resolved to a :class:`Source` (one table, a
folder of split tables, a Hugging Face data set saved with ``save_to_disk``, a BEIR folder, or a
data set embedded in the package), and the checksums of its files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.io import file_sha256
from .paths import DIRECTORY, MISSING, REGULAR_FILE, describe_path
from .problems import DataError, Problem

EMBEDDED_DIR = Path(__file__).parent.parent / "datasets"
EMBEDDED_PREFIX = "embedded:"
SPLIT_FILE_WORDS = {"train": ("train",), "validation": ("validation", "valid", "dev", "val"), "test": ("test",)}
TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".txt", ".jsonl", ".json", ".parquet"}


@dataclass
class Source:
    """Where the data comes from: one table, a folder of split tables, a Hugging Face data set
    saved with ``save_to_disk``, or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv)."""

    kind: str  # "file" | "folder" | "hf_disk" | "beir"
    path: Path
    parts: dict[str, Any]  # part ("all" or a split) -> file path, HF split name, or qrels file


BEIR_MEMBERS = {"corpus.jsonl": REGULAR_FILE, "queries.jsonl": REGULAR_FILE, "qrels": DIRECTORY}


def beir_gaps(path: Path) -> list[str]:
    """What a folder lacks to be a BEIR folder ("corpus.jsonl is missing", "qrels/ is a broken
    symbolic link to X, not a directory"); empty when it is one."""
    gaps = []
    for name, expected in BEIR_MEMBERS.items():
        kind = describe_path(path / name)
        label = name + "/" if expected == DIRECTORY else name
        if kind == MISSING:
            gaps.append(f"{label} is missing")
        elif kind != expected:
            gaps.append(f"{label} is {kind}, not {expected}")
    return gaps


def is_beir_folder(path: Path) -> bool:
    return not beir_gaps(path)


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
        what = describe_path(path)  # before anything opens it: a named pipe would block
        if what == MISSING:
            raise DataError([Problem(str(path), None, None, "data source does not exist (data.source)")])
        if what not in (REGULAR_FILE, DIRECTORY):
            raise DataError([Problem(str(path), None, None,
                                     f"not a regular file: {what}; expected a data file "
                                     f"({', '.join(sorted(TABLE_SUFFIXES))}) or a folder (data.source)")])
    if path.is_file():
        return Source("file", path, {"all": path})
    gaps = beir_gaps(path)
    if not gaps:
        qrels = split_files(path / "qrels")
        kind = "beir"
    elif is_hf_disk_folder(path):
        return Source("hf_disk", path, hf_disk_splits(path))
    else:
        try:
            qrels = split_files(path)
        except DataError:
            if len(gaps) == len(BEIR_MEMBERS):  # nothing of BEIR: a folder of split files was meant
                raise
            raise DataError([Problem(str(path), None, None,
                                     f"a directory that is not a BEIR folder: {'; '.join(gaps)} (a BEIR folder "
                                     "holds corpus.jsonl, queries.jsonl and qrels/; a folder of split files "
                                     "holds files named like train.csv, dev.tsv, test.jsonl)")]) from None
        kind = "folder"
    if split:
        if split not in qrels:
            raise DataError(f"{source}: no {split!r} split; it has {', '.join(qrels)}")
        qrels = {split: qrels[split]}
    return Source(kind, path, qrels)


def split_files(folder: Path) -> dict[str, Path]:
    """Find train / validation / test files in a folder by their names."""
    # Not only regular files: a named pipe or a broken link called train.csv is named when it is read.
    tables = [p for p in sorted(folder.iterdir()) if not p.is_dir() and p.suffix.lower() in TABLE_SUFFIXES]
    found: dict[str, Path] = {}
    for split, words in SPLIT_FILE_WORDS.items():
        matches = [p for p in tables if any(w in p.stem.lower().replace("-", "_").split("_") or p.stem.lower() == w
                                            for w in words)]
        if len(matches) > 1:
            names = ", ".join(m.name for m in matches)
            raise DataError(f"{folder}: several files look like the {split} split: {names}")
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


def source_checksums(source: Source) -> dict[str, dict[str, str]]:
    if source.kind == "hf_disk":
        files = sorted(p for p in source.path.rglob("*") if p.is_file())
        return {str(p.relative_to(source.path)): {"path": str(p), "sha256": file_sha256(p)} for p in files}
    files = dict(source.parts)
    if source.kind == "beir":
        files.update(corpus=source.path / "corpus.jsonl", queries=source.path / "queries.jsonl")
    return {part: {"path": str(p), "sha256": file_sha256(p)} for part, p in files.items()}
