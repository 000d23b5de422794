"""What each augmentation method was measured to add to the test metric, read from
``measured_gains.tsv`` (filled from bench/augmentation.py's gains.tsv, never by hand-waving): the
mean gain over the plain default run across seeds and the seed spread. An empty gain is "not yet
measured", and that is what the recommender then says."""

from __future__ import annotations

import csv
from pathlib import Path

GAINS_TABLE = Path(__file__).with_name("measured_gains.tsv")
COLUMNS = ("method", "shape", "gain", "seed_spread", "measured_on")
NOT_MEASURED = "not yet measured"


def read_gains(path: Path | None = None) -> list[dict[str, str]]:
    """The table's rows (``path`` default: GAINS_TABLE; none where the file is missing); a malformed
    header is an error naming the file."""
    path = GAINS_TABLE if path is None else path
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: expected the tab-separated columns {', '.join(COLUMNS)}, "
                             f"found {', '.join(reader.fieldnames or ()) or 'none'}")
        return [{key: (value or "").strip() for key, value in row.items()} for row in reader]


def measured_gain(method: str, shape: str, path: Path | None = None) -> str:
    """E.g. "+0.0120 ± 0.0040 on the test metric (stsb 1000 pairs, 3 seeds)", one such clause per
    measured row (a set each) joined by "; ", or "not yet measured"."""
    rows = [r for r in read_gains(path) if r["method"] == method and r["shape"] == shape and r["gain"]]
    if not rows:
        return NOT_MEASURED
    clauses = []
    for row in rows:
        spread = f" ± {float(row['seed_spread']):.4f}" if row["seed_spread"] else ""
        where = f" ({row['measured_on']})" if row["measured_on"] else ""
        clauses.append(f"{float(row['gain']):+.4f}{spread} on the test metric{where}")
    return "; ".join(clauses)
