"""Splitting into train, validation and test: a group split that keeps every text (or query, or
``data.group_by`` group) in one split, carving missing splits out of train, and seeded row caps."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from .. import shapes
from ..config import DataConfig
from .cleaning import normalise_text
from .problems import DataError

SPLITS = ("train", "validation", "test")


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
    if not shapes.get(shape).query_groups:
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


def split_frames(frames: dict[str, pd.DataFrame], shape: str, config: DataConfig,
                 seed: int) -> tuple[dict[str, pd.DataFrame], str]:
    """The three splits from the parts read (one table, or given splits), and how they were made."""
    task = shapes.get(shape)
    group_columns = task.group_columns
    fractions = {"validation": config.validation_fraction, "test": config.test_fraction}
    if "all" in frames:
        what = "query" if task.query_groups else "text"
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
