"""Issue 18 item 3: training throughput with length-grouped batches (sttune_helpers/training/samplers.py)
against random batches, in one process on this machine.

Three cases, each a bare SentenceTransformerTrainer on the packaged model (all-MiniLM-L6-v2), batch 16,
max_seq_length 256 (or --max-seq-length), fp32 (or --precision bf16), ``torch.set_num_threads(--threads)``
(default 1):

- SciFact (BEIR layout, /work/shared/data/scifact): train pairs (query, title + " " + text of its
  relevant document) from qrels/train.tsv, MultipleNegativesRankingLoss; random batches with the
  no-duplicates rule (NoDuplicatesBatchSampler) vs LengthGroupedNoDuplicatesBatchSampler.
  Long abstracts: most are cut at 256 tokens, so random batches are little padding there; at 512 (the
  model's position limit) the median abstract (311 tokens) fits and the lengths spread.
- STS-B train (/work/shared/data/stsb/sts-train.tsv): (sentence1, sentence2, score / 5), CoSENTLoss;
  the plain random sampler vs LengthGroupedBatchSampler. Short sentences.
- MRPC train (/work/shared/data/mrpc/mrpc-train.tsv): (sentence1, sentence2, label), OnlineContrastiveLoss
  (pair_binary's loss); the plain random sampler vs LengthGroupedBatchSampler. Sentences of 10-60 tokens.

Each arm trains --steps optimizer steps, timed after --warmup steps, split over --rounds runs in the
order random, grouped, grouped, random, ... (ABBA, so drift on a shared machine hits both arms alike;
each run's sampler has its own seed). The grouped arm sorts rows by the model's tokens (sttune's key for
every loss but CosineSimilarityLoss and CoSENTLoss, training/setup.py); --by-characters sorts by summed
characters (sttune's key for those two). Besides the wall clock, each step's tokens are counted from the
collator's output: the padded tokens the model computes, and the real ones (attention mask), which do
not depend on the machine's load.

    .venv/bin/python bench/length_grouped.py [--steps 40] [--warmup 3] [--rounds 2] [--only scifact,stsb]
        [--results PATH] [--no-append] [--precision fp32|bf16] [--threads 1] [--by-characters]
        [--max-seq-length 256]

Prints a table with the machine, writes bench/out/length_grouped/results.json, and appends a section
to bench/RESULTS.md (unless --no-append).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
from default_run import machine, publish_section  # noqa: E402

OUT = HERE / "out" / "length_grouped"
SCIFACT = Path("/work/shared/data/scifact")
STSB_TRAIN = Path("/work/shared/data/stsb/sts-train.tsv")
MRPC_TRAIN = Path("/work/shared/data/mrpc/mrpc-train.tsv")
BATCH = 16
MAX_SEQ_LENGTH = 256


def scifact_pairs(root: Path = SCIFACT):
    from datasets import Dataset

    def jsonl(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    corpus = {str(d["_id"]): f"{d.get('title', '')} {d['text']}".strip() for d in jsonl(root / "corpus.jsonl")}
    queries = {str(q["_id"]): q["text"] for q in jsonl(root / "queries.jsonl")}
    anchors, positives = [], []
    with (root / "qrels" / "train.tsv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if int(row["score"]) > 0 and row["query-id"] in queries and row["corpus-id"] in corpus:
                anchors.append(queries[row["query-id"]])
                positives.append(corpus[row["corpus-id"]])
    return Dataset.from_dict({"anchor": anchors, "positive": positives})


def stsb_pairs(path: Path = STSB_TRAIN):
    from datasets import Dataset

    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return Dataset.from_dict({"sentence1": [r["sentence1"] for r in rows], "sentence2": [r["sentence2"] for r in rows],
                              "score": [float(r["score"]) / 5.0 for r in rows]})


def mrpc_pairs(path: Path = MRPC_TRAIN):
    from datasets import Dataset

    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return Dataset.from_dict({"sentence1": [r["sentence1"] for r in rows], "sentence2": [r["sentence2"] for r in rows],
                              "label": [int(r["label"]) for r in rows]})


LOSSES = {"scifact": "MultipleNegativesRankingLoss", "stsb": "CoSENTLoss", "mrpc": "OnlineContrastiveLoss"}


class CountingCollator:
    """The trainer's collator, counting each batch's padded and real tokens (all text columns)."""

    def __init__(self, collator):
        self.collator = collator
        self.padded: list[int] = []
        self.real: list[int] = []

    def __getattr__(self, name):
        return getattr(self.collator, name)

    def __call__(self, features):
        batch = self.collator(features)
        self.padded.append(sum(int(v.numel()) for k, v in batch.items() if k.endswith("_input_ids")))
        self.real.append(sum(int(v.sum()) for k, v in batch.items() if k.endswith("_attention_mask")))
        return batch


def run_arm(case: str, arm: str, dataset, steps: int, warmup: int, seed: int, bf16: bool = False,
            by_tokens: bool = True, max_seq_length: int = MAX_SEQ_LENGTH) -> dict:
    """One trainer run of ``warmup + steps`` optimizer steps; times and token counts of the last ``steps``.
    ``by_tokens``: the length-grouped sampler sorts by the model's tokens, as sttune's trainer does for
    every loss but cosine regression and CoSENT (otherwise by summed characters, as for those two)."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer import losses
    from transformers import TrainerCallback

    from sttune_helpers.modeling import load_model, packaged_model_path
    from sttune_helpers.training.samplers import (
        LengthGroupedBatchSampler,
        LengthGroupedNoDuplicatesBatchSampler,
        token_length_trainer_class,
    )

    in_batch = case == "scifact"
    samplers = {("random", True): BatchSamplers.NO_DUPLICATES, ("random", False): BatchSamplers.BATCH_SAMPLER,
                ("length_grouped", True): LengthGroupedNoDuplicatesBatchSampler,
                ("length_grouped", False): LengthGroupedBatchSampler}

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    model = load_model(packaged_model_path(), device="cpu", max_seq_length=max_seq_length)
    loss = getattr(losses, LOSSES[case])(model)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(OUT / "trainer"), max_steps=warmup + steps, per_device_train_batch_size=BATCH,
        learning_rate=2e-5, warmup_steps=0.1, weight_decay=0.01, use_cpu=True, bf16=bf16, fp16=False,
        batch_sampler=samplers[(arm, in_batch)], report_to=[], save_strategy="no", eval_strategy="no",
        logging_steps=1000, seed=seed, data_seed=seed, dataloader_num_workers=0)
    timer = StepTimer()
    trainer_class = token_length_trainer_class(SentenceTransformerTrainer) if by_tokens else SentenceTransformerTrainer
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[timer])
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    trainer.train()
    ends = timer.ends
    if len(ends) != warmup + steps:
        raise RuntimeError(f"{case} {arm}: {len(ends)} steps, expected {warmup + steps}")
    step_seconds = [b - a for a, b in zip(ends[warmup - 1:], ends[warmup:])] if warmup else \
        [b - a for a, b in zip(ends, ends[1:])]
    measured = slice(warmup, warmup + steps)
    return {"case": case, "arm": arm, "seed": seed, "steps": len(step_seconds), "seconds": sum(step_seconds),
            "step_seconds": step_seconds, "padded_tokens": sum(counter.padded[measured]),
            "real_tokens": sum(counter.real[measured])}


def summarise(runs: list[dict]) -> dict:
    seconds = sum(r["seconds"] for r in runs)
    steps = sum(r["steps"] for r in runs)
    padded = sum(r["padded_tokens"] for r in runs)
    real = sum(r["real_tokens"] for r in runs)
    return {"steps": steps, "samples_per_s": BATCH * steps / seconds, "s_per_step": seconds / steps,
            "median_s_per_step": statistics.median(s for r in runs for s in r["step_seconds"]),
            "padded_tokens_per_step": padded / steps, "real_tokens_per_step": real / steps,
            "padding_share": 1 - real / padded, "per_run_s_per_step": [r["seconds"] / r["steps"] for r in runs]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps per arm (all rounds)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per arm, in ABBA order")
    parser.add_argument("--only", default="scifact,stsb", help="comma-separated cases: scifact, stsb, mrpc")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: autocast, as sttune trains on a CPU with bf16 units")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (sttune uses every core)")
    parser.add_argument("--by-characters", action="store_true",
                        help="sort length-grouped batches by summed characters (sttune's key for "
                             "CosineSimilarityLoss and CoSENTLoss), not tokens")
    parser.add_argument("--max-seq-length", type=int, default=MAX_SEQ_LENGTH,
                        help="tokens per text before truncation (the packaged model allows up to 512)")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="the Markdown log to append to")
    parser.add_argument("--no-append", action="store_true", help="print only; leave the results log alone")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads)
    cases = [c.strip() for c in args.only.split(",") if c.strip()]
    loaders = {"scifact": scifact_pairs, "stsb": stsb_pairs, "mrpc": mrpc_pairs}
    if not cases or any(c not in loaders for c in cases):
        parser.error(f"--only: choose from {', '.join(loaders)}")
    command = shlex.join([".venv/bin/python", "bench/length_grouped.py", *sys.argv[1:]])
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    per_run = max(1, args.steps // args.rounds)
    figures: dict = {"command": command, "machine": machine(), "threads": torch.get_num_threads(),
                     "precision": args.precision, "max_seq_length": args.max_seq_length, "cases": {}}
    for case in cases:
        dataset = loaders[case]()
        runs: dict[str, list[dict]] = {"random": [], "length_grouped": []}
        for round_ in range(args.rounds):
            order = ["random", "length_grouped"] if round_ % 2 == 0 else ["length_grouped", "random"]
            for arm in order:
                result = run_arm(case, arm, dataset, per_run, args.warmup, seed=42 + round_,
                                 bf16=args.precision == "bf16", by_tokens=not args.by_characters,
                                 max_seq_length=args.max_seq_length)
                runs[arm].append(result)
                print(f"{case} {arm} round {round_}: {result['seconds'] / result['steps']:.3f} s/step, "
                      f"{result['padded_tokens'] / result['steps']:.0f} padded tokens/step", flush=True)
        figures["cases"][case] = {"n_train": len(dataset), "runs": runs,
                                  "summary": {arm: summarise(r) for arm, r in runs.items()}}
        (OUT / "results.json").write_text(json.dumps(figures, indent=2, default=str))
    total = time.perf_counter() - started

    titles = {"scifact": "SciFact train, MultipleNegativesRankingLoss (random: no_duplicates)",
              "stsb": "STS-B train, CoSENTLoss (random: batch_sampler)",
              "mrpc": "MRPC train, OnlineContrastiveLoss (random: batch_sampler)"}
    lines = [f"\n## Length-grouped batches vs random batches ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"Machine: {figures['machine']}; torch threads {figures['threads']}. Command: `{command}`.", "",
             f"all-MiniLM-L6-v2 (packaged), batch {BATCH}, max_seq_length {args.max_seq_length}, {args.precision}, "
             f"a bare SentenceTransformerTrainer; {per_run * args.rounds} timed steps per arm after {args.warmup} "
             f"warm-up steps per run, {args.rounds} runs per arm in ABBA order. Tokens: the collator's padded "
             "(computed) and real (attention mask) tokens per step, all text columns. Length-grouped rows sorted by "
             + ("summed characters." if args.by_characters else "their longest text column in the model's tokens."),
             "",
             "| case | sampler | samples/s | s/step (mean) | s/step (median) | padded tokens/step | "
             "real tokens/step | padding | speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    for case, data in figures["cases"].items():
        base = data["summary"]["random"]
        for arm, s in data["summary"].items():
            lines.append(f"| {titles[case]}, {data['n_train']} pairs | {arm} | {s['samples_per_s']:.2f} | "
                         f"{s['s_per_step']:.3f} | {s['median_s_per_step']:.3f} | {s['padded_tokens_per_step']:.0f} | "
                         f"{s['real_tokens_per_step']:.0f} | {s['padding_share']:.0%} | "
                         f"{s['samples_per_s'] / base['samples_per_s']:.2f}x |")
    publish_section(lines, total, args.results, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
