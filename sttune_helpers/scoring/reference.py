"""The general-ability reference: the sets shipped in datasets/reference/ (STS-B, SNLI as relatedness,
SQuAD retrieval), in a selection half (choosing models during training) and a report half (the
evaluation stage), with any part built from the run's own training source left out."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .. import shapes
from ..config import RunConfig
from ..data import load_split
from ..rundir import RunDir
from .taskset import TaskSet, sub_corpus

REFERENCE_DIR = Path(__file__).parent.parent / "datasets" / "reference"
STSB_TEST = Path(__file__).parent.parent / "datasets" / "stsb" / "sts-test.tsv"
HALVES = ("selection", "report")
STS_PARTS = ("stsb", "snli")  # the first one not built from the run's own source is used
RETRIEVAL_PARTS = ("squad",)
KIND = {"stsb": "sts", "snli": "sts", "squad": "retrieval"}
# A part is the run's own source when its family holds at least this share of the run's distinct
# training texts; a few shared sentences (STS-B and SNLI share some) stay below it.
FAMILY_OVERLAP = 0.05
PRIMARY = {"pair_score": shapes.get("pair_score").primary_metric, "retrieval": shapes.get("retrieval").primary_metric}
HASH_CHARS = 12
# The parts are encoded without any prompt, also where the model has a default one (train.task_prompt):
# the reference measures the model's general use.
GENERAL_USE = ""

_NOT_WORD = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """Case-folded, punctuation dropped, whitespace collapsed: SNLI's tokenised 'packages .' and a
    user's 'packages.' match."""
    return " ".join(_NOT_WORD.sub(" ", str(text).casefold()).split())


def fingerprint(text: str) -> str:
    return hashlib.sha1(normalise(text).encode("utf-8")).hexdigest()[:HASH_CHARS]


@dataclass
class GeneralReference:
    """The reference parts of one half, and what was left out of them and why."""

    half: str
    parts: list[TaskSet]
    excluded: list[dict] = field(default_factory=list)  # {"part", "kind", "items": "all" | n, "reason"}


# --- the shipped files -------------------------------------------------------------------------


def _read_tsv(path: Path):
    import pandas as pd

    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def family_fingerprints(part: str) -> set[str]:
    """Short hashes of every normalised text of the part's whole source family."""
    return set((REFERENCE_DIR / f"{part}-fingerprints.txt").read_text(encoding="ascii").split())


def sts_part(part: str, half: str) -> TaskSet:
    """An STS part as pair_score items, gold scaled to 0..1."""
    import pandas as pd

    path = STSB_TEST if (part, half) == ("stsb", "report") else REFERENCE_DIR / f"{part}-{half}.tsv"
    frame = _read_tsv(path)
    scale = 5.0 if part == "stsb" else 1.0
    items = pd.DataFrame({"sentence1": frame["sentence1"], "sentence2": frame["sentence2"],
                          "score": frame["score"].astype(float) / scale})
    return TaskSet("pair_score", f"{part}-{half}", items, score_range=(0.0, scale), prompt=GENERAL_USE)


def retrieval_part(part: str, half: str) -> TaskSet:
    """A retrieval part laid out as scoring/tasks.py's load_task lays out a run's retrieval split."""
    import pandas as pd

    corpus = {d["_id"]: d["text"] for d in _read_jsonl(REFERENCE_DIR / f"{part}-{half}-corpus.jsonl")}
    queries = _read_jsonl(REFERENCE_DIR / f"{part}-{half}-queries.jsonl")
    items = pd.DataFrame({"query_id": [q["_id"] for q in queries], "query": [q["text"] for q in queries],
                          "relevant": [corpus[q["doc_id"]][:80] for q in queries]})
    return TaskSet("retrieval", f"{part}-{half}", items, corpus=corpus, relevant=[{q["doc_id"]} for q in queries],
                   prompt=GENERAL_USE)


def load_part(part: str, half: str) -> TaskSet:
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}, got {half!r}")
    return sts_part(part, half) if KIND[part] == "sts" else retrieval_part(part, half)


# --- what the run trained on -------------------------------------------------------------------


def train_texts(run: RunDir) -> set[str]:
    """The run's distinct training texts, normalised: every text column of the train split."""
    frame = load_split(run, "train").to_pandas()
    columns = [c for c in frame.columns if c not in ("score", "label")]
    return {normalise(text) for column in columns for text in frame[column] if isinstance(text, str) and text}


def family_share(part: str, texts: set[str]) -> float:
    """The share of the run's distinct training texts that belong to the part's source family."""
    if not texts:
        return 0.0
    family = family_fingerprints(part)
    return sum(hashlib.sha1(t.encode("utf-8")).hexdigest()[:HASH_CHARS] in family for t in texts) / len(texts)


def item_texts(task: TaskSet) -> list[list[str]]:
    """The texts of each item: a pair's two sentences, a query and its relevant documents."""
    if task.shape == "retrieval":
        return [[query, *(task.corpus[d] for d in wanted)] for query, wanted in zip(task.items["query"], task.relevant)]
    return [[a, b] for a, b in zip(task.items["sentence1"], task.items["sentence2"])]


def keep_items(task: TaskSet, keep: list[int]) -> TaskSet:
    task.items = task.items.iloc[keep].reset_index(drop=True)
    if task.relevant is not None:
        task.relevant = [task.relevant[i] for i in keep]
    return task


def drop_overlap(task: TaskSet, texts: set[str]) -> int:
    """Drop the items any of whose texts the run trained on; the number dropped."""
    keep = [i for i, item in enumerate(item_texts(task)) if not any(normalise(t) in texts for t in item)]
    dropped = task.n - len(keep)
    keep_items(task, keep)
    return dropped


def cap_items(task: TaskSet, max_items: int | None, seed: int) -> TaskSet:
    """A seeded sample of ``max_items`` pairs or queries (the corpus stays whole)."""
    if max_items is None or task.n <= max_items:
        return task
    import numpy as np

    keep = sorted(np.random.default_rng(seed).choice(task.n, size=max_items, replace=False).tolist())
    return keep_items(task, keep)


# --- the rule ------------------------------------------------------------------------------------

_SOURCE_NAMES = {"stsb": "STS-B", "snli": "SNLI", "squad": "SQuAD"}


def _own_source(part: str, share: float) -> dict:
    return {"part": part, "kind": KIND[part], "items": "all",
            "reason": f"{share:.0%} of the run's training texts are {_SOURCE_NAMES[part]} texts: the run's own source"}


def choose_parts(texts: set[str]) -> tuple[list[str], list[dict]]:
    """The first STS part and the retrieval part that are not the run's own source, and why others
    were left out."""
    chosen, excluded = [], []
    for candidates, kind in ((STS_PARTS, "sts"), (RETRIEVAL_PARTS, "retrieval")):
        for part in candidates:
            share = family_share(part, texts)
            if share < FAMILY_OVERLAP:
                chosen.append(part)
                break
            excluded.append(_own_source(part, share))
        else:
            excluded.append({"part": None, "kind": kind, "items": "all",
                             "reason": f"no {kind} part: every candidate ({', '.join(candidates)}) is the run's "
                                       "own source"})
    return chosen, excluded


def general_reference(run: RunDir | None, config: RunConfig,
                      half: Literal["selection", "report"]) -> GeneralReference:
    """The reference parts of ``half`` for ``run``: an STS part (STS-B, or SNLI when STS-B is the
    run's own source) and a retrieval part (SQuAD); items sharing a text with the run's training
    data are dropped; ``config.eval.reference_max_pairs`` caps each part's pairs or queries, and
    ``config.eval.reference_corpus_size`` the retrieval part's corpus.
    ``run=None``: every default part, nothing excluded."""
    texts = train_texts(run) if run is not None else set()
    names, excluded = choose_parts(texts) if texts else ([STS_PARTS[0], *RETRIEVAL_PARTS], [])
    parts = []
    for name in names:
        task = load_part(name, half)
        dropped = drop_overlap(task, texts) if texts else 0
        if dropped:
            unit = "queries" if task.shape == "retrieval" else "pairs"
            excluded.append({"part": name, "kind": KIND[name], "items": dropped,
                             "reason": f"{dropped} {unit} share a text with the run's training data"})
        if task.n:
            task = cap_items(task, config.eval.reference_max_pairs, config.seed)
            if task.corpus is not None:
                task.corpus = sub_corpus(task.corpus, dict(enumerate(task.relevant)),
                                         config.eval.reference_corpus_size, config.seed)
            parts.append(task)
    return GeneralReference(half, parts, excluded)


def part_name(task: TaskSet) -> str:
    """'stsb' of 'stsb-report'."""
    return task.name.rsplit("-", 1)[0]


def sts_reference(run: RunDir | None, config: RunConfig, half: str = "report") -> TaskSet:
    """The STS part of ``half``: what a shape measured on the reference (unlabeled) is scored on."""
    reference = general_reference(run, config, half)
    sts = [p for p in reference.parts if p.shape == "pair_score"]
    if not sts:
        from .errors import EvaluationError

        raise EvaluationError("no STS reference part is left: " + "; ".join(e["reason"] for e in reference.excluded))
    return sts[0]
