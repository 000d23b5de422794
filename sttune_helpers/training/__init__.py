"""Training stage: assemble the sentence-transformers trainer from the config, train with early
stopping on the validation metric, keep the best checkpoint where it beats the last model beyond
the validation noise (train.restore_best), save the model with its card.

    setup.py        TrainingSetup, the validation metric, TrainingArguments from the config
    samplers.py     length-grouped batches (train.batch_sampler=length_grouped), with no duplicates
    topic_batches.py  topic-grouped batches (train.batch_sampler=topic_grouped): harder in-batch negatives
    guards.py       stop on a NaN loss or collapsed embeddings
    candidate_scoring.py  weight states scored on validation and the reference, shared by the next two
    checkpoints.py  the last complete checkpoint; train.restore_best's best-or-last choice
    lora.py         LoRA adapters (train.lora_rank): inject, plain checkpoints + adapter file, merge before saving
    weights.py      weight snapshots, soups and mixes with the base weights
    selection.py    eval.select_model: the candidates, scored on validation and the reference, and the rule
    selection_plot.py  validation metric against general ability for each candidate
    validation_budget.py  validation's settings, precision (train.validation_precision) and share of the time
    train.py        train_model (L2-SP from losses/regularised.py, LoRA from lora.py)
    timing.py       how long each checkpoint save took (training.json "timing")
    progress.py     step / total and the validation metric as progress events, for a terminal
    curves.py       loss and validation curves, TensorBoard scalars
    bake_off.py     train each candidate loss briefly, keep the best in plan.json
    auto_recipe.py  train.budget: proxy runs choose loss, learning rate, batch; max_steps fits the budget
    shape_recipe.py  train.shape_recipe: the data shape's measured settings, filled in by stage 02
    ranks.py        inside a rank: rank helpers, DDP backend, RankRecorder
    launch.py       several processes under torchrun, and their failures
    rank_startup.py  on several machines: every rank waits for the others to be ready (train.rdzv_timeout)
    errors.py       TrainingError, TrainingDivergedError, EmbeddingCollapseError, DistributedTrainingError

Imports run one way: errors <- ranks <- samplers <- setup, candidate_scoring <- checkpoints, selection, guards,
launch, lora <- train <- bake_off, auto_recipe <- shape_recipe.
Each rank's entry point is runner/worker.py, which runs the training stage's step.
"""

from .auto_recipe import auto_recipe, record_budget
from .auto_recipe import trials_table as auto_trials_table
from .bake_off import bake_off, plot_bake_off
from .checkpoints import compare_checkpoints
from .curves import plot_curves, plot_tensorboard, tensorboard_scalars
from .errors import DistributedTrainingError, EmbeddingCollapseError, TrainingDivergedError, TrainingError
from .guards import CollapseGuard, NonFiniteLossGuard, mean_pairwise_cosine
from .launch import check_devices, check_nodes, launch_training, refuse_several_nodes, runs_distributed
from .selection import select_model
from .selection_plot import plot_selection
from .setup import checkpointing_argument, plan_training
from .shape_recipe import apply_shape_recipe
from .shape_recipe import describe as describe_shape_recipe
from .train import train_model

__all__ = ["CollapseGuard", "DistributedTrainingError", "EmbeddingCollapseError", "NonFiniteLossGuard",
           "TrainingDivergedError", "TrainingError", "apply_shape_recipe", "auto_recipe", "auto_trials_table",
           "bake_off", "check_devices", "check_nodes", "checkpointing_argument", "compare_checkpoints",
           "describe_shape_recipe", "launch_training", "mean_pairwise_cosine", "plan_training", "plot_bake_off",
           "plot_curves", "plot_selection", "plot_tensorboard", "record_budget", "refuse_several_nodes",
           "runs_distributed", "select_model", "tensorboard_scalars", "train_model"]
