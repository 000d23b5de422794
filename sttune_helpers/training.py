"""Training stage: assemble the sentence-transformers trainer from the config, train with early
stopping on the validation metric, restore the best checkpoint, save the model with its card."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

from .config import RunConfig
from .data import load_split
from .evaluation import build_evaluator, primary_metric_key
from .losses import build_loss, read_plan_loss
from .modeling import load_model, pick_device, pick_precision
from .rundir import RunDir, atomic_directory, atomic_write_json, read_json


@dataclass
class TrainingSetup:
    device: str
    precision: str
    precision_reason: str
    steps_per_epoch: int
    eval_steps: int
    metric_for_best_model: str


def plan_training(config: RunConfig, n_train: int, device: str) -> TrainingSetup:
    train = config.train
    precision, reason = pick_precision(train.precision, device)
    steps_per_epoch = max(1, math.ceil(n_train / (train.batch_size * train.gradient_accumulation_steps)))
    eval_steps = max(1, steps_per_epoch // max(1, train.evaluations_per_epoch))
    if train.max_steps is not None:
        eval_steps = min(eval_steps, max(1, train.max_steps // max(1, train.evaluations_per_epoch)))
    return TrainingSetup(device, precision, reason, steps_per_epoch, eval_steps,
                         metric_for_best_model=f"eval_{primary_metric_key(config.data.shape, 'validation')}")


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
        activation_checkpointing=train.gradient_checkpointing,
        eval_strategy="steps",
        eval_steps=setup.eval_steps,
        save_strategy="steps",
        save_steps=setup.eval_steps,
        save_total_limit=train.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model=setup.metric_for_best_model,
        greater_is_better=True,
        logging_steps=train.logging_steps,
        logging_first_step=True,
        report_to=["tensorboard"],  # into run.tensorboard_dir, set through the environment in train_model
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
    )


def train_model(run: RunDir, config: RunConfig, resume: bool = False) -> dict[str, Any]:
    """Train, restore the best checkpoint, save the model; returns (and writes) the summary."""
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import EarlyStoppingCallback

    plan = read_json(run.plan_path)
    train_dataset = load_split(run, "train")
    validation_dataset = load_split(run, "validation")
    device = pick_device(config.model.device)
    setup = plan_training(config, len(train_dataset), device)
    print(f"device {setup.device}; precision {setup.precision}: {setup.precision_reason}")

    model = load_model(config.model.name, device=device, max_seq_length=config.model.max_seq_length)
    loss = build_loss(model, read_plan_loss(plan))
    evaluator = build_evaluator(config.data.shape, validation_dataset, name="validation",
                                batch_size=config.eval.batch_size)
    callbacks = []
    if config.train.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.train.early_stopping_patience,
                                               early_stopping_threshold=config.train.early_stopping_threshold))
    # transformers 5 takes the TensorBoard folder from the environment, read when the trainer starts.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.tensorboard_dir)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=build_training_arguments(config, run, setup),
        train_dataset=train_dataset,
        eval_dataset=validation_dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=callbacks,
    )
    resume_from = resume and any(run.checkpoints_dir.glob("checkpoint-*"))
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if resume_from else None)
    seconds = time.perf_counter() - started

    with atomic_directory(run.model_dir) as tmp:
        model.save(str(tmp))

    state = trainer.state
    max_steps = state.max_steps
    summary = {
        "device": setup.device,
        "precision": setup.precision,
        "precision_reason": setup.precision_reason,
        "loss": plan["loss"]["name"],
        "n_train": len(train_dataset),
        "steps_per_epoch": setup.steps_per_epoch,
        "eval_steps": setup.eval_steps,
        "global_step": state.global_step,
        "max_steps": max_steps,
        "stopped_early": state.global_step < max_steps,
        "resumed": bool(resume_from),
        "metric_for_best_model": setup.metric_for_best_model,
        "best_metric": state.best_metric,
        "best_checkpoint": state.best_model_checkpoint,
        "train_seconds": round(seconds, 2),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "log_history": state.log_history,
    }
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
    best = summary.get("best_checkpoint")
    if best:
        right.axvline(int(best.rsplit("-", 1)[-1]), color="grey", linestyle="--", label="best checkpoint (restored)")
        right.legend(loc="lower right")
    right.set_xlabel("step")
    right.set_ylabel(summary["metric_for_best_model"].removeprefix("eval_"))
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
