"""What notebook 01 displays of the data stage: tables of the dropped rows, the overlap between
splits, the augmentation steps and their measured gains, the chosen and the rejected hard negatives, and the plot of the
mining scores. They return what they show; nothing here changes the data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .negatives import MinedNegatives


def dropped_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per (split, reason) of dropped rows, with an example."""
    rows = [{"split": d["split"], "reason": d["reason"], "rows": d["count"],
             "example": d["examples"][0] if d["examples"] else None} for d in report["dropped"]]
    return pd.DataFrame(rows, columns=["split", "reason", "rows", "example"])


def overlap_table(report: dict[str, Any]) -> pd.DataFrame:
    rows = [{"splits": pair, "shared items": v["items"], "shared texts": v["texts"],
             "example": v["examples"][0] if v["examples"] else None}
            for pair, v in report.get("cross_split_overlap", {}).items()]
    return pd.DataFrame(rows, columns=["splits", "shared items", "shared texts", "example"])



def augmentation_table(reports: list[dict]) -> pd.DataFrame:
    """One row per augmentation step: rows in, added, removed or skipped (with the reasons)."""
    rows = [{"step": r.get("method"), "rows in": r.get("rows_in"), "rows added": r.get("rows_added"),
             "rows removed": r.get("rows_removed", 0), "skipped": r.get("skipped") or {}} for r in reports]
    return pd.DataFrame(rows, columns=["step", "rows in", "rows added", "rows removed", "skipped"])


def augmentation_gains_table(shape: str | None = None) -> pd.DataFrame:
    """What each augmentation method was measured to add to the test metric over the plain default
    run (data/augment/measured_gains.tsv, from bench/augmentation.py), "not yet measured" where empty."""
    from .augment.gains import NOT_MEASURED, read_gains

    rows = [{"method": r["method"], "shape": r["shape"],
             "measured gain": f"{float(r['gain']):+.4f}" if r["gain"] else NOT_MEASURED,
             "seed spread": f"{float(r['seed_spread']):.4f}" if r["seed_spread"] else "",
             "helps beyond the spread": ("yes" if float(r["gain"]) > float(r["seed_spread"]) else "no")
             if r["gain"] and r["seed_spread"] else "", "measured on": r["measured_on"]}
            for r in read_gains() if shape is None or r["shape"] == shape]
    return pd.DataFrame(rows, columns=["method", "shape", "measured gain", "seed spread", "helps beyond the spread",
                                       "measured on"])


def negatives_off_note(shape: str, enabled: bool | str = "auto") -> str:
    """What notebook 01 says where hard negatives are off (``enabled``: data.negatives.enabled): why, and
    what they were measured to add to the test metric on such data (data/augment/measured_gains.tsv)."""
    from .. import shapes
    from .augment.gains import measured_gain

    if shapes.get(shape).mining_columns is None:
        return f"hard negatives: off; {shape} data has no positive pairs to mine negatives for"
    if enabled == "auto":
        mined = ", ".join(name for name, s in shapes.REGISTRY.items() if s.mined_by_default) or "no"
        why = f"data.negatives.enabled: auto mines {mined} data only"
    else:
        why = "data.negatives.enabled: false"
    return f"hard negatives: off ({why}); measured on {shape} data: {measured_gain('hard_negatives', shape)}"


def negatives_table(result: MinedNegatives, n: int = 10) -> pd.DataFrame:
    """The ``n`` hardest chosen negatives (highest base-model score) with their positive's score."""
    table = result.chosen.assign(margin=result.chosen["positive_score"] - result.chosen["negative_score"])
    return table.sort_values("negative_score", ascending=False, kind="stable").head(n).reset_index(drop=True)


def rejected_table(result: MinedNegatives, n: int = 10) -> pd.DataFrame:
    """The ``n`` highest-scoring candidates rejected as likely false negatives, with the rule."""
    return result.rejected.sort_values("candidate_score", ascending=False, kind="stable").head(n) \
        .reset_index(drop=True)


def plot_score_distributions(result: MinedNegatives, path=None):
    """Histogram of base-model scores: positives, chosen negatives and rejected candidates.

    Returns the matplotlib Figure; also saves it as PNG when ``path`` is given.
    """
    import matplotlib.pyplot as plt

    series = {
        "positives": result.positives["score"].to_numpy(dtype=float),
        "chosen negatives": result.chosen["negative_score"].to_numpy(dtype=float),
        "rejected candidates": result.rejected["candidate_score"].to_numpy(dtype=float),
    }
    present = [values for values in series.values() if values.size]
    low = min((values.min() for values in present), default=0.0)
    high = max((values.max() for values in present), default=1.0)
    bins = np.linspace(low, high if high > low else low + 1e-3, 31)

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for (name, values), color in zip(series.items(), ("tab:green", "tab:blue", "tab:red")):
        if values.size:
            ax.hist(values, bins=bins, alpha=0.55, color=color, label=f"{name} (n={values.size})")
    max_score = result.stats.get("settings", {}).get("max_score")
    if max_score is not None:
        ax.axvline(max_score, color="black", linestyle="--", linewidth=1, label=f"max_score={max_score:g}")
    ax.set_xlabel("base-model similarity to the anchor")
    ax.set_ylabel("count")
    ax.set_title("Hard-negative mining: score distributions")
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig
