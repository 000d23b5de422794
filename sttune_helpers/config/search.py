"""The sweep's search space: ``sweep.space`` entries checked against the config's types and ranges
(ranges.py) and turned into typed dimensions (float or int ranges, or choices) that Optuna samples."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from .coercion import ConfigError, _coerce, _type_name, _unknown_key
from .ranges import RANGES

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


def search_params(space: dict[str, Any], root: type, source: str = "config") -> list[SearchParam]:
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
        hint = _setting_hint(root, key, where)
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
            param = _choices_param(key, spec, hint, where)
        else:
            param = _range_param(key, spec, base, hint, where)
        _check_within_range(param, where)
        params.append(param)
    return params


def _check_within_range(param: SearchParam, where: str) -> None:
    """Refuse a range end or a choice outside the setting's own range: a trial would be refused."""
    allowed = RANGES.get(param.key)
    if allowed is None:
        return
    if param.kind == "categorical":
        values = [("choice", c) for c in param.choices if c is not None]
    else:
        values = [("low", param.low), ("high", param.high)]
    for name, value in values:
        if not allowed.contains(value):
            raise ConfigError(f"{where}: {param.key!r}: {name} {value} is out of the setting's range; expected "
                              f"{allowed.describe()}")


def _setting_hint(root: type, key: str, where: str) -> Any:
    """The type of a dotted key of the ``root`` config class, with the unknown-key error (and its did-you-mean)."""
    hint: Any = root
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
