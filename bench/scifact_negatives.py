"""Do mined hard negatives help? SciFact retrieval, NDCG@10 on the BEIR test qrels over the whole
corpus, for: the base model; MNRL on (query, positive); MNRL with embedding-mined negatives; MNRL
with lexical (BM25) negatives. Appends the figures and the mining time to bench/RESULTS.md.

    .venv/bin/python bench/scifact_negatives.py [--data ../shared/data/scifact] [--epochs 1] [--mining-only]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def evaluate(model, prepared) -> float:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    test = prepared.splits["test"]
    relevant: dict[str, set[str]] = {}
    for query_id, doc_id in zip(test["_qid"], test["_did"]):
        relevant.setdefault(query_id, set()).add(doc_id)
    queries = {q: prepared.retrieval.queries[q] for q in relevant}
    evaluator = InformationRetrievalEvaluator(queries, prepared.retrieval.corpus, relevant, name="scifact",
                                              ndcg_at_k=[10], show_progress_bar=False, batch_size=64)
    return float(evaluator(model)["scifact_cosine_ndcg@10"])


def train(train_frame, epochs: int, seed: int):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    from sttune_helpers.core.hardware import pick_precision
    from sttune_helpers.modeling import DEFAULT_MODEL, resolve_model_source

    model = SentenceTransformer(resolve_model_source(DEFAULT_MODEL).location, device="cpu")
    model.max_seq_length = 256
    columns = [c for c in train_frame.columns if c == "anchor" or c == "positive" or c.startswith("negative")]
    dataset = Dataset.from_pandas(train_frame[columns].reset_index(drop=True), preserve_index=False)
    precision, _ = pick_precision("auto", "cpu")
    args = SentenceTransformerTrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="scifact-"), num_train_epochs=epochs, per_device_train_batch_size=32,
        learning_rate=2e-5, warmup_steps=0.1, seed=seed, use_cpu=True, bf16=precision == "bf16",
        batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", report_to="none", logging_steps=50)
    SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                               loss=MultipleNegativesRankingLoss(model)).train()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--mining-only", action="store_true",
                        help="time the mining alone (both candidate kinds): no training, no NDCG")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from sttune_helpers.config import DataConfig, NegativesConfig
    from sttune_helpers.data import mine_train_negatives, prepare_data
    from sttune_helpers.modeling import load_model

    rows = []
    prepared = prepare_data(DataConfig(source=args.data), seed=args.seed)
    base = load_model("default", "cpu", 256)
    if not args.mining_only:
        rows.append(("base model", evaluate(base, prepared), ""))
        rows.append(("MNRL (query, positive)", evaluate(train(prepared.splits["train"], args.epochs, args.seed),
                                                         prepared), ""))
    for candidates in ("embedding", "lexical"):
        mined_data = copy.deepcopy(prepared)  # mining rewrites the train split; reuse the prepared data
        config = DataConfig(negatives=NegativesConfig(enabled=True, candidates=candidates, num_negatives=1,
                                                      range_min=10, range_max=50, relative_margin=0.05))
        started = time.perf_counter()
        mined = mine_train_negatives(mined_data, config, base, seed=args.seed)
        mining_seconds = time.perf_counter() - started
        ndcg = None if args.mining_only else evaluate(train(mined_data.splits["train"], args.epochs, args.seed),
                                                      prepared)
        rows.append((f"MNRL + {candidates} hard negatives", ndcg,
                     f"mining {mining_seconds:.0f} s over {len(prepared.retrieval.corpus):,} documents, "
                     f"{mined.stats.get('rows_out', len(mined.dataset))} training rows"))

    sys.path.insert(0, str(REPO / "bench"))
    from default_run import append_results, machine

    command = "--mining-only" if args.mining_only else f"--epochs {args.epochs}"
    lines = [f"\n### {datetime.date.today()}, SciFact hard negatives (`bench/scifact_negatives.py {command}`)\n",
             f"Machine: {machine()}. all-MiniLM-L6-v2, "
             "max_seq_length 256, batch 32, lr 2e-5, no-duplicates sampler; NDCG@10 on BEIR test qrels "
             "(300 queries) over the full corpus.\n", "| model | NDCG@10 | notes |", "|---|---|---|"]
    lines += [f"| {name} | {'not measured' if value is None else f'{value:.4f}'} | {note} |"
              for name, value, note in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    append_results(REPO / "bench" / "RESULTS.md", text)


if __name__ == "__main__":
    main()
