"""Issue 6's speed benchmark, in five parts (``--only a,b,c,d,e``):

a. Training throughput of sttune's training stage vs a bare SentenceTransformerTrainer script with
   identical settings, as a ratio in one process (bench/losses.py's throughput_ratio; target >= 0.97).
b. Papermill overhead per stage: the wall time of `sttune run --only STAGE` (a fresh process and
   kernel, as a user re-running one stage gets) against the seconds the stage recorded in
   manifest.json, and the kernel's start and `import torch, sentence_transformers` in a fresh kernel;
   also the whole run in one shared kernel (what `sttune run` does) against the sum of its stages.
c. Encoding throughput on CPU: sentences/s of `model.encode` on 1,000 STS-B test sentences in fp32
   (what sttune's evaluation does: evaluation.Encoder calls model.encode on the fp32 model), under
   `torch.autocast("cpu", dtype=torch.bfloat16)`, and with the weights cast to bfloat16, with each
   path's STS-B Spearman on those 500 pairs and its largest cosine difference from fp32.
d. Peak memory of training at batch 16/64/256 with and without gradient checkpointing (CoSENTLoss on
   STS-B pairs), and MultipleNegativesRankingLoss vs CachedMultipleNegativesRankingLoss
   (mini_batch_size 32) at batch 256 on (anchor, positive) pairs: a fresh process per configuration,
   a few steps each; peak RSS (resource.getrusage) on CPU, torch.cuda.max_memory_allocated on CUDA.
e. Training throughput on CPU in fp32 and in bf16 (a bare SentenceTransformerTrainer, CoSENTLoss,
   batch 16, on shuffled STS-B train pairs), and whether `train.precision: auto` picks the faster.
f. The training step's time with the model's attention dropout (0.1) and without it (0), bf16, a bare
   SentenceTransformerTrainer: MultipleNegativesRankingLoss on SciFact (claim, relevant abstract, random
   abstract) triplets, 256 tokens, and CoSENTLoss on STS-B pairs; PyTorch's fused CPU attention kernel
   takes no dropout, so with it attention runs the slower unfused path.

    .venv/bin/python bench/speed.py [--quick] [--only a,b,c,d,e,f] [--results PATH]

Appends a Markdown section with the machine and the command to bench/RESULTS.md (--results); the
figures also go to bench/out/speed/results.json. Scratch runs go to bench/out/speed/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
from default_run import append_results, machine  # noqa: E402

OUT = HERE / "out" / "speed"
STSB_TEST = REPO / "sttune_helpers" / "datasets" / "stsb" / "sts-test.tsv"
STSB_TRAIN = REPO / "sttune_helpers" / "datasets" / "stsb" / "sts-train.tsv"

FULL = {"throughput_steps": 100, "overhead_preset": "smoke", "encode_sentences": 1000, "encode_repeats": 3,
        "memory_steps": 3, "memory_batches": [16, 64, 256], "precision_steps": 60, "precision_repeats": 2,
        "dropout_steps": 12, "dropout_repeats": 2}
QUICK = {"throughput_steps": 20, "overhead_preset": "smoke", "encode_sentences": 1000, "encode_repeats": 1,
         "memory_steps": 2, "memory_batches": [16, 256], "precision_steps": 15, "precision_repeats": 1,
         "dropout_steps": 6, "dropout_repeats": 1}
SCIFACT = REPO.parent / "shared" / "data" / "scifact"


def sttune_env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.setdefault("NUMBA_DISABLE_JIT", "1")  # stage 05's UMAP on the smoke run's 100 points, as in the tests
    return env


# --- a. throughput ---------------------------------------------------------------------------------


def part_throughput(settings: dict) -> tuple[list[str], dict]:
    from losses import throughput_lines, throughput_ratio

    result = throughput_ratio(settings["throughput_steps"], workdir=OUT)
    heading = "### a. Training-stage throughput vs a bare SentenceTransformerTrainer"
    return [heading, "", *throughput_lines(result)], result


# --- b. papermill overhead -------------------------------------------------------------------------


def kernel_start_and_imports() -> dict:
    """Seconds to start a fresh sttune kernel until it answers, then to import torch and
    sentence_transformers in it."""
    from jupyter_client.manager import KernelManager

    from sttune_helpers.runner.pipeline import ensure_kernel

    manager = KernelManager(kernel_name=ensure_kernel())
    started = time.perf_counter()
    manager.start_kernel(cwd=str(REPO), env=sttune_env())
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=600)
        ready = time.perf_counter() - started
        timings = {}
        for label, code in (("import torch", "import torch"), ("import sentence_transformers",
                                                               "import sentence_transformers"),
                            ("import sttune_helpers.training", "import sttune_helpers.training")):
            began = time.perf_counter()
            reply = client.execute_interactive(code, timeout=1200)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"`{code}` failed in a fresh kernel: {reply['content'].get('evalue')}")
            timings[label] = time.perf_counter() - began
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return {"kernel_start": ready, **timings}


def sttune(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    command = [sys.executable, "-m", "sttune_helpers.cli", *args]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, env=sttune_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"speed: `{shlex.join(command)}` failed ({completed.returncode}):\n"
                         f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return seconds, completed


def stage_seconds(run: Path) -> dict[str, float]:
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    # Stages after one re-run with --only are pending again, without seconds.
    return {stage: entry["seconds"] for stage, entry in stages.items() if "seconds" in entry}


def part_overhead(settings: dict) -> tuple[list[str], dict]:
    from sttune_helpers.rundir import STAGES

    name, runs = "overhead", OUT / "runs"
    run = runs / name
    total, completed = sttune("run", "--preset", settings["overhead_preset"], "--name", name, "--runs-dir",
                              str(runs), "--overwrite")
    shared = stage_seconds(run)
    # The CLI's own per-stage wall times (papermill, the namespace reset, the stage), "done in X s".
    walls = {m[0]: float(m[1]) for m in re.findall(r"^\s+(\w+)\s+done in ([\d.]+) s", completed.stdout, re.M)}
    rows = []
    for stage in STAGES:  # in order: re-running a stage marks the later ones pending
        wall, _ = sttune("run", "--name", name, "--runs-dir", str(runs), "--only", stage)
        inside = stage_seconds(run)[stage]
        rows.append({"stage": stage, "only_wall": wall, "inside": inside, "overhead": wall - inside,
                     "shared_wall": walls.get(stage), "shared_inside": shared[stage]})
    kernel = kernel_start_and_imports()
    lines = ["### b. Papermill overhead per stage", "",
             f"`sttune run --preset {settings['overhead_preset']}`, then `sttune run --only STAGE` for each stage "
             "(a fresh process and kernel each). Inside = the seconds the stage recorded in manifest.json (from "
             "open_run to complete_stage); overhead = wall - inside: Python and the CLI starting, a kernel starting, "
             "the notebook's import cell (sttune_helpers, and what it imports at module level) and papermill.", "",
             "| stage | `--only` wall (s) | inside (s) | overhead (s) | in the shared-kernel run: wall (s) "
             "| inside (s) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        shared_wall = f"{r['shared_wall']:.1f}" if r["shared_wall"] is not None else "?"
        lines.append(f"| {r['stage']} | {r['only_wall']:.1f} | {r['inside']:.1f} | {r['overhead']:.1f} | "
                     f"{shared_wall} | {r['shared_inside']:.1f} |")
    inside_total = sum(shared.values())
    lines += ["", f"- the whole run in one shared kernel: {total:.1f} s wall, {inside_total:.1f} s inside the stages, "
              f"{total - inside_total:.1f} s overhead in all ({(total - inside_total) / len(STAGES):.1f} s a stage)",
              f"- a fresh kernel: {kernel['kernel_start']:.1f} s to start, then `import torch` "
              f"{kernel['import torch']:.1f} s, then `import sentence_transformers` "
              f"{kernel['import sentence_transformers']:.1f} s more, then `import sttune_helpers.training` "
              f"{kernel['import sttune_helpers.training']:.1f} s more"]
    return lines, {"stages": rows, "shared_total": total, "shared_inside": inside_total, "kernel": kernel}


# --- c. encoding -------------------------------------------------------------------------------------


def part_encoding(settings: dict) -> tuple[list[str], dict]:
    import copy
    import csv

    import numpy as np
    import pandas as pd
    import torch

    from sttune_helpers.core.hardware import cpu_fast_bf16
    from sttune_helpers.core.statistics import spearman
    from sttune_helpers.modeling import load_model

    frame = pd.read_csv(STSB_TEST, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    pairs = settings["encode_sentences"] // 2
    frame = frame.head(pairs)
    sentences = [*frame["sentence1"], *frame["sentence2"]]
    gold = frame["score"].astype(float).to_numpy()
    model = load_model("default", device="cpu")
    batch_size = 64  # eval.batch_size's default

    def encode(target, autocast: bool):
        context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
        with context, torch.inference_mode():
            return target.encode(sentences, batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=False, convert_to_tensor=True, show_progress_bar=False
                                 ).float().numpy()

    paths = {"fp32 (sttune's evaluation)": (model, False),
             "bf16 autocast": (model, True),
             "bf16 weights (model.to(torch.bfloat16))": (copy.deepcopy(model).to(torch.bfloat16), False)}
    rows, reference = [], None
    for label, (target, autocast) in paths.items():
        encode(target, autocast)  # warm-up: first-call allocations and oneDNN kernel selection
        times, vectors = [], None
        for _ in range(settings["encode_repeats"]):
            started = time.perf_counter()
            vectors = encode(target, autocast)
            times.append(time.perf_counter() - started)
        cosine = np.sum(vectors[:pairs] * vectors[pairs:], axis=1)
        if reference is None:
            reference = cosine
        rows.append({"path": label, "sentences_per_second": len(sentences) / float(np.median(times)),
                     "spearman": float(spearman(cosine, gold)),
                     "max_cosine_difference": float(np.abs(cosine - reference).max())})
    base = rows[0]["sentences_per_second"]
    native = cpu_fast_bf16()
    lines = ["### c. Encoding throughput on CPU, fp32 vs bf16", "",
             f"`model.encode` of {len(sentences)} STS-B test sentences ({pairs} pairs), batch {batch_size}, "
             f"{torch.get_num_threads()} torch threads, median of {settings['encode_repeats']} after a warm-up; the "
             f"CPU {'has ' + native if native else 'lacks fast bf16 units'}. sttune's evaluation encodes "
             "in fp32.", "",
             "| path | sentences/s | vs fp32 | Spearman on these pairs | max cosine difference from fp32 |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['path']} | {r['sentences_per_second']:.1f} | {r['sentences_per_second'] / base:.2f}x | "
                     f"{r['spearman']:.4f} | {r['max_cosine_difference']:.4f} |")
    return lines, {"native_bf16": native, "rows": rows}


# --- d. peak memory ----------------------------------------------------------------------------------


def memory_configs(batches: list[int]) -> list[dict]:
    configs = [{"loss": "CoSENTLoss", "batch": b, "checkpointing": c} for b in batches for c in (False, True)]
    top = max(batches)
    configs += [{"loss": "MultipleNegativesRankingLoss", "batch": top, "checkpointing": False},
                {"loss": "CachedMultipleNegativesRankingLoss", "batch": top, "checkpointing": False,
                 "mini_batch_size": 32}]
    return configs


def memory_worker(spec: dict) -> dict:
    """One configuration in this (fresh) process: a few training steps; the peak memory."""
    import resource

    started = time.perf_counter()
    import csv

    import pandas as pd
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    from sttune_helpers.core.hardware import pick_device, pick_precision
    from sttune_helpers.modeling import load_model
    from sttune_helpers.training import checkpointing_argument

    device = pick_device("auto")
    precision, _ = pick_precision("auto", device)
    model = load_model("default", device=device)
    frame = pd.read_csv(STSB_TRAIN, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    frame = frame.assign(score=frame["score"].astype(float) / 5.0).sample(frac=1.0, random_state=0)
    in_batch = spec["loss"] != "CoSENTLoss"
    if in_batch:  # MNRL-style (anchor, positive) pairs: the similar STS-B pairs
        similar = frame[frame["score"] >= 0.6]
        dataset = Dataset.from_dict({"anchor": list(similar["sentence1"]), "positive": list(similar["sentence2"])})
        loss = (losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=spec["mini_batch_size"])
                if spec["loss"].startswith("Cached") else losses.MultipleNegativesRankingLoss(model))
    else:
        dataset = Dataset.from_dict({"sentence1": list(frame["sentence1"]), "sentence2": list(frame["sentence2"]),
                                     "score": list(frame["score"])})
        loss = losses.CoSENTLoss(model)
    texts = [t for column in dataset.column_names if column != "score" for t in dataset[column][:512]]
    tokens = sum(len(ids) for ids in model.tokenizer(texts)["input_ids"]) / len(texts)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(OUT / "memory-trainer"), max_steps=spec["steps"], per_device_train_batch_size=spec["batch"],
        learning_rate=2e-5, warmup_steps=0.1, bf16=precision == "bf16", fp16=precision == "fp16",
        use_cpu=device == "cpu", **checkpointing_argument(spec["checkpointing"]),
        batch_sampler=BatchSamplers.NO_DUPLICATES if in_batch else BatchSamplers.BATCH_SAMPLER,
        save_strategy="no", eval_strategy="no", report_to="none", logging_steps=1000, seed=0,
        dataloader_num_workers=0)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    set_up = time.perf_counter() - started
    trained = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - trained
    result = {**spec, "device": device, "precision": precision, "mean_tokens_per_text": tokens,
              "rss_before_bytes": before, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
              "seconds_per_step": seconds / spec["steps"], "set_up_seconds": set_up}
    if device == "cuda":
        result.update(cuda_before_bytes=cuda_before, cuda_peak_bytes=torch.cuda.max_memory_allocated())
    return result


def part_memory(settings: dict) -> tuple[list[str], dict]:
    rows = []
    for spec in memory_configs(settings["memory_batches"]):
        spec = {**spec, "steps": settings["memory_steps"]}
        command = [sys.executable, str(Path(__file__).resolve()), "--memory-worker", json.dumps(spec)]
        completed = subprocess.run(command, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                                   capture_output=True, text=True)
        marker = [line for line in completed.stdout.splitlines() if line.startswith("MEMORY ")]
        if completed.returncode != 0 or not marker:
            rows.append({**spec, "error": (completed.stderr.strip().splitlines() or ["no output"])[-1]})
            print(f"speed: memory configuration {spec} failed:\n{completed.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(marker[-1].removeprefix("MEMORY ")))
        print(f"memory {spec}: peak {rows[-1]['peak_rss_bytes'] / 2**30:.2f} GiB", flush=True)
    gib = 2 ** 30
    on_cuda = any(r.get("device") == "cuda" for r in rows)
    tokens = next((r["mean_tokens_per_text"] for r in rows if "mean_tokens_per_text" in r), float("nan"))
    lines = ["### d. Peak memory of training", "",
             f"A fresh process per row, {settings['memory_steps']} optimizer steps (AdamW state included) of the "
             f"packaged all-MiniLM-L6-v2 on STS-B train pairs (about {tokens:.0f} tokens a text; memory for "
             "activations grows with batch x tokens), the precision sttune picks. "
             + ("Peak GPU memory: torch.cuda.max_memory_allocated. " if on_cuda else
                "Peak RSS of the process (resource.getrusage); 'training adds' is the peak minus the RSS before "
                "training (Python, torch, the model and the data). ")
             + "CachedMNRL: mini_batch_size 32; MNRL and CachedMNRL on (anchor, positive) pairs with score >= 3 of 5.",
             "", "| loss | batch | gradient checkpointing | peak (GiB) | training adds (GiB) | s/step |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['loss']} | {r['batch']} | {'yes' if r['checkpointing'] else 'no'} | failed: "
                         f"{r['error'][:120]} | | |")
            continue
        peak, before = ((r["cuda_peak_bytes"], r["cuda_before_bytes"]) if on_cuda else
                        (r["peak_rss_bytes"], r["rss_before_bytes"]))
        lines.append(f"| {r['loss']} | {r['batch']} | {'yes' if r['checkpointing'] else 'no'} | {peak / gib:.2f} | "
                     f"{(peak - before) / gib:.2f} | {r['seconds_per_step']:.2f} |")
    return lines, {"rows": rows}


# --- e. training precision on CPU --------------------------------------------------------------------


def part_training_precision(settings: dict) -> tuple[list[str], dict]:
    """Training pairs/s in fp32 and in bf16 autocast on this CPU, and whether sttune's automatic choice
    (modeling.pick_precision) is the faster one: the evidence behind modeling.cpu_fast_bf16."""
    import numpy as np
    from losses import bare_trainer_rates

    from sttune_helpers.config import load_preset
    from sttune_helpers.core.hardware import pick_precision
    from sttune_helpers.data import load_split, prepare_data, write_splits
    from sttune_helpers.rundir import RunDir

    config = load_preset("default")
    run = RunDir(OUT / "precision")  # the default preset's train split, shuffled: every genre's lengths
    run.root.mkdir(parents=True, exist_ok=True)
    write_splits(run, prepare_data(config.data, seed=config.seed))
    train = load_split(run, "train")
    steps, batch = settings["precision_steps"], config.train.batch_size

    def rate(precision: str) -> float:
        return bare_trainer_rates(config, train, precision, "cpu", steps, OUT / "precision-trainer")[0]

    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(settings["precision_repeats"]):  # interleaved, so drift on a shared machine hits both
        for precision in rates:
            rates[precision].append(rate(precision))
    median = {precision: float(np.median(values)) for precision, values in rates.items()}
    faster = max(median, key=median.get)
    chosen, why = pick_precision("auto", "cpu")
    lines = ["### e. Training throughput on CPU, fp32 vs bf16", "",
             f"A bare SentenceTransformerTrainer, CoSENTLoss, batch {batch}, {steps} steps on the default preset's "
             f"shuffled STS-B train split, fp32 and bf16 interleaved {settings['precision_repeats']} times "
             "(optimizer steps only, after the first).", "",
             "| precision | pairs/s (median) | runs |", "|---|---|---|"]
    for precision, values in rates.items():
        lines.append(f"| {precision} | {median[precision]:.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    lines += ["", f"bf16 / fp32 = {median['bf16'] / median['fp32']:.2f}. sttune's `train.precision: auto` picks "
              f"**{chosen}** here ({why}): {'the faster one' if chosen == faster else 'NOT the faster one'}."]
    return lines, {"rates": rates, "median": median, "chosen": chosen, "chosen_is_faster": chosen == faster}


# --- f. attention dropout --------------------------------------------------------------------------


def scifact_triplets(rows: int, seed: int = 0):
    """(claim, a relevant abstract, a random abstract) rows from SciFact's train qrels."""
    import random

    import pandas as pd
    from datasets import Dataset

    def read(name: str) -> dict[str, str]:
        lines = (SCIFACT / name).read_text(encoding="utf-8").splitlines()
        return {d["_id"]: f"{d.get('title', '')} {d['text']}".strip() for d in map(json.loads, lines)}

    queries, corpus = read("queries.jsonl"), read("corpus.jsonl")
    qrels = pd.read_csv(SCIFACT / "qrels" / "train.tsv", sep="\t", dtype=str)
    pairs = qrels.drop_duplicates("query-id").sample(frac=1.0, random_state=seed).head(rows)
    rng, documents = random.Random(seed), list(corpus.values())
    return Dataset.from_dict({"anchor": [queries[q] for q in pairs["query-id"]],
                              "positive": [corpus[d] for d in pairs["corpus-id"]],
                              "negative": [rng.choice(documents) for _ in range(len(pairs))]})


def dropout_step_seconds(train_dataset, loss_name: str, attention_dropout: float | None, steps: int) -> float:
    """The median optimizer step's seconds of a bare bf16 SentenceTransformerTrainer, batch 16, random
    batches (after the first two steps)."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses as st_losses
    from transformers import TrainerCallback

    from sttune_helpers.modeling import load_model

    model = load_model("default", device="cpu", max_seq_length=256, attention_dropout=attention_dropout)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(OUT / "dropout-trainer"), max_steps=steps, per_device_train_batch_size=16, bf16=True,
        use_cpu=True, report_to=[], save_strategy="no", eval_strategy="no", logging_steps=100, seed=0,
        data_seed=0, dataloader_num_workers=0)
    seconds: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            seconds.append(time.perf_counter() - self.started)

    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset,
                                         loss=getattr(st_losses, loss_name)(model), callbacks=[Timer()])
    trainer.train()
    rest = sorted(seconds[2:])
    return rest[len(rest) // 2]


def part_attention_dropout(settings: dict) -> tuple[list[str], dict]:
    """Training step seconds with the model's attention dropout and with none, on long and short texts."""
    import csv

    import pandas as pd
    from datasets import Dataset

    steps = settings["dropout_steps"]
    stsb = pd.read_csv(STSB_TRAIN, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    stsb = stsb.sample(n=16 * steps, random_state=0)
    sets = {"SciFact triplets, MultipleNegativesRankingLoss": (scifact_triplets(16 * steps),
                                                               "MultipleNegativesRankingLoss"),
            "STS-B pairs, CoSENTLoss": (Dataset.from_dict({"sentence1": list(stsb["sentence1"]),
                                                           "sentence2": list(stsb["sentence2"]),
                                                           "score": list(stsb["score"].astype(float) / 5.0)}),
                                         "CoSENTLoss")}
    times: dict[str, dict[str, list[float]]] = {}
    for name, (dataset, loss_name) in sets.items():
        times[name] = {"model's (0.1)": [], "0": []}
        for _ in range(settings["dropout_repeats"]):  # interleaved, so drift on a shared machine hits both
            for label, value in (("model's (0.1)", None), ("0", 0.0)):
                times[name][label].append(dropout_step_seconds(dataset, loss_name, value, steps))
    lines = ["### f. Training steps with and without attention dropout (CPU, bf16)", "",
             f"A bare SentenceTransformerTrainer, batch 16, {steps} steps, random batches, max_seq_length 256; "
             f"each arm {settings['dropout_repeats']} times, interleaved; the median step after the first two.", "",
             "| data | attention dropout | seconds a step | runs | speed-up |", "|---|---|---|---|---|"]
    figures = {}
    for name, arms in times.items():
        kept, off = (min(v) for v in arms.values())
        figures[name] = {"seconds": arms, "speedup": kept / off}
        for label, values in arms.items():
            lines.append(f"| {name} | {label} | {min(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} | "
                         + (f"{kept / off:.2f}x |" if label == "0" else "|"))
    return lines, figures


PARTS = {"a": part_throughput, "b": part_overhead, "c": part_encoding, "d": part_memory,
         "e": part_training_precision, "f": part_attention_dropout}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps, repeats and memory configurations")
    parser.add_argument("--only", default="a,b,c,d,e,f", help="comma-separated parts: a, b, c, d, e, f")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="the Markdown log to append to")
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)  # one part-d configuration, as JSON
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.memory_worker:
        print("MEMORY " + json.dumps(memory_worker(json.loads(args.memory_worker))))
        return 0
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        parser.error(f"--only: unknown part {', '.join(unknown) or '(none given)'}; choose from {', '.join(PARTS)}")
    settings = QUICK if args.quick else FULL
    command = shlex.join([".venv/bin/python", "bench/speed.py", *sys.argv[1:]])
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    lines = [f"\n## Speed ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"Machine: {machine()}. Command: `{command}`.", ""]
    figures = {"command": command, "settings": settings}
    for part in parts:
        part_started = time.perf_counter()
        part_lines, figures[part] = PARTS[part](settings)
        lines += [*part_lines, "", f"({time.perf_counter() - part_started:.0f} s)", ""]
        print("\n".join(part_lines), flush=True)
        (OUT / "results.json").write_text(json.dumps(figures, indent=2, default=str))
    lines += [f"Total {time.perf_counter() - started:.0f} s.", ""]
    text = "\n".join(lines)
    print(text)
    append_results(args.results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
