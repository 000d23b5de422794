"""Several seeds: the runs beside this one that differ only in the seed, and the spread of every
model's metrics over them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..config import load_config
from ..core.io import read_json
from ..rundir import RunDir


def seed_runs(run: RunDir) -> list[Path]:
    """Runs beside this one (same runs directory) with the same config but for the seed, that have
    finished evaluation, this one included."""
    mine = run.load_config().to_dict()
    mine.pop("seed")
    found = []
    for other in sorted(run.root.parent.iterdir()):
        config_path, metrics_path = other / "config.yaml", other / "eval" / "metrics.json"
        if not (config_path.is_file() and metrics_path.is_file()):
            continue
        theirs = load_config(config_path).to_dict()
        theirs.pop("seed")
        if theirs == mine:
            found.append(other)
    return found


def seed_summary(run_roots: Sequence[Path]):
    """Mean ± sd over runs (seeds) of every model's metrics on the test set."""
    import pandas as pd

    rows = []
    for root in run_roots:
        report = read_json(Path(root) / "eval" / "metrics.json")
        seed = read_json(Path(root) / "manifest.json").get("seed") if (Path(root) / "manifest.json").is_file() else None
        for name, entry in report["models"].items():
            for metric, result in entry["metrics"].items():
                rows.append({"run": Path(root).name, "seed": seed, "model": name, "metric": metric,
                             "value": result["value"]})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    summary = frame.groupby(["model", "metric"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return summary.rename(columns={"std": "sd", "count": "seeds"})
