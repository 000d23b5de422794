"""Does the reference's selection half read a model's SQuAD drop as the report half does? (issue 17,
item 1: the forgetting budget is kept on the selection half, the user reads the report half.)

    .venv/bin/python bench/reference_halves.py [--data ../shared/data] [--out bench/out/reference_halves]

Selection-half variants, all on the 24 selection articles (bench/build_reference_sets.py's split):
  old_200x400    the half shipped before session 25: 200 questions over their paragraphs plus others
                 of the same articles, 400 paragraphs in all (rebuilt here by that rule, same seed)
  all_200        the same 200 questions over every paragraph of those articles
  shipped        the half shipped now: 1,000 questions over every paragraph of those articles
Models: the base model, and two fine-tuned models mixed with the base weights at 0.25/0.5/0.75/1
(WiSE-FT): MRPC train with OnlineContrastiveLoss (lr 5e-5) and 3,000 SNLI dev pairs recast as
relatedness with CoSENTLoss (lr 2e-5), one epoch each, batch 16, seed 0. Prints each model's drop
from the base on every half and how far each variant's drop is from the report half's; writes
scores.csv to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import build_reference_sets as builder  # noqa: E402

from sttune_helpers import shapes  # noqa: E402
from sttune_helpers.core.statistics import Bootstrap  # noqa: E402
from sttune_helpers.scoring.models import Encoder  # noqa: E402
from sttune_helpers.scoring.reference import retrieval_part  # noqa: E402
from sttune_helpers.scoring.taskset import TaskSet  # noqa: E402

ALPHAS = (0.25, 0.5, 0.75, 1.0)
NLI_SCORE = {"entailment": 1.0, "neutral": 0.5, "contradiction": 0.0}


def selection_variants(data: Path) -> dict[str, TaskSet]:
    """The selection-half variants, drawn with the builder's generator in the builder's order."""
    corpus = builder.read_jsonl(data / "squad" / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in builder.read_jsonl(data / "squad" / "queries.jsonl")}
    qrels = builder.read_tsv(data / "squad" / "qrels" / "test.tsv")
    relevant = dict(zip(qrels["query-id"], qrels["corpus-id"]))
    title = {d["_id"]: d["title"] for d in corpus}
    text = {d["_id"]: d["title"] + " " + d["text"] for d in corpus}

    def draw(n_questions: int, n_paragraphs: int | None) -> TaskSet:
        rng = np.random.default_rng(builder.SEED)
        titles = list(dict.fromkeys(d["title"] for d in corpus))
        shuffled = [titles[i] for i in rng.permutation(len(titles))]
        articles = set(shuffled[: len(titles) // 2])

        def sample(ids: list[str], n: int) -> list[str]:
            return [ids[i] for i in np.sort(rng.choice(len(ids), size=n, replace=False))]

        report_ids = sample([q for q in queries if title[relevant[q]] not in articles], builder.SQUAD_REPORT_QUERIES)
        avoid = {builder.normalise(queries[q]) for q in report_ids}
        ids = sample([q for q in queries if title[relevant[q]] in articles
                      and builder.normalise(queries[q]) not in avoid], n_questions)
        paragraphs = [d["_id"] for d in corpus if d["title"] in articles]
        if n_paragraphs is not None:  # the old rule: the questions' paragraphs plus a sample of the others
            needed = {relevant[q] for q in ids}
            others = [p for p in paragraphs if p not in needed]
            keep = needed | set(sample(others, n_paragraphs - len(needed)))
            paragraphs = [p for p in paragraphs if p in keep]
        items = pd.DataFrame({"query_id": ids, "query": [queries[q] for q in ids], "relevant": [""] * len(ids)})
        return TaskSet("retrieval", f"squad-{n_questions}x{n_paragraphs}", items,
                       corpus={p: text[p] for p in paragraphs}, relevant=[{relevant[q]} for q in ids])

    return {"old_200x400": draw(200, 400), "all_200": draw(200, None), "shipped": retrieval_part("squad", "selection")}


def fine_tune(model_path: str, data: Path, task: str, out: Path) -> dict:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    model = SentenceTransformer(model_path, device="cpu")
    if task == "mrpc":
        frame = pd.read_csv(data / "mrpc" / "mrpc-train.tsv", sep="\t", dtype=str, keep_default_na=False, quoting=3)
        rows = {"sentence1": list(frame["sentence1"]), "sentence2": list(frame["sentence2"]),
                "label": [int(x) for x in frame["label"]]}
        loss, learning_rate = losses.OnlineContrastiveLoss(model), 5e-5
    else:
        frame = pd.read_csv(data / "snli" / "snli-dev.tsv", sep="\t", dtype=str, keep_default_na=False, quoting=3)
        frame = frame.sample(n=3000, random_state=0)
        rows = {"sentence1": list(frame["sentence1"]), "sentence2": list(frame["sentence2"]),
                "score": list(frame["label"].map(NLI_SCORE))}
        loss, learning_rate = losses.CoSENTLoss(model), 2e-5
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / f"trainer-{task}"), num_train_epochs=1, per_device_train_batch_size=16,
        learning_rate=learning_rate, warmup_steps=0.1, save_strategy="no", eval_strategy="no", report_to="none",
        logging_steps=50, seed=0)
    SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), loss=loss).train()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "reference_halves")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from sentence_transformers import SentenceTransformer

    from sttune_helpers.modeling import packaged_model_path

    halves = {**selection_variants(args.data), "report": retrieval_part("squad", "report")}
    print({name: f"{task.n} questions, {len(task.corpus)} paragraphs" for name, task in halves.items()}, flush=True)
    model_path = packaged_model_path()
    base = SentenceTransformer(model_path, device="cpu")
    base_state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    rows, started = [], time.time()

    def score(label: str, model) -> None:
        encode = Encoder(model, 64)  # one per model: the variants' shared paragraphs are encoded once
        row = {"model": label}
        for name, task in halves.items():
            scored = shapes.get("retrieval").score(task, encode, Bootstrap.draw(task.n, 10, 0.95, 0), 0)
            row[name] = scored.metrics["cosine_ndcg@10"]["value"]
        rows.append(row)
        print(row, flush=True)

    score("base", base)
    for task in ("mrpc", "snli"):
        tuned = fine_tune(model_path, args.data, task, args.out)
        for alpha in ALPHAS:
            model = SentenceTransformer(model_path, device="cpu")
            model.load_state_dict({k: base_state[k] + alpha * (v - base_state[k]) if v.is_floating_point() else v
                                   for k, v in tuned.items()})
            score(f"{task}@{alpha}", model)
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out / "scores.csv", index=False)
    drops = frame[list(halves)].iloc[0] - frame[list(halves)]
    drops.insert(0, "model", frame["model"])
    print(drops.round(4).to_string(index=False))
    tuned_rows = drops.iloc[1:]
    lossy = tuned_rows[tuned_rows["report"] > 0.01]
    for name in halves:
        if name != "report":
            gap = tuned_rows[name] - tuned_rows["report"]
            print(f"{name}: mean |drop - report drop| {gap.abs().mean():.4f}, mean signed {gap.mean():+.4f}; "
                  f"drop / report drop where the report drop > 0.01: {(lossy[name] / lossy['report']).mean():.2f}")
    print(f"total {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
