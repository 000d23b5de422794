"""A TensorBoard projector export of each model's embeddings, with sentence and group as metadata."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..core.io import atomic_directory


def export_projector(embeddings: dict[str, np.ndarray], sentences, groups, directory) -> Path:
    """Write each model's embeddings, with sentence and group as metadata, for TensorBoard's projector
    (``tensorboard --logdir DIRECTORY``, Projector tab). Replaces ``directory`` whole."""
    from torch.utils.tensorboard import SummaryWriter

    # Tabs and newlines would split metadata.tsv's rows and columns.
    metadata = [[re.sub(r"[\t\r\n]+", " ", str(sentence)), re.sub(r"[\t\r\n]+", " ", str(group)) or "-"]
                for sentence, group in zip(sentences, groups)]
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        writer = SummaryWriter(log_dir=str(tmp))
        try:
            for name, points in embeddings.items():
                writer.add_embedding(np.asarray(points, dtype=np.float32), metadata=metadata,
                                     metadata_header=["sentence", "group"], tag=name)
        finally:
            writer.close()
    return directory
