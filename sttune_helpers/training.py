"""Training stage: assemble the sentence-transformers trainer from the config, train with early
stopping on the validation metric, keep the best checkpoint where it beats the last model beyond
the validation noise (train.restore_best), save the model with its card."""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

from transformers import TrainerCallback

from . import distributed
from .config import RunConfig
from .core.errors import SttuneError
from .core.hardware import pick_device, pick_precision
from .core.io import atomic_directory, atomic_write_json, read_json
from .data import load_split, read_report
from .evaluation import build_evaluator, mean_cosine_of_pairs, validation_metric
from .losses import IN_BATCH_NEGATIVE_LOSSES, build_loss, fit_columns, read_plan_loss
from .modeling import dataset_texts, load_configured_model, truncated_texts, truncation_warning
from .rundir import RunDir

# Texts whose embeddings the collapse guard compares at every evaluation.
COLLAPSE_PROBE_SIZE = 32


class TrainingDivergedError(SttuneError, RuntimeError):
    """The training loss became NaN or infinite."""


class EmbeddingCollapseError(SttuneError, RuntimeError):
    """Every text is embedded at nearly the same point."""


@dataclass
class TrainingSetup:
    device: str
    precision: str
    precision_reason: str
    steps_per_epoch: int
    eval_steps: int
    metric_for_best_model: str
    greater_is_better: bool = True
    batch_sampler: str = "batch_sampler"
    world_size: int = 1  # data-parallel processes
    per_device_batch_size: int = 16
    gradient_accumulation_steps: int = 1

    @property
    def global_batch_size(self) -> int:
        return self.per_device_batch_size * self.world_size * self.gradient_accumulation_steps

    def batch_line(self) -> str:
        return (f"batch: {self.per_device_batch_size} per device x {self.world_size} process"
                f"{'es' if self.world_size > 1 else ''} x {self.gradient_accumulation_steps} accumulation step"
                f"{'s' if self.gradient_accumulation_steps > 1 else ''} = {self.global_batch_size} per optimizer step")


def plan_training(config: RunConfig, n_train: int, device: str, shape: str | None = None,
                  loss_name: str | None = None, world_size: int | None = None) -> TrainingSetup:
    """``world_size`` (default: train.nproc) processes each take batch_size rows per step."""
    train = config.train
    world_size = world_size or train.nproc
    precision, reason = pick_precision(train.precision, device)
    global_batch = train.batch_size * train.gradient_accumulation_steps * world_size
    steps_per_epoch = max(1, math.ceil(n_train / global_batch))
    eval_steps = max(1, steps_per_epoch // max(1, train.evaluations_per_epoch))
    if train.max_steps is not None:
        eval_steps = min(eval_steps, max(1, train.max_steps // max(1, train.evaluations_per_epoch)))
    metric, greater_is_better = validation_metric(shape or config.data.shape, train.early_stopping_metric)
    sampler = train.batch_sampler
    if sampler == "auto":
        sampler = "no_duplicates" if loss_name in IN_BATCH_NEGATIVE_LOSSES else "batch_sampler"
    return TrainingSetup(device, precision, reason, steps_per_epoch, eval_steps, metric, greater_is_better, sampler,
                         world_size=world_size, per_device_batch_size=train.batch_size,
                         gradient_accumulation_steps=train.gradient_accumulation_steps)


def checkpointing_argument(enabled: bool) -> dict[str, bool]:
    """Activation checkpointing under the name the installed training arguments declare:
    sentence-transformers 6.2 knows only ``gradient_checkpointing``; 6.3 names it
    ``activation_checkpointing`` and keeps the old name as a deprecated alias."""
    from dataclasses import fields

    from sentence_transformers import SentenceTransformerTrainingArguments

    names = {field.name for field in fields(SentenceTransformerTrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def build_training_arguments(config: RunConfig, run: RunDir, setup: TrainingSetup):
    from sentence_transformers import SentenceTransformerTrainingArguments

    train = config.train
    return SentenceTransformerTrainingArguments(
        output_dir=str(run.checkpoints_dir),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps if train.max_steps is not None else -1,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=config.eval.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        learning_rate=train.learning_rate,
        warmup_steps=train.warmup_ratio,  # transformers 5 reads a float below 1 as a ratio
        weight_decay=train.weight_decay,
        lr_scheduler_type=train.scheduler,
        bf16=setup.precision == "bf16",
        fp16=setup.precision == "fp16",
        use_cpu=setup.device == "cpu",
        ddp_backend=distributed.ddp_backend(setup.device) if setup.world_size > 1 else None,
        **checkpointing_argument(train.gradient_checkpointing),
        batch_sampler=setup.batch_sampler,
        eval_strategy="steps",
        eval_steps=setup.eval_steps,
        save_strategy="steps",
        save_steps=setup.eval_steps,
        save_total_limit=train.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model=setup.metric_for_best_model,
        greater_is_better=setup.greater_is_better,
        logging_steps=train.logging_steps,
        logging_first_step=True,
        # Otherwise the trainer replaces a NaN step loss with the running mean, hiding it from the guard.
        logging_nan_inf_filter=not train.stop_on_nan,
        report_to=["tensorboard"],  # into run.tensorboard_dir, set through the environment in train_model
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
    )


class NonFiniteLossGuard(TrainerCallback):
    """Stops training with an explanation when a logged training loss is NaN or infinite."""

    def __init__(self, learning_rate: float, precision: str):
        self.learning_rate = learning_rate
        self.precision = precision

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            causes = [f"a learning rate too high for this model (train.learning_rate={self.learning_rate:g}; "
                      "2e-5 is the usual start)",
                      "a temperature too low or a scale too high in the loss (loss.temperature, loss.params)",
                      "bad targets: scores outside 0..1 or labels the loss does not expect"]
            if self.precision == "fp16":
                causes.insert(0, "fp16 overflow: use bf16 or fp32 (train.precision)")
            raise TrainingDivergedError(f"training stopped at step {state.global_step}: the training loss is {loss}. "
                                        "Likely causes: " + "; ".join(causes) + ".")


def mean_pairwise_cosine(model, texts: list[str], batch_size: int = 32) -> float:
    """Mean cosine similarity over all distinct pairs of ``texts``' embeddings."""
    return mean_cosine_of_pairs(model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                             show_progress_bar=False))


class CollapseGuard(TrainerCallback):
    """Stops training when the embeddings of a fixed probe set have collapsed onto one point:
    their mean pairwise cosine above ``threshold`` and above the base model's."""

    def __init__(self, model, probe_texts: list[str], threshold: float, base_value: float | None = None):
        self.model = model
        self.probe_texts = probe_texts
        self.threshold = threshold
        self.base_value = base_value if base_value is not None else mean_pairwise_cosine(model, probe_texts)
        self.values: list[tuple[int, float]] = []

    def check(self, step: int) -> float:
        was_training = self.model.training
        value = mean_pairwise_cosine(self.model, self.probe_texts)
        self.model.train(was_training)
        self.values.append((step, value))
        if value > self.threshold and value > self.base_value:
            raise EmbeddingCollapseError(
                f"training stopped at step {step}: the embeddings have collapsed (mean pairwise cosine of "
                f"{len(self.probe_texts)} validation texts is {value:.3f}, the base model's {self.base_value:.3f}, "
                f"threshold {self.threshold}). Likely causes: a learning rate too high; a loss temperature too "
                "high (loss.temperature) or a margin that every pair already satisfies; training pairs that are "
                "all positives with nothing to push apart (pair_binary data without label 0, or no negatives).")
        return value

    def on_evaluate(self, args, state, control, **kwargs):
        self.check(state.global_step)


def probe_texts(dataset, size: int = COLLAPSE_PROBE_SIZE) -> list[str]:
    """Up to ``size`` distinct texts from a split's first text column, in order."""
    column = [c for c in dataset.column_names if c not in ("score", "label")][0]
    seen: dict[str, None] = {}
    for text in dataset[column]:
        seen.setdefault(text, None)
        if len(seen) >= size:
            break
    return list(seen)


def last_checkpoint(run: RunDir):
    """The newest complete checkpoint: the trainer writes trainer_state.json last, so a checkpoint
    that a kill cut short (no such file, or half of it) is skipped."""
    def complete(folder) -> bool:
        try:
            read_json(folder / "trainer_state.json")
            return True
        except (OSError, ValueError):
            return False

    checkpoints = sorted(run.checkpoints_dir.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    checkpoints = [c for c in checkpoints if complete(c)]
    return checkpoints[-1] if checkpoints else None


def checkpoint_step(path) -> int:
    return int(str(path).rsplit("-", 1)[-1])


def compare_checkpoints(run: RunDir, config: RunConfig, best_model, last_model, metric_for_best_model: str,
                        best_step: int, last_step: int) -> dict[str, Any]:
    """The rule of train.restore_best: which of the best and the last model training keeps, and
    why. "if_significant" scores both on the validation split with a paired bootstrap and keeps the
    best only where the interval of best - last lies above 0."""
    rule = config.train.restore_best
    record = {"rule": rule, "best_step": best_step, "last_step": last_step, "metric": None, "best_value": None,
              "last_value": None, "difference": None, "ci95": [None, None], "p_value": None}
    if rule != "if_significant":
        kept = "best" if rule == "always" else "last"
        return {**record, "kept": kept, "reason": f"train.restore_best={rule}: the {kept} model is kept"}
    from . import evaluation, shapes
    from .data import read_report

    metric = metric_for_best_model.removeprefix("eval_").removeprefix("validation_")
    shape = read_report(run)["shape"]
    if shape == "unlabeled" or metric not in shapes.get(shape).metrics:
        return {**record, "kept": "best", "reason": f"the validation {metric} has no per-item values to compare "
                f"checkpoints by: the best checkpoint (step {best_step}) is restored"}
    task = evaluation.load_task(run, config, split="validation")
    boot = evaluation.Bootstrap.draw(task.n, config.eval.bootstrap_samples, config.eval.confidence, config.seed)
    scores = {name: evaluation.score_model(task, model, boot, config.eval.batch_size, config.seed,
                                           config.eval.precision)
              for name, model in (("best", best_model), ("last", last_model))}
    comparison = evaluation.paired_comparison("best", "last", metric, {n: s.metrics for n, s in scores.items()},
                                              {n: s.resampled for n, s in scores.items()}, boot)
    low = comparison["ci95"][0]
    kept = "best" if low is not None and low > 0 else "last"
    interval = (f"[{comparison['ci95'][0]:+.4f}, {comparison['ci95'][1]:+.4f}]" if low is not None else "(no interval)")
    difference = comparison["difference"]
    reason = (f"on the {task.n} validation items, best (step {best_step}) - last (step {last_step}) {metric} = "
              f"{difference:+.4f}, 95% interval {interval}: "
              + ("the best checkpoint is better beyond the noise and is restored" if kept == "best" else
                 "not better beyond the noise, so the last (more trained) model is kept"))
    return {**record, "metric": metric, "best_value": scores["best"].metrics[metric]["value"],
            "last_value": scores["last"].metrics[metric]["value"], "difference": difference,
            "ci95": comparison["ci95"], "p_value": comparison["p_value"], "n_validation": task.n,
            "kept": kept, "reason": reason}


def keep_checkpoint(run: RunDir, config: RunConfig, model, state, setup: TrainingSetup) -> dict[str, Any] | None:
    """Apply train.restore_best after the trainer restored the best checkpoint into ``model``: load
    the last checkpoint's weights instead where the rule keeps the last model. None where the best
    checkpoint is the last one (nothing to choose)."""
    from sentence_transformers import SentenceTransformer

    last = last_checkpoint(run)
    if state.best_model_checkpoint is None or last is None:
        return None
    best_step, last_step = checkpoint_step(state.best_model_checkpoint), checkpoint_step(last)
    if best_step == last_step:
        return None
    last_model = None if config.train.restore_best == "always" else SentenceTransformer(str(last),
                                                                                         device=str(model.device))
    started = time.perf_counter()
    choice = compare_checkpoints(run, config, model, last_model, setup.metric_for_best_model, best_step, last_step)
    choice["seconds"] = round(time.perf_counter() - started, 1)
    choice["kept_checkpoint"] = str(last) if choice["kept"] == "last" else state.best_model_checkpoint
    if choice["kept"] == "last":
        model.load_state_dict(last_model.state_dict())
        try:  # the model card names the step of the weights it ships
            model.model_card_data.set_best_model_step(last_step)
        except AttributeError:
            pass
    print(f"checkpoint: {choice['reason']}")
    return choice


def train_model(run: RunDir, config: RunConfig, resume: bool = False, callbacks: Sequence = ()) -> dict[str, Any]:
    """Train, keep the best checkpoint or the last model (train.restore_best), save the model;
    returns (and writes) the summary.

    With ``resume`` training continues from the last checkpoint in the run directory (model,
    optimizer, scheduler and data order), if there is one. ``callbacks`` are extra
    transformers TrainerCallbacks (progress displays, custom stops).

    With ``train.nproc > 1`` this launches that many processes under torchrun (distributed.py),
    each of which calls this function; rank 0 alone writes into the run directory."""
    if config.train.nproc < 1:
        raise ValueError(f"train.nproc must be at least 1, got {config.train.nproc}")
    if config.train.nproc > 1 and not distributed.in_worker():
        if callbacks:
            raise ValueError("callbacks run in this process and cannot be passed to training in several processes "
                             f"(train.nproc={config.train.nproc}); train with train.nproc=1 to use them")
        return distributed.launch_training(run, config, resume=resume)

    import torch
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import EarlyStoppingCallback

    plan = read_json(run.plan_path)
    report = read_report(run)
    data_shape = report["shape"]
    loss_shape = plan.get("train_shape", data_shape)
    choice = read_plan_loss(plan)
    labels = (report.get("labels") or {}).get("names") or config.data.labels
    train_dataset = fit_columns(load_split(run, "train"), loss_shape, choice.name, labels, seed=config.seed)
    validation_dataset = load_split(run, "validation")
    device = pick_device(config.model.device)
    world_size = distributed.world_size()
    writes = distributed.is_rank_zero()  # only rank 0 writes into the run directory
    setup = plan_training(config, len(train_dataset), device, shape=data_shape, loss_name=choice.name,
                          world_size=world_size)
    if writes:
        print(f"device {setup.device}; precision {setup.precision}: {setup.precision_reason}")
        print(setup.batch_line())

    model = load_configured_model(config, device=distributed.rank_device(device))
    truncation = truncated_texts(model, dataset_texts(train_dataset))  # e.g. a 1-MB text: cut, not a crash
    if truncation and writes:
        print(truncation_warning(truncation, "training texts"))
    guide = None
    if choice.name in {"GISTEmbedLoss", "CachedGISTEmbedLoss"}:
        guide = copy.deepcopy(model).requires_grad_(False)  # the base model, frozen, as the guide
    # Across processes, in-batch negatives come from every process's batch where the loss can gather them.
    loss = build_loss(model, choice, labels=labels, guide=guide, matryoshka_dims=plan.get("matryoshka_dims"),
                      gather_across_devices=world_size > 1)
    gathers = any(getattr(module, "gather_across_devices", False) is True for module in loss.modules())
    recorder = distributed.RankRecorder(model) if world_size > 1 else None
    evaluator = build_evaluator(data_shape, validation_dataset, name="validation", batch_size=config.eval.batch_size,
                                run=run)
    # The validation loss is computed only where there is no evaluator (it is then what early stopping follows).
    eval_dataset = None if evaluator is not None else fit_columns(validation_dataset, data_shape, choice.name, labels,
                                                                  seed=config.seed)
    callbacks = list(callbacks)
    if config.train.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.train.early_stopping_patience,
                                               early_stopping_threshold=config.train.early_stopping_threshold))
    if config.train.stop_on_nan:
        callbacks.append(NonFiniteLossGuard(config.train.learning_rate, setup.precision))
    collapse_guard = None
    if config.train.collapse_threshold is not None:
        collapse_guard = CollapseGuard(model, probe_texts(validation_dataset), config.train.collapse_threshold)
        callbacks.append(collapse_guard)
    # transformers 5 takes the TensorBoard folder from the environment, read when the trainer starts.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.tensorboard_dir)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=build_training_arguments(config, run, setup),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=callbacks,
    )
    checkpoint = last_checkpoint(run) if resume else None
    if resume and writes:
        print(f"resuming from {checkpoint}" if checkpoint else "no checkpoint to resume from: training from the start")
    on_cuda = model.device.type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(model.device)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - started
    peak_memory = torch.cuda.max_memory_allocated(model.device) if on_cuda else None
    ranks = None
    if recorder is not None:
        ranks = distributed.gather_from_ranks(recorder.record(steps=trainer.state.global_step,
                                                              peak_gpu_memory_bytes=peak_memory))
        print(f"rank {distributed.rank()} of {world_size}: {trainer.state.global_step} steps, "
              f"{ranks[distributed.rank()]['texts_encoded']} texts encoded")
        if peak_memory is not None:
            peak_memory = max(r["peak_gpu_memory_bytes"] for r in ranks)

    state = trainer.state
    choice = keep_checkpoint(run, config, model, state, setup) if writes else None
    if writes:
        with atomic_directory(run.model_dir) as tmp:
            model.save(str(tmp))

    max_steps = state.max_steps
    summary = {
        "device": setup.device,
        "precision": setup.precision,
        "precision_reason": setup.precision_reason,
        "loss": plan["loss"]["name"],
        "batch_sampler": setup.batch_sampler,
        "world_size": world_size,
        "ddp_backend": distributed.ddp_backend(setup.device) if world_size > 1 else None,
        "per_device_batch_size": setup.per_device_batch_size,
        "gradient_accumulation_steps": setup.gradient_accumulation_steps,
        "global_batch_size": setup.global_batch_size,
        "gather_across_devices": gathers,
        "n_train": len(train_dataset),
        "truncated_texts": truncation,
        "steps_per_epoch": setup.steps_per_epoch,
        "eval_steps": setup.eval_steps,
        "global_step": state.global_step,
        "max_steps": max_steps,
        "stopped_early": state.global_step < max_steps,
        "resumed_from_step": int(checkpoint.name.rsplit("-", 1)[-1]) if checkpoint else None,
        "metric_for_best_model": setup.metric_for_best_model,
        "greater_is_better": setup.greater_is_better,
        "best_metric": state.best_metric,
        "best_checkpoint": state.best_model_checkpoint,
        # The checkpoint whose weights are in the model folder, and train.restore_best's comparison.
        "kept_checkpoint": choice["kept_checkpoint"] if choice else state.best_model_checkpoint,
        "checkpoint_choice": choice,
        "collapse_probe": {"base": collapse_guard.base_value, "values": collapse_guard.values} if collapse_guard else None,
        "train_seconds": round(seconds, 2),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        # torch.cuda.max_memory_allocated during training (the largest of the ranks'); None off CUDA.
        "peak_gpu_memory_bytes": peak_memory,
        "peak_gpu_memory_gib": round(peak_memory / 2**30, 3) if peak_memory is not None else None,
        "ranks": ranks,
        "log_history": state.log_history,
    }
    if writes:
        atomic_write_json(run.training_summary_path, summary)
    return summary


def validation_curve(summary: dict[str, Any]) -> list[tuple[int, float]]:
    key = summary["metric_for_best_model"]
    return [(entry["step"], entry[key]) for entry in summary["log_history"] if key in entry]


def loss_curve(summary: dict[str, Any]) -> list[tuple[int, float]]:
    return [(entry["step"], entry["loss"]) for entry in summary["log_history"] if "loss" in entry]


def plot_curves(summary: dict[str, Any], path=None):
    """Training loss and the validation metric against the step."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps, losses = zip(*loss_curve(summary)) if loss_curve(summary) else ((), ())
    left.plot(steps, losses, color="#2f6fde")
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    curve = validation_curve(summary)
    if curve:
        eval_steps, values = zip(*curve)
        right.plot(eval_steps, values, marker="o", color="#e0823d")
    best, kept = summary.get("best_checkpoint"), summary.get("kept_checkpoint", summary.get("best_checkpoint"))
    if best:
        right.axvline(checkpoint_step(best), color="grey", linestyle="--",
                      label="best checkpoint" + (" (restored)" if kept == best else ""))
        if kept and kept != best:
            right.axvline(checkpoint_step(kept), color="black", linestyle=":", label="last model (kept)")
        right.legend(loc="lower right")
    right.set_xlabel("step")
    right.set_ylabel(summary["metric_for_best_model"].removeprefix("eval_"))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the TensorBoard event files under ``folder``: tag -> [(step, value)]."""
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {}
    for events in sorted(Path(folder).rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                series.setdefault(tag, {})[event.step] = event.value  # a resumed run rewrites its steps
    return {tag: sorted(points.items()) for tag, points in series.items()}


def plot_tensorboard(folder, path=None):
    """Training loss, learning rate and the validation metrics, drawn from the event files."""
    import matplotlib.pyplot as plt

    series = tensorboard_scalars(folder)
    panels = [("training loss", [t for t in series if t == "train/loss"]),
              ("learning rate", [t for t in series if t == "train/learning_rate"]),
              ("validation", [t for t in series if t.startswith("eval/") and not t.endswith(("_runtime", "per_second",
                                                                                               "/epoch"))])]
    panels = [(title, tags) for title, tags in panels if tags]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.4), squeeze=False)
    for ax, (title, tags) in zip(axes[0], panels):
        for tag in tags:
            steps, values = zip(*series[tag])
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, label=tag.split("/", 1)[1])
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(tags) > 1 or title == "validation":
            ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


# --- loss bake-off ---------------------------------------------------------------------------------


def bake_off(run: RunDir, config: RunConfig, candidates: Sequence[str] | None = None, max_steps: int = 100,
             train_rows: int | None = 2000, write_winner: bool = True):
    """Train each candidate loss for the same budget (``max_steps`` on the first ``train_rows``
    training rows) from the same base model, score each on the validation split, and (optionally)
    write the winner into plan.json. Returns a table, best first."""
    import shutil

    import pandas as pd

    from .losses import choose_loss, loss_choices, write_plan

    plan = read_json(run.plan_path)
    shape = plan.get("train_shape", config.data.shape)
    data_shape = read_report(run)["shape"]
    metric, greater_is_better = validation_metric(data_shape, config.train.early_stopping_metric)
    if metric == "eval_loss":
        raise ValueError(f"a bake-off needs a validation metric that every loss is judged by; {data_shape} data "
                         "has only the validation loss, which differs from loss to loss")
    names = list(candidates) if candidates else [c.name for c in loss_choices(shape)]
    rows = []
    for name in names:
        trial_config = copy.deepcopy(config)
        trial_config.loss.name = name
        trial_config.loss.params = {}
        trial_config.train.max_steps = max_steps
        trial_config.train.early_stopping_patience = None
        trial_config.train.evaluations_per_epoch = 1
        trial = RunDir(run.root / "bake-off" / name)
        if trial.root.exists():
            shutil.rmtree(trial.root)
        shutil.copytree(run.data_dir, trial.data_dir)
        if train_rows is not None:
            lines = trial.split_path("train").read_text(encoding="utf-8").splitlines(keepends=True)
            trial.split_path("train").write_text("".join(lines[:train_rows]), encoding="utf-8")
        write_plan(trial, trial_config, n_train=min(plan["n_train"], train_rows or plan["n_train"]), shape=shape)
        summary = train_model(trial, trial_config)
        scores = [e[metric] for e in summary["log_history"] if metric in e]
        rows.append({"loss": name, metric.removeprefix("eval_"): scores[-1] if scores else float("nan"),
                     "steps": summary["global_step"], "seconds": summary["train_seconds"]})
        shutil.rmtree(trial.checkpoints_dir, ignore_errors=True)  # the trial models are not kept
        shutil.rmtree(trial.model_dir, ignore_errors=True)
    table = pd.DataFrame(rows).sort_values(metric.removeprefix("eval_"), ascending=not greater_is_better,
                                           ignore_index=True)
    if write_winner:
        winner = table.iloc[0]
        winning_config = copy.deepcopy(config)
        winning_config.loss.name = winner["loss"]
        choose_loss(winning_config, shape)  # validates before the plan is rewritten
        new_plan = write_plan(run, winning_config, n_train=plan["n_train"], shape=shape)
        new_plan["loss"]["chosen_by"] = (f"bake-off: best validation {metric.removeprefix('eval_validation_')} "
                                         f"({winner[metric.removeprefix('eval_')]:.4f}) of {len(table)} losses "
                                         f"after {max_steps} steps each")
        new_plan["bake_off"] = table.to_dict(orient="records")
        atomic_write_json(run.plan_path, new_plan)
    return table


def plot_bake_off(table, path=None):
    import matplotlib.pyplot as plt

    metric = [c for c in table.columns if c not in ("loss", "steps", "seconds")][0]
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(table)))
    ax.barh(table["loss"][::-1], table[metric][::-1], color="#2f6fde")
    ax.set_xlabel(metric.removeprefix("validation_"))
    ax.set_title("loss bake-off (same steps, same data)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
