"""``sttune data inspect``: check a data source without a run and say what the data stage would
make of it (the shape and why, counts, every problem, duplicates, overlap between given splits).

"usable: yes" means the data stage passes: where no row has a problem, inspect runs the stage's own
:func:`prepare_data` (the default preset's data settings and seed, plus what inspect is given), so
cleaning, de-duplication and the split sizes after them are checked as a run checks them. No model
is loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .. import shapes
from ..config import load_preset
from .cleaning import cross_split_overlap, deduplicate
from .labels import detect_score_scale, score_locations, single_score_problems
from .prepare import LONG_TEXT_CHARS, load_data, long_text_warning, longest_text, prepare_data
from .problems import DataError, Problem


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
    defaults = load_preset("default")
    config = replace(defaults.data, source=source, shape=shape, columns=dict(columns or {}), labels=labels)
    inspection = Inspection(source=source)
    try:
        loaded = load_data(config)
    except DataError as exc:
        inspection.fatal = str(exc)
        return inspection
    except OSError as exc:  # unreadable data is unusable data: exit 1 like any other, not a crash or 2
        inspection.fatal = f"{exc.filename}: {exc.strerror or exc}" if exc.filename else str(exc)
        return inspection
    inspection.shape, inspection.reason = loaded.decision.shape, loaded.decision.reason
    inspection.counts = {part: len(f) for part, f in loaded.frames.items()}
    inspection.problems = list(loaded.problems)
    valid = {part: f[~f["_row"].isin({p.row for p in loaded.problems if p.file == f["_file"].iloc[0]})]
             for part, f in loaded.frames.items()}
    label_column = shapes.get(inspection.shape).label_column
    if label_column == "score":
        inspection.problems += single_score_problems(valid.values())
        scores = np.concatenate([f["score"].to_numpy(dtype=float) for f in valid.values()])
        try:
            inspection.details["score range"] = (list(detect_score_scale(scores, score_locations(valid.values())))
                                                 if len(scores) else None)
        except DataError as exc:
            inspection.problems.append(Problem(source, None, "score", str(exc)))
    if label_column == "label":
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
    if inspection.usable:
        # The rest of the data stage (scales, labels, de-duplication, splits and their sizes after
        # cleaning): what stops it stops a run, with the same message.
        try:
            prepare_data(config, defaults.seed, loaded=loaded)
        except DataError as exc:
            inspection.fatal = str(exc)
    return inspection
