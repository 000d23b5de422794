"""Settings: the RunConfig schema (schema.py), typed construction and its errors (coercion.py), the
valid range of every numeric setting (ranges.py), the sweep's search space (search.py), train.budget
(budget.py), YAML files and presets (files.py, presets/)."""

from .budget import BUDGET_FORM, parse_budget
from .coercion import ConfigError
from .files import PRESETS_DIR, load_config, load_preset, preset_names, resolve_config, save_config
from .ranges import RANGES, Range, check_ranges, check_value
from .schema import (
    SWEEP_SPACE_EXAMPLE,
    AugmentConfig,
    BatchSampler,
    DataConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    NegativesConfig,
    Pooling,
    Precision,
    RunConfig,
    Scheduler,
    SweepConfig,
    TrainConfig,
    VizConfig,
)
from .search import SearchParam

__all__ = ["BUDGET_FORM", "ConfigError", "PRESETS_DIR", "load_config", "load_preset", "preset_names",
           "resolve_config", "save_config", "SWEEP_SPACE_EXAMPLE", "AugmentConfig", "DataConfig", "EvalConfig",
           "LossConfig", "ModelConfig", "NegativesConfig", "RunConfig", "SweepConfig", "TrainConfig", "VizConfig",
           "SearchParam", "BatchSampler", "Pooling", "Precision", "Scheduler", "parse_budget", "RANGES", "Range",
           "check_ranges", "check_value"]
