"""retrieval: queries, a corpus and relevance judgements (BEIR layout); trains on (query, document) pairs."""

from __future__ import annotations

from .base import MNRL_TUNABLE, LossChoice, TaskShape

RETRIEVAL_METRICS = ("cosine_ndcg@10", "cosine_mrr@10", "cosine_recall@1", "cosine_recall@10", "cosine_recall@100",
                     "cosine_map@100")


class Retrieval(TaskShape):
    # --- losses ---------------------------------------------------------------------------------

    in_batch_default = True

    def recommend_loss(self, n_train: int, batch_size: int) -> tuple[LossChoice, str]:
        # No GISTEmbedLoss for small retrieval sets: on SciFact (825 train pairs) it scored NDCG@10 0.657
        # where MultipleNegativesRankingLoss scored 0.667, same run otherwise (bench/RESULTS.md, session 6).
        if batch_size >= 256:
            cached = next(c for c in self.losses if c.name == "CachedMultipleNegativesRankingLoss")
            return cached, (f"a batch of {batch_size} texts is where in-batch negatives pay off, and gradient "
                            "caching keeps its memory at that of a mini-batch")
        return super().recommend_loss(n_train, batch_size)


RETRIEVAL = Retrieval(
    name="retrieval",
    columns=("anchor", "positive"),
    group_columns=("anchor",),  # a query; the documents form one corpus shared by every split
    losses=(
        LossChoice("MultipleNegativesRankingLoss",
                   "In-batch negatives: each query must rank its document above every other document in the batch "
                   "(and its mined negatives); the standard for retrieval, better with larger batches.",
                   tunable=MNRL_TUNABLE),
        LossChoice("CachedMultipleNegativesRankingLoss",
                   "The same objective with gradient caching, so a batch of thousands fits in little memory "
                   "(mini_batch_size texts at a time): more in-batch negatives for the same hardware.",
                   params={"mini_batch_size": 32},
                   tunable={**MNRL_TUNABLE, "mini_batch_size": "texts encoded at a time; memory, not the result"}),
        LossChoice("GISTEmbedLoss",
                   "In-batch negatives filtered by a guide model (here the base model): candidates the guide scores "
                   "above the positive are not used as negatives, against false negatives in batches of near "
                   "duplicates; on SciFact it did worse than plain MNRL, so try it in a bake-off first.",
                   tunable={"temperature": "softmax temperature (loss.temperature, default 0.01)"}),
    ),
    metrics=RETRIEVAL_METRICS,
    validation_metric="cosine_ndcg@10",
    item_score_meaning="NDCG@10",
    item_error_meaning="1 - NDCG@10",
)
