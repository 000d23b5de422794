"""The valid range of every numeric setting, in one table keyed by dotted key, and the check that
refuses a value outside it (NaN and infinities included) with the key, the value and the range.

The table is the one place a range is written down: the config is checked against it when it is
built (from YAML, ``-p key=value`` overrides or the panel), and the panel's sliders take their
bounds from it (ui/config_panel.py). For a list of numbers the range applies to each element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .coercion import ConfigError


@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` (None: unbounded on that side), each end included unless
    ``low_open`` / ``high_open``; ``integer`` for whole numbers. Always finite, unless ``finite`` is
    False (no setting needs that yet)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    finite: bool = True

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not (isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())):
            return False
        if math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """E.g. "an integer >= 1", "a number in [0, 1)", "a finite number"."""
        what = "an integer" if self.integer else ("a finite number" if self.finite else "a number")
        if self.low is not None and self.high is not None:
            what = "an integer" if self.integer else "a number"
            return (f"{what} in {'(' if self.low_open else '['}{_number(self.low)}, "
                    f"{_number(self.high)}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {_number(self.high)}"
        return what


def _number(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def at_least(low: int) -> Range:
    return Range(low=low, integer=True)


POSITIVE = Range(low=0.0, low_open=True)  # rates, temperatures, epochs
NON_NEGATIVE = Range(low=0.0)  # weights, margins, budgets
FRACTION = Range(low=0.0, high=1.0, high_open=True)  # ratios and dropouts: [0, 1)
PROPER_FRACTION = Range(low=0.0, high=1.0, low_open=True, high_open=True)  # (0, 1)
SHARE = Range(low=0.0, high=1.0, low_open=True)  # (0, 1]: a share that must leave something
UNIT = Range(low=0.0, high=1.0)  # [0, 1]
ANY_NUMBER = Range()  # any finite number
COUNT = at_least(1)  # sizes, counts, steps, rows
SEED_MAX = 2**32 - 1  # numpy's seeding takes 32-bit seeds

# Every int / float (or Optional, or list of them) field of RunConfig. tests/unit/config/test_ranges.py
# fails when a numeric field has no entry here, or an entry names no field.
RANGES: dict[str, Range] = {
    "seed": Range(low=0, high=SEED_MAX, integer=True),
    # data
    "data.score_range": ANY_NUMBER,  # [low, high] with low < high is checked by the data stage
    "data.validation_fraction": PROPER_FRACTION,  # 0 leaves an empty validation split when it is carved
    "data.test_fraction": PROPER_FRACTION,
    "data.max_train_rows": COUNT,
    "data.max_validation_rows": COUNT,
    "data.max_test_rows": COUNT,
    "data.negatives.num_negatives": COUNT,
    "data.negatives.range_min": at_least(0),
    "data.negatives.range_max": COUNT,  # above range_min: the data stage checks the pair
    "data.negatives.relative_margin": FRACTION,
    "data.negatives.absolute_margin": NON_NEGATIVE,
    "data.negatives.max_score": ANY_NUMBER,
    "data.negatives.batch_size": COUNT,
    "data.augment.synonym_rate": SHARE,
    "data.augment.synonym_copies": COUNT,
    "data.augment.back_translation_fraction": SHARE,
    "data.augment.max_pairs_per_rule": COUNT,
    "data.augment.augmented_sbert_top_k": COUNT,
    "data.augment.augmented_sbert_max_pairs": COUNT,
    "data.augment.augmented_sbert_threshold": PROPER_FRACTION,
    "data.augment.cross_encoder_epochs": POSITIVE,
    "data.augment.cross_encoder_batch_size": COUNT,
    "data.augment.cross_encoder_learning_rate": POSITIVE,
    # model
    "model.max_seq_length": COUNT,
    "model.hidden_dropout": FRACTION,
    "model.attention_dropout": FRACTION,
    # loss
    "loss.temperature": POSITIVE,
    "loss.matryoshka_dims": COUNT,
    "loss.bake_off_steps": COUNT,
    "loss.bake_off_train_rows": COUNT,
    # train
    "train.learning_rate": POSITIVE,
    "train.batch_size": COUNT,
    "train.epochs": POSITIVE,
    "train.max_steps": COUNT,
    "train.warmup_ratio": FRACTION,
    "train.weight_decay": NON_NEGATIVE,
    "train.gradient_accumulation_steps": COUNT,
    "train.max_seq_length": COUNT,
    "train.evaluations_per_epoch": COUNT,
    "train.validation_corpus_size": COUNT,
    "train.max_validation_share": SHARE,
    "train.early_stopping_patience": COUNT,  # 0 would stop at the first evaluation; null turns it off
    "train.early_stopping_threshold": NON_NEGATIVE,
    "train.collapse_threshold": Range(low=-1.0, high=1.0),  # a mean cosine
    "train.logging_steps": COUNT,
    "train.save_total_limit": COUNT,
    "train.nproc": COUNT,
    "train.nnodes": COUNT,
    "train.node_rank": at_least(0),  # below train.nnodes: the launcher checks the pair
    "train.rdzv_timeout": COUNT,  # seconds
    "train.l2sp_weight": NON_NEGATIVE,
    "train.general_anchor": NON_NEGATIVE,
    "train.general_anchor_texts": COUNT,
    "train.general_anchor_every": COUNT,
    "train.lora_rank": COUNT,
    "train.lora_alpha": POSITIVE,
    "train.lora_dropout": FRACTION,
    # eval
    "eval.bootstrap_samples": COUNT,
    "eval.confidence": PROPER_FRACTION,
    "eval.batch_size": COUNT,
    "eval.reference_max_pairs": COUNT,
    "eval.reference_corpus_size": COUNT,
    "eval.selection_alphas": PROPER_FRACTION,  # 0 is the base model, 1 the fine-tuned one: both always candidates
    "eval.soup_size": at_least(0),  # below 2: no soup
    "eval.max_forgetting": NON_NEGATIVE,
    "eval.interpolation_alphas": UNIT,
    "eval.final_alpha": UNIT,
    "eval.probe_train_rows": COUNT,
    "eval.error_rows": at_least(0),  # 0: empty error tables
    # viz
    "viz.max_points": COUNT,
    "viz.n_neighbors": at_least(2),  # UMAP's least
    "viz.min_dist": UNIT,  # UMAP: at most its spread, 1
    "viz.n_epochs": COUNT,
    "viz.n_clusters": COUNT,
    # sweep
    "sweep.trials": COUNT,
}


def out_of_range(key: str, value: Any, source: str | None = None) -> ConfigError:
    """The error for ``value`` of ``key`` (an element's key may end in [i]) outside its range."""
    base = key.split("[", 1)[0]
    where = f"{source}: " if source else ""
    shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
    return ConfigError(f"{where}{key}: {shown} is out of range; expected {RANGES[base].describe()}")


def check_value(key: str, value: Any, source: str | None = None) -> None:
    """Refuse ``value`` for ``key`` (a dotted key of RANGES) unless it is None or in range; a list is
    checked element by element."""
    allowed = RANGES[key]
    if value is None or value == "auto":  # "auto" where the key's type allows it (checked when typed)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if not allowed.contains(item):
                raise out_of_range(f"{key}[{i}]", item, source)
        return
    if not allowed.contains(value):
        raise out_of_range(key, value, source)


def get_key(config: Any, key: str) -> Any:
    node = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def set_key(config: Any, key: str, value: Any) -> None:
    """Set the dotted ``key`` (e.g. "train.learning_rate") of ``config`` in place, unchecked."""
    *path, name = key.split(".")
    setattr(get_key(config, ".".join(path)) if path else config, name, value)


def check_ranges(config: Any, source: str | None = None, prefix: str = "") -> None:
    """Check every setting of ``config`` (a RunConfig, or one section of it with ``prefix`` such as
    "train.") that has a range; a ConfigError names the first key out of range."""
    for key in RANGES:
        if key.startswith(prefix):
            check_value(key, get_key(config, key[len(prefix):]), source)
