"""The run directory's ``data/`` folder: writing the prepared splits (and, for retrieval, the
corpus, queries and qrels) with the data report, and reading them back for the later stages."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ..core.io import atomic_write_json, atomic_write_text, file_sha256
from ..rundir import RunDir
from .detection import output_columns
from .prepare import PreparedData


def split_shape(report: dict[str, Any], split: str) -> str:
    """A split's shape: the train split's may differ (augmentation, mined negatives)."""
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
