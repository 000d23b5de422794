"""Config files: load and save a RunConfig as YAML, the shipped presets, and the rule for which
config a run starts from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..core.io import atomic_write_text
from .coercion import ConfigError
from .schema import RunConfig

PRESETS_DIR = Path(__file__).parent / "presets"


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if raw is None:  # nothing, or only comments: never what a run meant (write {} for every default)
        raise ConfigError(f"{path} is empty: it holds no settings (nothing, or only comments); a config file is "
                          "a mapping of settings such as 'train: {epochs: 2}', or '{}' for every default")
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(raw).__name__}")
    return RunConfig.from_dict(raw, source=str(path))


def save_config(config: RunConfig, path: str | Path) -> None:
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
