"""retrieval: queries, a corpus and relevance judgements (BEIR layout); trains on (query, document) pairs."""

from __future__ import annotations

from .base import MNRL_TUNABLE, LossChoice, TaskShape

RETRIEVAL_METRICS = ("cosine_ndcg@10", "cosine_mrr@10", "cosine_recall@1", "cosine_recall@10", "cosine_recall@100",
                     "cosine_map@100")


class Retrieval(TaskShape):
    # --- data ---------------------------------------------------------------------------

    numbered_negatives = True
    query_groups = True
    rewrite_columns = ("anchor",)
    positive_column = "positive"
    synthesized_rows = "positive pairs"
    mining_columns = ("anchor", "positive")

    @property
    def contamination_columns(self) -> tuple[str, ...]:
        return ("anchor",)  # a query; its documents may well be in an evaluation corpus


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
