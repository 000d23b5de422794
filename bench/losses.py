"""Benchmark the loss registry and the training stage's overhead (issue 4).

1. STS-B: CoSENTLoss vs CosineSimilarityLoss vs AnglELoss, the same budget, test Spearman over 3
   seeds (mean ± sd).
2. MRPC (the data set in ../shared/data/mrpc, or --mrpc PATH): OnlineContrastiveLoss vs
   ContrastiveLoss vs MultipleNegativesRankingLoss, test average precision and F1 (cosine).
3. Throughput: the training stage (sttune's train_model) vs a bare SentenceTransformerTrainer
   script with the same settings, pairs per second, as a ratio measured in one process.

Each trial is a real `sttune run` (data_prep -> evaluation) into bench/out/, appended to
bench/RESULTS.md with the machine.

    .venv/bin/python bench/losses.py [--epochs 1] [--seeds 0 1 2] [--skip-mrpc] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from default_run import append_results, machine  # noqa: E402

STSB_LOSSES = ["CoSENTLoss", "CosineSimilarityLoss", "AnglELoss"]
MRPC_LOSSES = ["OnlineContrastiveLoss", "ContrastiveLoss", "MultipleNegativesRankingLoss"]


def sttune_run(name: str, overrides: list[str], must_complete: str = "embedding_viz") -> Path:
    runs_dir = HERE / "out"
    command = [sys.executable, "-m", "sttune_helpers.cli", "run", "--preset", "default", "--name", name,
               "--runs-dir", str(runs_dir), "--overwrite", "-p", "viz.max_points=10",
               # Only the fine-tuned model's test metrics are compared: no forgetting check or interpolation.
               "-p", "eval.reference=false", "-p", "eval.interpolation_alphas=[]"]
    for override in overrides:
        command += ["-p", override]
    subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    manifest = json.loads((runs_dir / name / "manifest.json").read_text())
    if manifest["stages"][must_complete]["status"] != "completed":
        raise SystemExit(f"run {name}: stage {must_complete} did not complete; see {runs_dir / name}")
    return runs_dir / name


def stsb(epochs: float, seeds: list[int]) -> list[str]:
    lines = ["| loss | test Spearman (mean ± sd) | seeds |", "|---|---|---|"]
    for loss in STSB_LOSSES:
        values = []
        for seed in seeds:
            run = sttune_run(f"losses-stsb-{loss}-{seed}", [f"loss.name={loss}", f"seed={seed}",
                                                            f"train.epochs={epochs}"])
            metrics = json.loads((run / "eval" / "metrics.json").read_text())
            values.append(metrics["models"]["fine_tuned"]["metrics"]["spearman_cosine"]["value"])
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"| {loss} | {statistics.mean(values):.4f} ± {sd:.4f} | {', '.join(f'{v:.4f}' for v in values)} |")
    return lines


def mrpc(path: Path, epochs: float) -> list[str]:
    lines = ["| loss | test AP (cosine) | test F1 (cosine) |", "|---|---|---|"]
    for loss in MRPC_LOSSES:
        # Scored here with the library's evaluator: until the evaluation stage handles pair_binary
        # (issue 5) the run stops after training.
        run = sttune_run(f"losses-mrpc-{loss}", [f"data.source={path}", "data.shape=auto", f"loss.name={loss}",
                                                 f"train.epochs={epochs}"], must_complete="training")
        from sentence_transformers import SentenceTransformer

        from sttune_helpers.data import load_split
        from sttune_helpers.evaluation import build_evaluator
        from sttune_helpers.rundir import RunDir

        evaluator = build_evaluator("pair_binary", load_split(RunDir(run), "test"), name="test")
        scores = evaluator(SentenceTransformer(str(run / "model")))
        lines.append(f"| {loss} | {scores['test_cosine_ap']:.4f} | {scores['test_cosine_f1']:.4f} |")
    return lines


def step_timer():
    """A TrainerCallback that times the optimizer steps alone: from the end of the first step (which
    pays one-off set-up) to the end of the last, so the trainer's start-up and the evaluation and
    checkpoint that follow a step (on_step_end comes before them) are outside the rate."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def rate(self, batch_size: int) -> float:
            if len(self.ends) < 2:
                raise ValueError("the throughput needs at least 2 training steps")
            return batch_size * (len(self.ends) - 1) / (self.ends[-1] - self.ends[0])

    return StepTimer()


def bare_trainer_rates(config, train_dataset, precision: str, device: str, steps: int,
                       output_dir: Path) -> tuple[float, float]:
    """Pairs/s of a bare SentenceTransformerTrainer script (CoSENTLoss, the config's batch, learning rate,
    warmup, weight decay, scheduler and seed) over ``steps``: (optimizer steps alone, the trainer's own
    train_samples_per_second)."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from sttune_helpers.modeling import load_model

    batch = config.train.batch_size
    model = load_model(config.model.name, device=device)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=config.train.learning_rate, warmup_steps=config.train.warmup_ratio,
        weight_decay=config.train.weight_decay, lr_scheduler_type=config.train.scheduler,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device == "cpu", report_to=[],
        save_strategy="no", eval_strategy="no", logging_steps=config.train.logging_steps,
        seed=config.seed, data_seed=config.seed, dataloader_num_workers=0)
    timer = step_timer()
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset,
                                         loss=CoSENTLoss(model), callbacks=[timer])
    metrics = trainer.train().metrics
    return timer.rate(batch), metrics["train_samples_per_second"]


def throughput_ratio(steps: int, workdir: Path = HERE / "out") -> dict:
    """Pairs per second of sttune's training stage (training.train_model) vs a bare
    SentenceTransformerTrainer script with the same data, loss (CoSENTLoss) and settings (batch 16,
    lr 2e-5, 10% warmup, weight decay 0.01, the stage's precision, seed and sampler), in one process.

    Order bare, stage, bare: the ratio divides by the mean of the two bare runs, so drift on a shared
    machine cancels. ``ratio`` uses the optimizer steps alone (step_timer); ``trainer_ratio`` the
    trainers' own train_samples_per_second, whose time also holds the stage's one validation pass and
    checkpoint (at the last step) and the trainer's start-up."""
    import shutil

    from sttune_helpers.config import load_preset
    from sttune_helpers.core.hardware import pick_device, pick_precision
    from sttune_helpers.data import load_split, prepare_data, write_splits
    from sttune_helpers.losses import write_plan
    from sttune_helpers.rundir import RunDir
    from sttune_helpers.training import train_model

    config = load_preset("default").with_overrides([f"train.max_steps={steps}", "train.early_stopping_patience=null",
                                                    "train.evaluations_per_epoch=1", "train.collapse_threshold=null",
                                                    "loss.name=CoSENTLoss"])
    # A scratch run with the default preset's data (STS-B) and plan.
    run = RunDir(workdir / "throughput")
    shutil.rmtree(run.root, ignore_errors=True)
    run.root.mkdir(parents=True)
    prepared = prepare_data(config.data, seed=config.seed)
    write_splits(run, prepared)
    config.data.shape = prepared.shape
    write_plan(run, config, n_train=len(prepared.splits["train"]), shape=prepared.shape)

    device = pick_device(config.model.device)
    precision, _ = pick_precision(config.train.precision, device)
    train_dataset = load_split(run, "train")
    batch = config.train.batch_size

    def bare() -> tuple[float, float]:
        return bare_trainer_rates(config, train_dataset, precision, device, steps, workdir / "bare-trainer")

    first = bare()
    timer = step_timer()
    summary = train_model(run, config, callbacks=[timer])
    stage = (timer.rate(batch), summary["train_samples_per_second"])
    second = bare()
    bare_rate = (first[0] + second[0]) / 2
    bare_trainer_rate = (first[1] + second[1]) / 2
    return {"steps": steps, "batch_size": batch, "loss": "CoSENTLoss", "precision": precision, "device": device,
            "stage_rate": stage[0], "bare_rates": [first[0], second[0]], "ratio": stage[0] / bare_rate,
            "stage_trainer_rate": stage[1], "bare_trainer_rates": [first[1], second[1]],
            "trainer_ratio": stage[1] / bare_trainer_rate}


def throughput_lines(result: dict) -> list[str]:
    return [f"- {result['steps']} steps of {result['loss']}, batch {result['batch_size']}, {result['precision']} on "
            f"{result['device']}, optimizer steps alone: training stage {result['stage_rate']:.1f} pairs/s, bare "
            f"trainer {' and '.join(f'{r:.1f}' for r in result['bare_rates'])} pairs/s (before and after), "
            f"**ratio {result['ratio']:.3f}** (target >= 0.97)",
            f"- the trainers' own train_samples_per_second: stage {result['stage_trainer_rate']:.1f}, bare "
            f"{' and '.join(f'{r:.1f}' for r in result['bare_trainer_rates'])}, ratio {result['trainer_ratio']:.3f} "
            "(the stage's time also holds its one validation pass and checkpoint at the last step)"]


def throughput(steps: int) -> list[str]:
    """Pairs per second of train_model vs a bare trainer on the same data and settings."""
    return throughput_lines(throughput_ratio(steps))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mrpc", type=Path, default=HERE.parent.parent / "shared" / "data" / "mrpc")
    parser.add_argument("--skip-mrpc", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--throughput-steps", type=int, default=100)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    lines = [f"\n## Loss registry ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"Machine: {machine()}. Command: `.venv/bin/python bench/losses.py --epochs {args.epochs:g} "
             f"--seeds {' '.join(map(str, args.seeds))}`", "", "### STS-B, same budget", ""]
    lines += stsb(args.epochs, args.seeds)
    if not args.skip_mrpc:
        lines += ["", "### MRPC", ""] + mrpc(args.mrpc, args.epochs)
    if not args.skip_throughput:
        lines += ["", "### Training-stage throughput", ""] + throughput(args.throughput_steps)
    lines += ["", f"Total {time.perf_counter() - started:.0f} s."]
    append_results(args.results, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
