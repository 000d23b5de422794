"""What train.general_anchor costs a training step (sttune_helpers/losses/general_anchor.py), in one
process on this machine: the anchor's texts drawn at random against drawn as neighbours in length.

STS-B train, CoSENTLoss, batch 16 behind the task prompt "task: ", in length-grouped batches sorted by
characters (sttune's batches for CoSENT), the packaged all-MiniLM-L6-v2, a bare SentenceTransformerTrainer.
The arms (--arms, all by default), each --steps optimizer steps timed after --warmup, over --rounds runs
in rotating order:

- ``no_anchor``: the task loss alone;
- ``random``: the anchor over 16 training texts drawn at random each step (session 26's draws);
- ``length_window``: the anchor over 16 texts that are neighbours in token length (the default now);
- ``length_window_8``: the same over 8 texts a step (train.general_anchor_texts=8);
- ``length_window_8_every2``: 8 texts on every second step at twice the weight
  (train.general_anchor_every=2).

Timing only: the anchors are random unit vectors, not the base model's embeddings (the step's work is
the same). Besides the wall clock, the anchor's padded tokens per step are counted, which do not
depend on the machine's load.

    .venv/bin/python bench/anchor_cost.py [--arms no_anchor,length_window] [--steps 40] [--warmup 3]
        [--rounds 2] [--precision fp32|bf16] [--threads 2] [--results PATH] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from default_run import machine, publish_section  # noqa: E402
from length_grouped import BATCH, OUT, stsb_pairs  # noqa: E402

ARMS = ("no_anchor", "random", "length_window", "length_window_8", "length_window_8_every2")


def anchor_settings(arm: str) -> tuple[int, int]:
    """The anchor's texts a step and its cadence in ``arm``: the number after "window_" (else the
    default texts) and the one after "every" (else every step)."""
    from sttune_helpers.losses.general_anchor import EVERY, TEXTS_PER_STEP

    texts, every = TEXTS_PER_STEP, EVERY
    for part in arm.split("_"):
        if part.isdigit():
            texts = int(part)
        elif part.startswith("every") and part[5:].isdigit():
            every = int(part[5:])
    return texts, every


def counting_anchor_class():
    """GeneralAnchorLoss that records the padded tokens of each step's anchor texts (0 on a step it
    skips)."""
    from sentence_transformers.sentence_transformer import SentenceTransformer

    from sttune_helpers.losses.general_anchor import GeneralAnchorLoss

    class CountingAnchor(GeneralAnchorLoss):
        tokens: list[int]

        def forward(self, sentence_features, labels):
            self.tokens.append(0)
            return super().forward(sentence_features, labels)

        def drift(self):
            def counted(texts, **kwargs):
                features = SentenceTransformer.preprocess(self.model, texts, **kwargs)
                self.tokens[-1] = int(features["input_ids"].numel())
                return features

            self.model.preprocess = counted
            try:
                return super().drift()
            finally:
                del self.model.preprocess

    return CountingAnchor
PROMPT = "task: "
WEIGHT = 10.0


def run_arm(arm: str, dataset, texts: list[str], steps: int, warmup: int, seed: int, bf16: bool) -> dict:
    import numpy as np
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss
    from transformers import TrainerCallback

    from sttune_helpers.modeling import load_model, packaged_model_path
    from sttune_helpers.training.samplers import LengthGroupedBatchSampler, token_counts

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    CountingAnchor = counting_anchor_class()
    model = load_model(packaged_model_path(), device="cpu")
    loss = CoSENTLoss(model)
    anchor_tokens: list[int] = []
    if arm != "no_anchor":
        anchors = np.random.default_rng(seed).standard_normal((len(texts), model.get_embedding_dimension()))
        by_length = arm.startswith("length_window")
        lengths = token_counts(texts, model.tokenizer, model.max_seq_length) if by_length else None
        per_step, every = anchor_settings(arm)
        loss = CountingAnchor(loss, texts, anchors, WEIGHT, seed, lengths=lengths, texts_per_step=per_step,
                              every=every)
        loss.tokens = anchor_tokens
    args = SentenceTransformerTrainingArguments(
        output_dir=str(OUT / "anchor_trainer"), max_steps=warmup + steps, per_device_train_batch_size=BATCH,
        learning_rate=2e-5, warmup_steps=0.1, weight_decay=0.01, use_cpu=True, bf16=bf16, fp16=False,
        batch_sampler=LengthGroupedBatchSampler, prompts=PROMPT, report_to=[], save_strategy="no",
        eval_strategy="no", logging_steps=1000, seed=seed, data_seed=seed, dataloader_num_workers=0)
    timer = StepTimer()
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[timer])
    trainer.train()
    ends = timer.ends
    if len(ends) != warmup + steps:
        raise RuntimeError(f"{arm}: {len(ends)} steps, expected {warmup + steps}")
    step_seconds = [b - a for a, b in zip(ends[warmup - 1:], ends[warmup:])]
    return {"arm": arm, "steps": len(step_seconds), "step_seconds": step_seconds,
            "anchor_tokens": anchor_tokens[warmup:warmup + steps]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps per arm (all rounds)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per arm, the order rotating each round")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="the Markdown log to append to")
    parser.add_argument("--no-append", action="store_true", help="print only; leave the results log alone")
    args = parser.parse_args()
    arms = tuple(args.arms.split(","))
    if "no_anchor" not in arms or not set(arms) <= set(ARMS):
        parser.error(f"--arms: some of {', '.join(ARMS)}, no_anchor among them (the cost is against it)")
    if args.warmup < 1:
        parser.error("--warmup: at least 1 (the first step's time starts at the end of a warm-up step)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads)
    command = shlex.join([".venv/bin/python", "bench/anchor_cost.py", *sys.argv[1:]])
    dataset = stsb_pairs()
    texts = list(dict.fromkeys(list(dataset["sentence1"]) + list(dataset["sentence2"])))
    per_run = max(1, args.steps // args.rounds)
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    started = time.perf_counter()
    for round_ in range(args.rounds):
        order = arms[round_ % len(arms):] + arms[:round_ % len(arms)]
        for arm in order:
            result = run_arm(arm, dataset, texts, per_run, args.warmup, seed=42 + round_,
                             bf16=args.precision == "bf16")
            runs[arm].append(result)
            print(f"{arm} round {round_}: {statistics.mean(result['step_seconds']):.3f} s/step", flush=True)
    total = time.perf_counter() - started

    def seconds(arm: str) -> list[float]:
        return [s for r in runs[arm] for s in r["step_seconds"]]

    base = statistics.mean(seconds("no_anchor"))
    lines = [f"\n## The general anchor's cost per training step ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"Machine: {machine()}; torch threads {torch.get_num_threads()}. Command: `{command}`.", "",
             f"STS-B train ({len(dataset):,} pairs, {len(texts):,} distinct texts), CoSENTLoss behind {PROMPT!r}, "
             f"batch {BATCH}, length-grouped by characters, {args.precision}, a bare SentenceTransformerTrainer; "
             f"{per_run * args.rounds} timed steps per arm after {args.warmup} warm-up steps per run, {args.rounds} "
             "runs per arm in rotating order. The anchor: weight 10, 16 texts a step unless the arm names another "
             "number, every step unless it names a cadence (timing only: random anchors).",
             "", "| anchor draws | s/step (mean) | s/step (median) | per run | anchor's padded tokens/step "
             "| step cost |",
             "|---|---|---|---|---|---|"]
    for arm in arms:
        values = seconds(arm)
        tokens = [t for r in runs[arm] for t in r["anchor_tokens"]]
        per_run_means = " / ".join(f"{statistics.mean(r['step_seconds']):.3f}" for r in runs[arm])
        lines.append(f"| {arm} | {statistics.mean(values):.3f} | {statistics.median(values):.3f} | {per_run_means} | "
                     f"{statistics.mean(tokens) if tokens else 0:.0f} | {statistics.mean(values) / base:.2f}x |")
    publish_section(lines, total, args.results, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
