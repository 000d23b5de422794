"""Topic-grouped batches (train.batch_sampler=topic_grouped): anchors on the same topic share a batch,
so an in-batch-negative loss (MultipleNegativesRankingLoss and kin) meets harder negatives without a
third text per row, at the cost of a pair's step. The idea of topic-aware sampling (TAS, Hofstätter
et al. 2021).

Each epoch: the anchors' base-model embeddings are clustered with k-means (about one batch's rows per
cluster, seeded by the epoch), the clusters are laid out in a random order with their rows shuffled,
and that order is cut into batches under the no-duplicates rule (no text twice in a batch), whose
order is then shuffled as in training/samplers.py (blocks of one step's batches across processes).
In several processes every process takes process 0's order.
"""

from __future__ import annotations

import numpy as np
import torch

from .samplers import LengthGroupedNoDuplicatesBatchSampler

TOPIC_GROUPED_NO_DUPLICATES = "topic_grouped_no_duplicates"
# k-means over at most this many clusters: past it, MiniBatchKMeans (its cost grows with rows x clusters).
_FULL_KMEANS_MAX_CLUSTERS = 512


class TopicGroupedBatchSampler(LengthGroupedNoDuplicatesBatchSampler):
    """No-duplicate batches of rows whose anchors (``embeddings``, one L2-normalised row per dataset
    row) fall in one k-means cluster. Build it through :func:`topic_batch_sampler`."""

    def __init__(self, dataset, batch_size: int, drop_last: bool, embeddings: np.ndarray,
                 valid_label_columns: list[str] | None = None, generator: torch.Generator | None = None,
                 seed: int = 0, num_processes: int | None = None) -> None:
        if len(embeddings) != len(dataset):
            raise ValueError(f"topic-grouped batches need one anchor embedding per training row: "
                             f"{len(embeddings)} embeddings for {len(dataset)} rows")
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed,
                         num_processes=num_processes)
        self.embeddings = np.asarray(embeddings, dtype=np.float32)

    def row_order(self, generator: torch.Generator) -> np.ndarray:
        n = len(self.embeddings)
        n_clusters = max(1, min(n, round(n / self.batch_size)))
        labels = cluster_labels(self.embeddings, n_clusters, int(torch.randint(0, 2**31 - 1, (1,),
                                                                               generator=generator)))
        cluster_rank = np.empty(n_clusters, dtype=np.int64)
        cluster_rank[torch.randperm(n_clusters, generator=generator).numpy()] = np.arange(n_clusters)
        shuffled = torch.randperm(n, generator=generator).numpy()
        return rank_zero_value(shuffled[np.argsort(cluster_rank[labels[shuffled]], kind="stable")])


def rank_zero_value(value):
    """``value`` as process 0 computed it, in every process of a data-parallel run: each process cuts
    its own batches from this order, and k-means on another GPU or thread count may differ in a tie."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cluster_labels(embeddings: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Each row's k-means cluster."""
    if n_clusters == 1:
        return np.zeros(len(embeddings), dtype=np.int64)
    from sklearn.cluster import KMeans, MiniBatchKMeans

    kind = KMeans if n_clusters <= _FULL_KMEANS_MAX_CLUSTERS else MiniBatchKMeans
    return kind(n_clusters=n_clusters, n_init=1, random_state=seed).fit_predict(embeddings).astype(np.int64)


class TopicBatchSamplerFactory:
    """What SentenceTransformerTrainingArguments.batch_sampler takes: called with the library's sampler
    arguments, it builds a :class:`TopicGroupedBatchSampler` over ``embeddings``. The trainer pickles
    its arguments into every checkpoint: the embeddings stay out of that copy."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = embeddings

    def __call__(self, dataset, batch_size: int, drop_last: bool, valid_label_columns: list[str] | None = None,
                 generator: torch.Generator | None = None, seed: int = 0) -> TopicGroupedBatchSampler:
        if self.embeddings is None:
            raise RuntimeError("this copy of the topic-grouped sampler was restored from a checkpoint's training "
                               "arguments, which leave the anchor embeddings out; build a new one")
        return TopicGroupedBatchSampler(dataset, batch_size=batch_size, drop_last=drop_last,
                                        embeddings=self.embeddings, valid_label_columns=valid_label_columns,
                                        generator=generator, seed=seed)

    def __getstate__(self) -> dict:
        return {"embeddings": None}

    def __deepcopy__(self, memo) -> TopicBatchSamplerFactory:
        return self  # read-only: copies of the arguments share it

    def __repr__(self) -> str:  # the arguments' repr goes into logs and model cards
        rows = "restored, without embeddings" if self.embeddings is None else f"{len(self.embeddings)} anchors"
        return f"TopicBatchSamplerFactory({rows})"
