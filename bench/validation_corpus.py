"""Does a seeded sub-corpus rank models as the whole corpus does? (issue 18, item 1)

SciFact or SQuAD (BEIR layout, --data). A held-out set of train queries plays the validation split. Five models of
graded quality that differ the way checkpoints and model-selection candidates do: the packaged base
model, the half-way checkpoint of a short MNRL fine-tune on the other train queries' pairs, the
final model, and two WiSE-FT mixes of base and final (alpha 0.3 and 0.6). Texts are cut at 64
tokens (--seq) to keep a 1-thread CPU run near 20 minutes. Each model encodes the whole corpus once (the embeddings are
cached); every sub-corpus (``sttune_helpers.scoring.tasks.sub_corpus``: the validation queries'
relevant documents plus seeded random distractors, as training uses it) is scored from those
embeddings: a sub-corpus metric needs only its documents' embeddings. Reported per size: the
Spearman and Kendall rank agreement of the models' NDCG@10 with the whole corpus's, over several
draws, whether the best model is the same, and the time of one evaluation (encode the sub-corpus
and the queries, rank), measured on the base model.

Distractors (--distractors): "random" (what sttune uses), "mined" (each validation query's top-ranked
documents under the base model, in turn) or "half" (half mined, half random); sizes may be relative
("5x": five times the validation queries' relevant documents).

    OMP_NUM_THREADS=1 .venv/bin/python bench/validation_corpus.py [--data ../shared/data/scifact]
        [--steps 80] [--validation-queries 200] [--sizes 300,500,1000,2000] [--draws 10]
        [--distractors random,mined,half]
    .venv/bin/python bench/validation_corpus.py --table bench/validation_corpus.json [--gap 0.005]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def read_beir(data: Path):
    """Corpus, queries and relevant documents of a BEIR-layout folder: its train qrels where it has
    them (SciFact), else its test qrels (SQuAD dev ships only those)."""
    def jsonl(name):
        return [json.loads(line) for line in (data / name).read_text(encoding="utf-8").splitlines() if line.strip()]

    corpus = {r["_id"]: (r.get("title", "") + " " + r["text"]).strip() for r in jsonl("corpus.jsonl")}
    queries = {r["_id"]: r["text"] for r in jsonl("queries.jsonl")}
    relevant: dict[str, set[str]] = {}
    qrels = data / "qrels" / "train.tsv"
    for line in (qrels if qrels.exists() else data / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query, doc, score = line.split("\t")
        if float(score) > 0 and doc in corpus:
            relevant.setdefault(query, set()).add(doc)
    return corpus, queries, relevant


def ndcg_at_10(query_embeddings, doc_embeddings, doc_ids, relevant_list) -> float:
    from sttune_helpers.shapes.retrieval import query_metrics

    similarity = query_embeddings @ doc_embeddings.T
    top = min(100, len(doc_ids))
    ids = np.array(doc_ids)
    # Highest score first, ties broken by ascending document id, as the library's evaluator does.
    order = np.lexsort((ids[None, :].repeat(len(similarity), 0), -similarity), axis=1)[:, :top]
    ranked = [[doc_ids[j] for j in row] for row in order]
    return float(query_metrics(ranked, relevant_list)["cosine_ndcg@10"].mean())


def fine_tune(train_pairs, steps: int, batch: int, seq: int, keep_at: list[int], seed: int):
    """MNRL on (query, document) pairs; returns the base state, the states at ``keep_at`` steps and the
    final state, and the training seconds."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )
    from transformers import TrainerCallback

    from sttune_helpers.modeling import packaged_model_path
    from sttune_helpers.training.weights import snapshot

    model = SentenceTransformer(packaged_model_path(), device="cpu")
    model.max_seq_length = seq
    base = snapshot(model)
    kept: dict[int, dict] = {}

    class Keep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in keep_at:
                kept[state.global_step] = snapshot(model)

    dataset = Dataset.from_dict({"anchor": [a for a, _ in train_pairs], "positive": [p for _, p in train_pairs]})
    args = SentenceTransformerTrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="valcorpus-"), max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=5e-5, warmup_steps=0.1, seed=seed, use_cpu=True, batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no", report_to="none", logging_steps=25)
    started = time.perf_counter()
    SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                               loss=MultipleNegativesRankingLoss(model), callbacks=[Keep()]).train()
    seconds = time.perf_counter() - started
    return model, base, kept, snapshot(model), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64, help="max_seq_length for training and encoding")
    parser.add_argument("--validation-queries", type=int, default=200)
    parser.add_argument("--sizes", default="300,500,1000,2000",
                        help="documents per sub-corpus; 'Nx': N times the validation queries' relevant documents")
    parser.add_argument("--distractors", default="random",
                        help="comma-separated: random (seeded draws), mined (each validation query's top documents "
                             "under the base model), half (half mined, half random)")
    parser.add_argument("--draws", type=int, default=10, help="sub-corpus seeds per size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus-limit", type=int, default=None, help="a check of the script: cut the corpus first")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "validation_corpus.json")
    parser.add_argument("--table", type=Path, default=None, help="print the tables of an earlier run's --out file")
    parser.add_argument("--gap", type=float, default=0.005, help="pairs closer than this on the whole corpus are "
                        "counted apart (near-ties)")
    args = parser.parse_args()
    if args.table:
        print_table(json.loads(args.table.read_text()), args.gap)
        return

    import torch
    from scipy.stats import kendalltau, spearmanr

    from sttune_helpers.core.hardware import cpu_features
    from sttune_helpers.scoring.tasks import sub_corpus
    from sttune_helpers.training.weights import mix_states

    torch.set_num_threads(1)
    started_all = time.perf_counter()
    corpus, queries, relevant = read_beir(args.data)
    query_ids = sorted(relevant)
    random.Random(args.seed).shuffle(query_ids)
    held_out = sorted(query_ids[: args.validation_queries])
    train_pairs = [(queries[q], corpus[d]) for q in query_ids[args.validation_queries:] for d in sorted(relevant[q])]
    validation = {q: relevant[q] for q in held_out}
    corpus = sub_corpus(corpus, relevant, args.corpus_limit, args.seed)
    relevant_list = [validation[q] for q in held_out]
    print(f"corpus {len(corpus)} documents; {len(held_out)} validation queries "
          f"({len({d for w in validation.values() for d in w})} relevant documents); {len(train_pairs)} train pairs",
          flush=True)

    keep_at = [args.steps // 2]
    model, base, kept, final, train_seconds = fine_tune(train_pairs, args.steps, args.batch, args.seq, keep_at,
                                                        args.seed)
    print(f"fine-tuned {args.steps} steps in {train_seconds:.0f} s ({train_seconds / args.steps:.2f} s/step)",
          flush=True)
    states = {"base": base, "mix 0.3": mix_states(base, final, 0.3), "mix 0.6": mix_states(base, final, 0.6),
              **{f"step {s}": kept[s] for s in keep_at}, f"final (step {args.steps})": final}

    doc_ids = list(corpus)
    doc_texts = [corpus[d] for d in doc_ids]
    query_texts = [queries[q] for q in held_out]
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    full_seconds = {}
    for name, state in states.items():
        model.load_state_dict(state)
        model.eval()
        t0 = time.perf_counter()
        docs = model.encode(doc_texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        qs = model.encode(query_texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        ndcg_at_10(qs, docs, doc_ids, relevant_list)
        full_seconds[name] = time.perf_counter() - t0
        embeddings[name] = (qs, docs)
        print(f"{name}: whole-corpus evaluation {full_seconds[name]:.1f} s", flush=True)

    full = {name: ndcg_at_10(qs, docs, doc_ids, relevant_list) for name, (qs, docs) in embeddings.items()}
    names = list(states)
    full_scores = np.array([full[n] for n in names])
    print("whole-corpus NDCG@10: " + ", ".join(f"{n} {full[n]:.4f}" for n in names), flush=True)

    # Time of one evaluation per size, measured on the base model (encode sub-corpus and queries, rank).
    model.load_state_dict(base)
    n_relevant = len({d for w in validation.values() for d in w})
    sizes = [resolve_size(s, n_relevant) for s in args.sizes.split(",")]
    seconds_per_size = {}
    for size in sizes:
        sub = sub_corpus(corpus, validation, size, args.seed)
        ids = list(sub)
        t0 = time.perf_counter()
        docs = model.encode([sub[d] for d in ids], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        qs = model.encode(query_texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        ndcg_at_10(qs, docs, ids, relevant_list)
        seconds_per_size[size] = time.perf_counter() - t0
        print(f"size {size}: one evaluation {seconds_per_size[size]:.1f} s", flush=True)

    position = {d: j for j, d in enumerate(doc_ids)}
    base_queries, base_docs = embeddings["base"]
    base_order = np.argsort(-(base_queries @ base_docs.T), axis=1)  # each validation query's ranking by the base
    rows = []
    for distractors in args.distractors.split(","):
        for size in sizes:
            per_draw = []
            for draw in range(args.draws if distractors != "mined" else 1):  # mined alone draws nothing
                if distractors == "random":
                    ids = list(sub_corpus(corpus, validation, size, draw))
                else:
                    ids = mined_sub_corpus(doc_ids, base_order, relevant_list, size,
                                           0.0 if distractors == "mined" else 0.5, draw)
                index = np.array([position[d] for d in ids])
                scores = np.array([ndcg_at_10(embeddings[n][0], embeddings[n][1][index], ids, relevant_list)
                                   for n in names])
                per_draw.append({"seed": draw, "n_documents": len(ids),
                                 "ndcg@10": dict(zip(names, scores.tolist())),
                                 "spearman": float(spearmanr(full_scores, scores).statistic),
                                 "kendall": float(kendalltau(full_scores, scores).statistic),
                                 "same_best": bool(np.argmax(scores) == np.argmax(full_scores))})
            spear = [d["spearman"] for d in per_draw]
            kend = [d["kendall"] for d in per_draw]
            row = {"size": size, "relative": size / n_relevant, "distractors": distractors, "draws": per_draw,
                   "spearman_mean": float(np.mean(spear)), "spearman_min": float(np.min(spear)),
                   "kendall_mean": float(np.mean(kend)), "kendall_min": float(np.min(kend)),
                   "same_best": sum(d["same_best"] for d in per_draw), "seconds_per_evaluation": seconds_per_size[size]}
            rows.append(row)
            print(f"{distractors} {size}: Spearman mean {row['spearman_mean']:.3f} min {row['spearman_min']:.3f}; "
                  f"Kendall mean {row['kendall_mean']:.3f} min {row['kendall_min']:.3f}; same best "
                  f"{row['same_best']}/{len(per_draw)}; {seconds_per_size[size]:.1f} s per evaluation", flush=True)

    vendor, flags = cpu_features()
    result = {
        "date": datetime.date.today().isoformat(), "command": " ".join(sys.argv), "machine": platform.processor(),
        "cpu_vendor": vendor, "amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags,
        "threads": torch.get_num_threads(), "corpus_documents": len(corpus), "validation_queries": len(held_out),
        "relevant_documents": n_relevant,
        "train_pairs": len(train_pairs), "steps": args.steps, "batch": args.batch, "max_seq_length": args.seq,
        "train_seconds": train_seconds, "whole_corpus_ndcg@10": full,
        "whole_corpus_seconds_per_evaluation": full_seconds, "sizes": rows,
        "total_seconds": time.perf_counter() - started_all,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print_table(result, args.gap)


def mined_sub_corpus(doc_ids: list[str], base_order: np.ndarray, relevant_list: list[set[str]], size: int,
                     random_share: float, seed: int) -> list[str]:
    """The relevant documents plus distractors mined with the base model: each validation query's
    highest-ranked non-relevant documents in turn (rank 1 of every query, then rank 2, ...), and
    ``random_share`` of the distractor places drawn at random with ``seed``; in the corpus's order."""
    keep = {d for wanted in relevant_list for d in wanted}
    n_distractors = max(0, size - len(keep))
    n_mined = n_distractors - round(random_share * n_distractors)
    mined: set[str] = set()
    for rank in range(base_order.shape[1]):
        for row in base_order[:, rank]:
            if len(mined) >= n_mined:
                break
            if doc_ids[row] not in keep:
                mined.add(doc_ids[row])
        if len(mined) >= n_mined:
            break
    keep |= mined
    others = sorted(d for d in doc_ids if d not in keep)
    keep |= set(random.Random(seed).sample(others, min(len(others), size - len(keep))))
    return [d for d in doc_ids if d in keep]


def resolve_size(text: str, n_relevant: int) -> int:
    """A --sizes entry: a document count, or 'Nx' for N times the relevant documents."""
    return round(float(text[:-1]) * n_relevant) if text.endswith("x") else int(text)


def pair_agreement(result: dict, size_row: dict, gap: float) -> tuple[int, int, int, int]:
    """(agreeing, all) model pairs over the draws, for pairs whose whole-corpus NDCG@10 differs by at
    least ``gap``, and the same for the closer pairs."""
    full = result["whole_corpus_ndcg@10"]
    names = list(full)
    counts = [0, 0, 0, 0]
    for draw in size_row["draws"]:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                same = (full[a] - full[b]) * (draw["ndcg@10"][a] - draw["ndcg@10"][b]) > 0
                far = abs(full[a] - full[b]) >= gap
                counts[0 if far else 2] += same
                counts[1 if far else 3] += 1
    return counts[0], counts[1], counts[2], counts[3]


def print_table(result: dict, gap: float = 0.005) -> None:
    full = result["whole_corpus_ndcg@10"]
    print("\nwhole-corpus NDCG@10: " + ", ".join(f"{n} {v:.4f}" for n, v in full.items()))
    print(f"\n| validation corpus | Spearman mean (min) | Kendall mean (min) | pairs >= {gap} apart in the same order "
          f"| closer pairs in the same order | same best model | mean NDCG@10 | s per evaluation |")
    print("|---|---|---|---|---|---|---|---|")
    for row in result["sizes"]:
        far, n_far, close, n_close = pair_agreement(result, row, gap)
        mean = np.mean([np.mean(list(d["ndcg@10"].values())) for d in row["draws"]])
        relative = f" ({row['relative']:.1f}x)" if "relative" in row else ""
        relative += f", {row['distractors']}" if "distractors" in row else ""
        print(f"| {row['size']}{relative} | {row['spearman_mean']:.3f} ({row['spearman_min']:.3f}) | "
              f"{row['kendall_mean']:.3f} ({row['kendall_min']:.3f}) | {far}/{n_far} | {close}/{n_close} | "
              f"{row['same_best']}/{len(row['draws'])} | {mean:.3f} | {row['seconds_per_evaluation']:.1f} |")
    seconds = np.mean(list(result["whole_corpus_seconds_per_evaluation"].values()))
    print(f"| all {result['corpus_documents']} | 1 | 1 | - | - | - | {np.mean(list(full.values())):.3f} | "
          f"{seconds:.1f} |")
    print(f"total {result['total_seconds']:.0f} s", flush=True)

if __name__ == "__main__":
    main()
