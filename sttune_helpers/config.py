"""RunConfig: one typed tree of every setting of every stage.

A run is a preset (YAML shipped in ``sttune_helpers/presets``) or a user's YAML file, plus
dotted-key overrides such as ``train.learning_rate=3e-5``. Every key and type is checked, so a
typo fails loudly with the key's name instead of being ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from .core.errors import SttuneError

PRESETS_DIR = Path(__file__).parent / "presets"

TaskShape = Literal["auto", "pair_score", "pair_binary", "pair_class", "triplet", "retrieval", "unlabeled"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Pooling = Literal["model", "mean", "max", "cls"]
BatchSampler = Literal["auto", "batch_sampler", "no_duplicates"]
Scheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"]


class ConfigError(SttuneError, ValueError):
    """A config key is unknown, or its value has the wrong type."""


@dataclass
class NegativesConfig:
    """Hard negatives for the train split (pair_binary, triplet and retrieval data)."""

    enabled: bool = False
    # "embedding" (sentence_transformers.util.mine_hard_negatives with the base model), "lexical"
    # (keyword overlap: bm25 or tfidf) or "both".
    candidates: Literal["embedding", "lexical", "both"] = "embedding"
    lexical_method: Literal["bm25", "tfidf"] = "bm25"
    num_negatives: int = 1
    # The rank window of candidates (0 = the most similar non-positive).
    range_min: int = 0
    range_max: int = 50
    # False-negative filters: drop a candidate scoring above (1 - relative_margin) x the positive's
    # score, above the positive's score minus absolute_margin, or above max_score.
    relative_margin: Optional[float] = 0.05
    absolute_margin: Optional[float] = None
    max_score: Optional[float] = None
    sampling_strategy: Literal["top", "random"] = "top"
    # "triplet": (anchor, positive, negative) rows; "n-tuple": anchor, positive, negative_1..n.
    output_format: Literal["triplet", "n-tuple"] = "triplet"
    batch_size: int = 64
    # Encoding for the mining: "auto" is bf16 where training would pick it (a CPU with AMX or AMD's
    # AVX512-BF16, a GPU with bf16), else fp32. Similarities stay within ~2e-3 of fp32's, and mining
    # runs ~1.8x faster.
    precision: Literal["auto", "bf16", "fp32"] = "auto"


@dataclass
class AugmentConfig:
    """Augmentation and synthetic pairs, applied to the train split only; every added row is tagged."""

    synonyms: bool = False
    # "embedding": neighbours in the model's own token-embedding space (no download); "wordnet":
    # nltk's WordNet (needs `python -m nltk.downloader wordnet`).
    synonym_source: Literal["embedding", "wordnet"] = "embedding"
    synonym_rate: float = 0.15  # fraction of the eligible words replaced
    synonym_copies: int = 1
    back_translation: bool = False
    # Translation models (hub names or local paths), e.g. Helsinki-NLP/opus-mt-en-de and -de-en.
    translator_forward: Optional[str] = None
    translator_backward: Optional[str] = None
    back_translation_fraction: float = 1.0
    # Unlabeled text -> (text, text) pairs for an in-batch-negative loss; dropout is the noise.
    simcse: bool = False
    # Rules that make synthetic pairs: regex substitutions, keyword swaps, templates (see augment.py).
    rules: list[dict[str, Any]] = field(default_factory=list)
    max_pairs_per_rule: int = 500


@dataclass
class DataConfig:
    # "embedded:stsb" (ships with the package; "embedded:stsb:test" is one split), a file with all
    # rows (split here), a folder holding train / dev (or validation) / test files, a folder saved
    # with datasets' save_to_disk, or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/).
    source: str = "embedded:stsb"
    # user column name -> canonical name (sentence1, sentence2, score, label, anchor, positive,
    # negative, text); common names such as premise/hypothesis or query/answer are found anyway.
    columns: dict[str, str] = field(default_factory=dict)
    # "auto" detects the shape from the columns and values and says why.
    shape: TaskShape = "auto"
    # [low, high] of the raw scores; None detects it from the data (0-1, 0-4, 0-5, 1-5).
    score_range: Optional[list[float]] = None
    # The declared label set of pair_class data (None: the labels found in train).
    labels: Optional[list[str]] = None
    # "normalized" also catches case, whitespace and punctuation variants and swapped pairs (b, a).
    deduplicate: Literal["off", "exact", "normalized"] = "normalized"
    # What to do with invalid rows: "error" stops and names them, "drop" drops and reports them.
    on_invalid: Literal["error", "drop"] = "error"
    # A column of the source whose rows must stay in one split (e.g. a premise id, a topic).
    group_by: Optional[str] = None
    # Used only when the source has no split of its own.
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    # Given splits that share items (STS-B has 12 train-test pairs) are reported; true removes
    # them from train (and validation), leaving the test split as published.
    remove_cross_split_overlap: bool = False
    # Evaluation sets (paths or embedded:NAME[:SPLIT]) whose pairs and texts are dropped from the
    # training data.
    decontaminate: list[str] = field(default_factory=list)
    # Caps for quick runs (None keeps every row); taken after cleaning, seeded.
    max_train_rows: Optional[int] = None
    max_validation_rows: Optional[int] = None
    max_test_rows: Optional[int] = None
    negatives: NegativesConfig = field(default_factory=NegativesConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    # "default" is the packaged all-MiniLM-L6-v2; otherwise a local path or a hub name.
    name: str = "default"
    max_seq_length: Optional[int] = None
    device: Device = "auto"
    # "model" keeps the model's own pooling; mean, max and cls rebuild it on the same transformer.
    pooling: Pooling = "model"
    # Dropout of the transformer's hidden layers and attention weights; None keeps the model's own.
    hidden_dropout: Optional[float] = None
    attention_dropout: Optional[float] = None


@dataclass
class LossConfig:
    # A sentence-transformers loss class name; None takes the task shape's default.
    name: Optional[str] = None
    # Keyword arguments for the loss class (e.g. {"margin": 0.5}).
    params: dict[str, Any] = field(default_factory=dict)
    # Softmax temperature of the contrastive and ranking losses (scale = 1 / temperature); None keeps
    # the loss's own default (scale 20, i.e. temperature 0.05; GISTEmbedLoss 0.01).
    temperature: Optional[float] = None
    # Wrap the loss in MatryoshkaLoss over these embedding sizes (e.g. [384, 256, 128, 64]).
    matryoshka_dims: Optional[list[int]] = None
    # Before training, train each of the shape's losses for bake_off_steps on bake_off_train_rows
    # rows, score them on the validation split, and train with the winner.
    bake_off: bool = False
    bake_off_steps: int = 100
    bake_off_train_rows: Optional[int] = 2000


@dataclass
class TrainConfig:
    learning_rate: float = 2e-5
    batch_size: int = 16
    epochs: float = 4.0
    max_steps: Optional[int] = None  # overrides epochs when set
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    scheduler: Scheduler = "linear"
    gradient_accumulation_steps: int = 1
    precision: Precision = "auto"
    gradient_checkpointing: bool = False
    # "auto": no duplicate texts within a batch for in-batch-negative losses (a duplicate would be
    # scored as a negative of itself), the plain sampler otherwise.
    batch_sampler: BatchSampler = "auto"
    # Validation runs this many times per epoch; checkpoints are saved at the same points.
    evaluations_per_epoch: int = 2
    early_stopping_patience: Optional[int] = 3  # None disables early stopping
    early_stopping_threshold: float = 0.0
    # The validation metric for early stopping and the best checkpoint, as the evaluator names it
    # without the split prefix (e.g. "spearman_cosine", "cosine_ap", "ndcg@10", "loss"); None takes
    # the task shape's primary metric.
    early_stopping_metric: Optional[str] = None
    # Which model training ends with, where the best validation checkpoint is not the last one:
    # "if_significant" restores the best only where a paired bootstrap on the validation split says it
    # beats the last model (95% interval of the difference above 0), else keeps the last, more trained
    # one (on a small validation split the best is mostly noise); "always" restores the best (the
    # library's load_best_model_at_end); "never" keeps the last.
    restore_best: Literal["if_significant", "always", "never"] = "if_significant"
    # Stop when the training loss is NaN or infinite, or the embeddings collapse: the mean pairwise
    # cosine of a fixed probe set of validation texts above this (None turns the collapse check off).
    stop_on_nan: bool = True
    collapse_threshold: Optional[float] = 0.98
    logging_steps: int = 25
    save_total_limit: int = 2
    # Processes for data-parallel training (torchrun; one per GPU, or CPU processes with gloo);
    # 1 trains in this process. batch_size is per process: the global batch is batch_size x nproc
    # x gradient_accumulation_steps.
    nproc: int = 1


@dataclass
class EvalConfig:
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    batch_size: int = 64
    # Encoding for the measurement. fp32 by default: the reported figures are exact. "auto" or "bf16"
    # encode in bf16 autocast where training would use it (~1.8x faster on a CPU with AMX, ~1.6x on
    # an AMD Zen 4; cosines within ~2e-3 of fp32), worth it for a large corpus.
    precision: Literal["fp32", "auto", "bf16"] = "fp32"
    # More models in the comparison table: name -> a model path, a hub name, or another run's directory.
    extra_models: dict[str, str] = field(default_factory=dict)
    # Forgetting guard: both models also on the STS-B test set that ships with the package.
    reference: bool = True
    reference_max_pairs: Optional[int] = None  # a seeded subsample of the reference pairs; None: all 1,379
    # Weight interpolation base -> fine-tuned at these alphas (empty: skip); final_alpha saves that
    # mix as model_final/ (None: keep the fine-tuned model as the result).
    interpolation_alphas: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    final_alpha: Optional[float] = None
    # pair_class: the accuracy of a logistic-regression probe on (u, v, |u-v|) trained on this many train rows.
    probe_train_rows: int = 5000
    error_rows: int = 10  # rows per error-analysis table


@dataclass
class VizConfig:
    max_points: int = 2000  # sentences drawn in the UMAP, subsampled with the run's seed
    n_neighbors: int = 15
    min_dist: float = 0.1
    n_epochs: Optional[int] = None  # UMAP's optimisation epochs; None lets UMAP choose (500 for small data)
    n_clusters: int = 8  # KMeans clusters that colour the maps when the data has no labels


@dataclass
class SweepConfig:
    """An Optuna search over other keys of this config (`sttune sweep`, sweep.py); `sttune run` ignores it."""

    study_name: Optional[str] = None  # None: the sweep's name (its folder in the runs directory)
    # Any SQLAlchemy URL; several machines given one URL and one study name work on one study.
    # None: sqlite:///RUNS_DIR/<sweep>/study.db
    storage: Optional[str] = None
    trials: int = 20
    # "auto": maximize or minimize as the validation metric (train.early_stopping_metric) is better.
    direction: Literal["auto", "maximize", "minimize"] = "auto"
    # Stop a trial early (MedianPruner) when its validation metric at an evaluation is worse than the
    # median of earlier trials at the same evaluation.
    pruning: bool = True
    # The trials' checkpoints/ are deleted after each trial (model/ keeps the best) unless this is true.
    keep_checkpoints: bool = False
    # Dotted config key -> {low, high[, log][, step]} (a float or int range, as the key's type) or
    # {choices: [...]}; see SWEEP_SPACE_EXAMPLE.
    space: dict[str, dict[str, Any]] = field(default_factory=dict)


SWEEP_SPACE_EXAMPLE = """\
sweep:
  trials: 20
  space:
    train.learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}
    train.batch_size: {choices: [16, 32, 64]}
    train.warmup_ratio: {low: 0.0, high: 0.2}
    train.weight_decay: {low: 0.0, high: 0.1}
    loss.temperature: {low: 0.02, high: 0.1, log: true}
    train.epochs: {low: 1, high: 4, step: 1}
    loss.name: {choices: [CoSENTLoss, CosineSimilarityLoss]}"""


@dataclass
class RunConfig:
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    viz: VizConfig = field(default_factory=VizConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)

    # --- conversions -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "RunConfig":
        config = _build(cls, raw, prefix="", source=source)
        search_params(config.sweep.space, source)  # a bad sweep space fails here, naming its key
        return config

    def with_overrides(self, overrides: dict[str, Any] | list[str] | None) -> "RunConfig":
        """A copy with dotted-key overrides applied: {"train.learning_rate": 3e-5} or
        ["train.learning_rate=3e-5"]. Values given as strings are parsed as YAML, then typed."""
        raw = self.to_dict()
        for key, value in _override_items(overrides):
            node = raw
            parts = key.split(".")
            for i, part in enumerate(parts[:-1]):
                if not isinstance(node.get(part), dict):
                    _unknown_key(".".join(parts[: i + 1]), node, ".".join(parts[:i]), "override")
                node = node[part]
            last = parts[-1]
            if last not in node and not _is_open_dict(type(self), parts[:-1]):
                _unknown_key(key, node, ".".join(parts[:-1]), "override")
            node[last] = value
        return RunConfig.from_dict(raw, source="override")


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(raw).__name__}")
    return RunConfig.from_dict(raw, source=str(path))


def save_config(config: RunConfig, path: str | Path) -> None:
    from .core.io import atomic_write_text

    atomic_write_text(Path(path), config.to_yaml())


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> RunConfig:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; the presets are: {', '.join(preset_names())}")
    return load_config(path)


def resolve_config(
    preset: str | None = "default",
    config_path: str | Path | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
) -> RunConfig:
    """A config file if given, else a preset, then the overrides."""
    base = load_config(config_path) if config_path else load_preset(preset or "default")
    return base.with_overrides(overrides) if overrides else base


# --- the sweep's search space ----------------------------------------------------------------

# Keys a sweep cannot vary, and why (its own settings are refused separately).
_NOT_SWEEPABLE = {"train.early_stopping_metric": "it names the validation metric that the sweep optimises"}
_SPEC_FIELDS = ("low", "high", "step", "log", "choices")
_SPEC_FORMS = "{low: L, high: H} (a range; optional log: true or step: S) or {choices: [a, b, ...]}"


@dataclass(frozen=True)
class SearchParam:
    """One dimension of a sweep: a float or int range, or a list of choices, for one config key."""

    key: str
    kind: Literal["float", "int", "categorical"]
    low: Optional[float] = None
    high: Optional[float] = None
    step: Optional[float] = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        """The value an optuna trial samples for this key (the trial's param is named by the key)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


def search_params(space: dict[str, Any], source: str = "config") -> list[SearchParam]:
    """The sweep's space as typed dimensions; a ConfigError names the key of anything wrong.

    A key must be a setting of this config (not a section, not the sweep's own settings); an int
    setting gets an int range, a float setting a float range, anything else (text, true/false,
    a fixed set of names) choices, each checked against the setting's type."""
    where = f"{source}: sweep.space"
    params = []
    for key, spec in space.items():
        if key.split(".")[0] == "sweep":
            raise ConfigError(f"{where}: {key!r} is a setting of the sweep itself and cannot be swept")
        if key in _NOT_SWEEPABLE:
            raise ConfigError(f"{where}: {key!r} cannot be swept: {_NOT_SWEEPABLE[key]}")
        hint = _setting_hint(key, where)
        args = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
        kinds = [a for a in args if a is not type(None)]
        base = kinds[0] if len(kinds) == 1 else None
        if base is None or typing.get_origin(base) in (list, dict):
            raise ConfigError(f"{where}: {key!r} expects {_type_name(hint)}; a sweep varies single values "
                              "(numbers, text, true/false), so sweep another key")
        if not isinstance(spec, dict) or not spec or any(f not in _SPEC_FIELDS for f in spec):
            unknown = [f for f in spec if f not in _SPEC_FIELDS] if isinstance(spec, dict) else []
            also = f" (unknown field {unknown[0]!r})" if unknown else ""
            raise ConfigError(f"{where}: {key!r} must be {_SPEC_FORMS}, got {spec!r}{also}")
        if "choices" in spec:
            params.append(_choices_param(key, spec, hint, where))
        else:
            params.append(_range_param(key, spec, base, hint, where))
    return params


def _setting_hint(key: str, where: str) -> Any:
    """The type of a dotted config key, with config.py's unknown-key error (and its did-you-mean)."""
    hint: Any = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        parent = ".".join(parts[:i])
        if dataclasses.is_dataclass(hint):
            hints = typing.get_type_hints(hint)
            if part not in hints:
                _unknown_key(".".join(parts[: i + 1]), dict.fromkeys(hints), parent, where)
            hint = hints[part]
        elif typing.get_origin(hint) is dict and i == len(parts) - 1:  # an entry of loss.params and the like
            hint = typing.get_args(hint)[1]
        else:
            raise ConfigError(f"{where}: unknown config key {key!r}: {parent!r} holds {_type_name(hint)}, "
                              "not settings")
    if dataclasses.is_dataclass(hint):
        first = dataclasses.fields(hint)[0].name
        raise ConfigError(f"{where}: {key!r} is a section of settings, not a setting; sweep one of its keys, "
                          f"e.g. {key}.{first}")
    return hint


def _choices_param(key: str, spec: dict, hint: Any, where: str) -> SearchParam:
    choices = spec["choices"]
    if len(spec) > 1:
        raise ConfigError(f"{where}: {key!r}: choices cannot be combined with low, high, step or log")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}: {key!r}: choices must be a non-empty list, got {choices!r}")
    values = []
    for choice in choices:
        if not (choice is None or isinstance(choice, (bool, int, float, str))):
            raise ConfigError(f"{where}: {key!r}: choice {choice!r} is not a single value; a sweep's choices are "
                              "null, true/false, numbers or text")
        values.append(_coerce(choice, hint, key, where))
    return SearchParam(key, "categorical", choices=tuple(values))


def _range_param(key: str, spec: dict, base: Any, hint: Any, where: str) -> SearchParam:
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: {key!r} needs both low and high, or choices: {_SPEC_FORMS}")
    bounds = [spec[f] for f in ("low", "high", "step") if spec.get(f) is not None]
    if base is Any:  # a free-form entry such as loss.params.margin: whole-number bounds make an int range
        kind = "int" if all(isinstance(v, int) and not isinstance(v, bool) for v in bounds) else "float"
    elif base is int or base is float:
        kind = "int" if base is int else "float"
    else:
        raise ConfigError(f"{where}: {key!r} expects {_type_name(hint)}, which has no range: give it "
                          f"{{choices: [...]}}")

    def number(field_name: str) -> float | int:
        value = spec[field_name]
        if isinstance(value, str):  # YAML reads 1e-5 (no dot) as text
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {key!r}: {field_name} must be a number, got {spec[field_name]!r}")
        if kind == "int":
            if not float(value).is_integer():
                raise ConfigError(f"{where}: {key!r} is an integer setting, so {field_name} must be a whole "
                                  f"number, got {value!r}")
            return int(value)
        return float(value)

    low, high = number("low"), number("high")
    step = number("step") if spec.get("step") is not None else None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: {key!r}: log must be true or false, got {log!r}")
    if not low < high:
        raise ConfigError(f"{where}: {key!r}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: {key!r}: a log range needs low above 0, got {low}")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: {key!r}: step must be above 0, got {step}")
    if log and step is not None and not (kind == "int" and step == 1):
        raise ConfigError(f"{where}: {key!r}: log and step cannot be combined; drop one")
    return SearchParam(key, kind, low=low, high=high, step=step, log=log)


# --- typed construction ----------------------------------------------------------------------


def _override_items(overrides: dict[str, Any] | list[str] | None) -> list[tuple[str, Any]]:
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return list(overrides.items())
    items = []
    for text in overrides:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {text!r} must look like key=value, e.g. train.learning_rate=3e-5")
        items.append((key.strip(), _parse_scalar(value.strip())))
    return items


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return text


def _is_open_dict(cls: type, path: list[str]) -> bool:
    """True where the path leads to a free-form dict field (e.g. loss.params)."""
    hints = typing.get_type_hints(cls)
    if not path:
        return False
    head, rest = path[0], path[1:]
    if head not in hints:
        return False
    hint = hints[head]
    if dataclasses.is_dataclass(hint):
        return _is_open_dict(hint, rest)
    return typing.get_origin(hint) is dict


def _unknown_key(key: str, node: dict, parent: str, source: str) -> typing.NoReturn:
    options = [f"{parent}.{k}" if parent else k for k in node]
    close = difflib.get_close_matches(key, options, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{source}: unknown config key {key!r}{hint}; valid keys here: {', '.join(options)}")


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "the config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where} must be a mapping of settings, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            _unknown_key(prefix + str(key), {n: None for n in names}, prefix.rstrip("."), source)
    values = {}
    for name in names:
        if name in raw:
            values[name] = _coerce(raw[name], hints[name], prefix + name, source)
    return cls(**values)


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping of settings"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(hint, str(hint))


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    def fail() -> typing.NoReturn:
        raise ConfigError(
            f"{source}: config key {key!r} expects {_type_name(hint)}, got {value!r} ({type(value).__name__})"
        )

    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".", source)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                continue
        fail()
    if origin is Literal:
        if value in typing.get_args(hint):
            return value
        fail()
    if origin is list:
        if not isinstance(value, (list, tuple)):
            fail()
        (item,) = typing.get_args(hint)
        return [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            fail()
        _, item = typing.get_args(hint)
        return {str(k): _coerce(v, item, f"{key}.{k}", source) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        fail()
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        fail()
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "3e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                fail()
        fail()
    if hint is str:
        if isinstance(value, str):
            return value
        fail()
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a bug in this module
