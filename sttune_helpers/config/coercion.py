"""Typed construction of the config tree: parsing overrides, checking every key and type against the
dataclasses, and the error that names the key. Generic over any dataclass tree."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union

import yaml

from ..core.errors import SettingError


class ConfigError(SettingError):
    """A config key is unknown, or its value has the wrong type or is out of range (config/ranges.py)."""


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
        args = typing.get_args(hint)
        named = " or ".join(_type_name(a) for a in args if a is not type(None))
        return named + (" or null" if type(None) in args else "")
    if origin is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping of settings"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(hint, str(hint))


def _quoting_hint(key: str, value: Any, hint: Any) -> str:
    """Where a string was meant but YAML read ``text: `` (e.g. a prompt) as a one-entry mapping."""
    accepts_str = hint is str or str in typing.get_args(hint)
    if not (accepts_str and isinstance(value, dict) and len(value) == 1 and None in value.values()):
        return ""
    text = f"{next(iter(value))}: "
    return f"; YAML reads a value ending in ': ' as a mapping, so quote it: -p \"{key}='{text}'\""


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    def fail() -> typing.NoReturn:
        raise ConfigError(
            f"{source}: config key {key!r} expects {_type_name(hint)}, got {value!r} ({type(value).__name__})"
            + _quoting_hint(key, value, hint)
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
