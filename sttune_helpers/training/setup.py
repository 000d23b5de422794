"""The trainer's settings from the config: device and precision, steps per epoch and evaluation,
the metric early stopping follows, the batch sampler, the global batch, and the
SentenceTransformerTrainingArguments built from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import RunConfig
from ..core.errors import SettingError
from ..core.hardware import pick_precision
from ..losses import IN_BATCH_NEGATIVE_LOSSES
from ..rundir import RunDir
from ..scoring import validation_metric
from .ranks import ddp_backend

# Validation metrics where lower is better (the trainer's own loss).


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
    length_unit: str | None = None  # length-grouped batches: rows sorted by "tokens" or "characters"
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
        if loss_name in IN_BATCH_NEGATIVE_LOSSES:
            sampler = "no_duplicates"
        else:
            sampler = "length_grouped" if loss_name in LENGTH_GROUPED_BY_DEFAULT else "batch_sampler"
    elif sampler == "length_grouped" and loss_name in IN_BATCH_NEGATIVE_LOSSES:
        sampler = "length_grouped_no_duplicates"  # training/samplers.py
    elif sampler == "topic_grouped":
        if loss_name not in IN_BATCH_NEGATIVE_LOSSES:
            losses = ", ".join(sorted(IN_BATCH_NEGATIVE_LOSSES))
            raise SettingError(f"train.batch_sampler=topic_grouped gives harder in-batch negatives, so it needs a "
                               f"loss that uses them ({losses}); the loss is {loss_name}")
        sampler = "topic_grouped_no_duplicates"  # training/topic_batches.py
    unit = None
    if sampler.startswith("length_grouped"):
        unit = "characters" if loss_name in SORTED_BY_CHARACTERS else "tokens"
    return TrainingSetup(device, precision, reason, steps_per_epoch, eval_steps, metric, greater_is_better, sampler,
                         length_unit=unit, world_size=world_size, per_device_batch_size=train.batch_size,
                         gradient_accumulation_steps=train.gradient_accumulation_steps)


# Losses that train in length-grouped batches under batch_sampler: auto (bench/RESULTS.md): on STS-B they
# trained 1.52x as fast, and on 1,000 pairs over 3 seeds cosine regression scored the same (-0.0006, within
# the seed spread) and CoSENT 0.004 higher; OnlineContrastiveLoss on MRPC (by tokens) 1.27x as fast, over 3
# seeds test AP -0.0035 (within the seed spread, 0.006-0.009) and 0.03 less lost on SQuAD. In-batch-negative
# losses keep random batches: on SciFact at 256 tokens grouping gave no speed.
LENGTH_GROUPED_BY_DEFAULT = frozenset({"CosineSimilarityLoss", "CoSENTLoss", "OnlineContrastiveLoss"})

# Length-grouped rows are sorted by the model's tokens (what the collator pads: the fewest padded tokens),
# except for these losses, which scored better sorted by characters: CoSENT on full STS-B, 3 seeds, 0.8598
# by tokens against 0.8627 by characters (session 20), though by tokens trained 1.1x as fast. STS-B's
# genres differ in length, so batches of one token length are nearly batches of one genre, and CoSENT ranks
# the pairs of a batch against each other. Cosine regression was measured by characters only.
SORTED_BY_CHARACTERS = frozenset({"CosineSimilarityLoss", "CoSENTLoss"})


def checkpointing_argument(enabled: bool) -> dict[str, bool]:
    """Activation checkpointing under the name the installed training arguments declare:
    sentence-transformers 6.2 knows only ``gradient_checkpointing``; 6.3 names it
    ``activation_checkpointing`` and keeps the old name as a deprecated alias."""
    from dataclasses import fields

    from sentence_transformers import SentenceTransformerTrainingArguments

    names = {field.name for field in fields(SentenceTransformerTrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def build_training_arguments(config: RunConfig, run: RunDir, setup: TrainingSetup, batch_sampler=None):
    """``batch_sampler``: what the arguments take in place of the one ``setup`` names (a sampler built
    from data, e.g. training/topic_batches.py's)."""
    from sentence_transformers import SentenceTransformerTrainingArguments

    from .samplers import trainer_batch_sampler

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
        ddp_backend=ddp_backend(setup.device) if setup.world_size > 1 else None,
        **checkpointing_argument(train.gradient_checkpointing),
        batch_sampler=batch_sampler or trainer_batch_sampler(setup.batch_sampler),
        prompts=train.task_prompt,  # the library prepends it to every text column
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
