"""Reading what stage 04 saved for this stage: the pair similarities, each model's embeddings of the
drawn test texts, and their groups."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..rundir import RunDir


def load_similarities(run: RunDir) -> dict[str, np.ndarray] | None:
    """Stage 04's pair similarities, or None where the task has no pairs (unlabeled data)."""
    path = run.eval_dir / "similarities.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=True) as data:
        return {key: data[key] for key in data.files}


def model_embeddings(stored: dict[str, np.ndarray], chosen: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``{model name: embeddings}`` in stage 04's order, optionally only the ``chosen`` rows."""
    return {key.removeprefix("embeddings_"): (value if chosen is None else value[chosen])
            for key, value in stored.items() if key.startswith("embeddings_")}


def stored_text(value: Any) -> str:
    return str(np.asarray(value).item()) if value is not None else ""


def has_groups(stored: dict[str, np.ndarray]) -> bool:
    """Whether stage 04 saved groups to colour by (the data has labels)."""
    return "groups" in stored and any(str(g) for g in stored["groups"])
