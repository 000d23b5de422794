"""retrieval: queries, a corpus and relevance judgements (BEIR layout); trains on (query, document) pairs."""

from __future__ import annotations

import numpy as np

from ..core.statistics import Bootstrap, mean_metrics
from .base import MNRL_TUNABLE, ItemScores, LossChoice, ShapeRecipe, TaskShape

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
    # SciFact, 3 seeds: mined negatives beat the same run without them beyond the seed spread
    # (bench/RESULTS.md, session 21).
    mined_by_default = True
    # SciFact with mined negatives, 3 seeds (bench/RESULTS.md, sessions 34-35): without attention dropout the
    # training steps ran 1.8x as fast on a CPU (PyTorch's fused attention kernel takes no dropout) and
    # validation did not fall.
    recipe = ShapeRecipe(
        {"model.attention_dropout": 0.0},
        "Measured on SciFact with mined negatives over 3 seeds beside the model's own attention dropout of 0.1 "
        "(bench/RESULTS.md, sessions 34-35): validation NDCG@10 0.7432 +/- 0.0071 against 0.7378 +/- 0.0040, test "
        "0.7346 +/- 0.0038 against 0.7328 +/- 0.0027, and training steps 1.8x as fast on a 2-core CPU, where PyTorch's "
        "fused attention kernel takes no dropout.",
        losses=("MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss"))

    @property
    def contamination_columns(self) -> tuple[str, ...]:
        return ("anchor",)  # a query; its documents may well be in an evaluation corpus

    # --- losses ---------------------------------------------------------------------------------

    in_batch_default = True

    def recommend_loss(self, n_train: int, batch_size: int, anchored: bool = False) -> tuple[LossChoice, str]:
        # No GISTEmbedLoss for small retrieval sets: on SciFact (825 train pairs) it scored NDCG@10 0.657
        # where MultipleNegativesRankingLoss scored 0.667, same run otherwise (bench/RESULTS.md, session 6).
        if batch_size >= 256:
            cached = next(c for c in self.losses if c.name == "CachedMultipleNegativesRankingLoss")
            return cached, (f"a batch of {batch_size} texts is where in-batch negatives pay off, and gradient "
                            "caching keeps its memory at that of a mini-batch")
        return super().recommend_loss(n_train, batch_size, anchored)

    # --- evaluation -------------------------------------------------------------------------

    uses_corpus = True
    shared_text_is_leak = True
    item_columns = ("query", "relevant")

    def build_evaluator(self, dataset, name: str, batch_size: int = 64, tables=None):
        from sentence_transformers.sentence_transformer import evaluation

        if tables is None:
            raise ValueError("a retrieval evaluator needs the run directory (its corpus and qrels)")
        corpus, queries, relevant = tables
        return evaluation.InformationRetrievalEvaluator(queries, corpus, relevant, name=name,
                                                        score_functions=None, batch_size=batch_size,
                                                        show_progress_bar=False)

    def score(self, task, encode, boot: Bootstrap, seed: int = 0) -> ItemScores:
        doc_ids = list(task.corpus)
        documents = encode([task.corpus[d] for d in doc_ids])
        queries = encode(list(task.items["query"]))
        similarity = queries @ documents.T
        top = min(100, len(doc_ids))
        # Highest score first, ties broken by ascending document id, as the library's evaluator does.
        order = np.lexsort((np.array(doc_ids)[None, :].repeat(len(queries), 0), -similarity), axis=1)[:, :top]
        ranked = [[doc_ids[j] for j in row] for row in order]
        per_query = query_metrics(ranked, task.relevant)
        metrics, resampled = mean_metrics(per_query, boot)
        ndcg = per_query["cosine_ndcg@10"]
        # The pairs drawn in stage 05: each query with each relevant document, and with one seeded random
        # non-relevant document per relevant one.
        positive, negative = retrieval_pairs(task)
        index = {d: j for j, d in enumerate(doc_ids)}
        pairs = [similarity[q, index[d]] for q, d in positive] + [similarity[q, index[d]] for q, d in negative]
        return ItemScores(metrics, resampled, ndcg, 1.0 - ndcg, pair_similarity=np.array(pairs, dtype=float))

    def viz_sentences(self, task) -> list[str]:
        documents = [task.corpus[d] for wanted in task.relevant for d in sorted(wanted)]
        return list(dict.fromkeys([*task.items["query"], *documents]))

    def pair_groups(self, task):
        positive, negative = retrieval_pairs(task)
        return (np.array(["positive"] * len(positive) + ["negative"] * len(negative), dtype=object),
                np.array([1] * len(positive) + [0] * len(negative), dtype=np.int8))


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


# --- evaluation -------------------------------------------------------------------------------


def query_metrics(ranked: list[list[str]], relevant: list[set[str]]) -> dict[str, np.ndarray]:
    """Per-query NDCG@10, MRR@10, Recall@1/10/100 and MAP@100 of ranked document ids, with the
    formulas of sentence-transformers' InformationRetrievalEvaluator (binary relevance)."""
    out = {name: np.zeros(len(ranked)) for name in RETRIEVAL_METRICS}
    for q, (ranking, wanted) in enumerate(zip(ranked, relevant)):
        hits = np.array([doc in wanted for doc in ranking[:100]], dtype=float)
        first = np.flatnonzero(hits[:10])
        out["cosine_mrr@10"][q] = 1.0 / (first[0] + 1) if len(first) else 0.0
        discounts = 1.0 / np.log2(np.arange(2, 12))
        ideal = discounts[: min(len(wanted), 10)].sum()
        out["cosine_ndcg@10"][q] = float((hits[:10] * discounts[: len(hits[:10])]).sum() / ideal)
        for k in (1, 10, 100):
            out[f"cosine_recall@{k}"][q] = hits[:k].sum() / len(wanted)
        precision_at_hits = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        out["cosine_map@100"][q] = float((precision_at_hits * hits).sum() / min(100, len(wanted)))
    return out


def retrieval_pairs(task, seed: int = 0) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(query index, document id) pairs: every relevant document, and one seeded random
    non-relevant document per relevant one."""
    rng = np.random.default_rng(seed)
    doc_ids = sorted(task.corpus)
    positive, negative = [], []
    for q, wanted in enumerate(task.relevant):
        for doc in sorted(wanted):
            positive.append((q, doc))
            for _ in range(20):  # a random document that is not relevant
                other = doc_ids[rng.integers(len(doc_ids))]
                if other not in wanted:
                    negative.append((q, other))
                    break
    return positive, negative
