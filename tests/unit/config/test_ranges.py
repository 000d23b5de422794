"""The range table (config/ranges.py): every numeric setting has a range, a value outside it (NaN and
infinities too) is refused when the config is built, naming the key, the value and the range."""

import dataclasses
import math
import re
import types
import typing

import pytest

from sttune_helpers.config import RANGES, ConfigError, RunConfig, load_config, load_preset, preset_names


def numeric_fields(cls: type = RunConfig, prefix: str = "") -> dict[str, tuple[type, bool]]:
    """Dotted key -> (int or float, whether it is a list of them) for every int / float field of the
    config tree, Optional, "auto"-or-number and list fields included."""
    found = {}
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            found.update(numeric_fields(hint, f"{prefix}{field.name}."))
            continue
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            # Optional[X], or X | Literal["auto"] | None: the numeric member is what has a range
            (hint,) = [a for a in typing.get_args(hint)
                       if a is not type(None) and typing.get_origin(a) is not typing.Literal]
        listed = typing.get_origin(hint) is list
        if listed:
            (hint,) = typing.get_args(hint)
        if hint in (int, float):
            found[prefix + field.name] = (hint, listed)
    return found


NUMERIC = numeric_fields()


def outside(key: str) -> list:
    """Values just outside the key's range, from the table itself: below it, above it, NaN, infinity."""
    allowed, integer = RANGES[key], NUMERIC[key][0] is int
    step = 1 if integer else 0.5
    values = []
    if allowed.low is not None:
        values.append(allowed.low if allowed.low_open else allowed.low - step)
    if allowed.high is not None:
        values.append(allowed.high if allowed.high_open else allowed.high + step)
    if not integer:
        values += [math.nan, math.inf, -math.inf]
    return values


CASES = [(key, value) for key in RANGES for value in outside(key)]


def test_every_numeric_setting_has_a_range_and_every_range_a_setting():
    assert sorted(set(NUMERIC) - set(RANGES)) == [], "numeric settings without a range in config/ranges.py"
    assert sorted(set(RANGES) - set(NUMERIC)) == [], "ranges in config/ranges.py that name no numeric setting"
    for key, (kind, _) in NUMERIC.items():
        assert RANGES[key].integer == (kind is int), f"{key}: the range's integer flag does not match the field"
        # Something below the range is refused (or, for an unbounded key, NaN and infinity).
        assert outside(key), key


def test_the_defaults_and_every_preset_are_in_range():
    RunConfig.from_dict({})
    for name in preset_names():
        load_preset(name)


@pytest.mark.parametrize("key, value", CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_a_value_out_of_range_is_refused_naming_key_value_and_range(key, value):
    listed = NUMERIC[key][1]
    with pytest.raises(ConfigError) as caught:
        RunConfig().with_overrides({key: [value] if listed else value})
    shown = f"{key}[0]" if listed else key
    assert str(caught.value) == f"override: {shown}: {value} is out of range; expected {RANGES[key].describe()}"


def test_the_message_reads_as_documented():
    with pytest.raises(ConfigError,
                       match=r"^override: train\.batch_size: 0 is out of range; expected an integer >= 1$"):
        RunConfig().with_overrides(["train.batch_size=0"])
    with pytest.raises(ConfigError, match=r"train\.learning_rate: nan is out of range; expected a finite number > 0"):
        RunConfig().with_overrides(["train.learning_rate=.nan"])
    with pytest.raises(ConfigError, match=r"train\.warmup_ratio: 1\.0 is out of range; expected a number in \[0, 1\)"):
        RunConfig().with_overrides(["train.warmup_ratio=1"])
    with pytest.raises(ConfigError, match=r"eval\.interpolation_alphas\[2\]: 1\.5 is out of range; expected a number "
                                          r"in \[0, 1\]"):
        RunConfig().with_overrides(["eval.interpolation_alphas=[0, 0.5, 1.5]"])
    with pytest.raises(ConfigError, match=r"data\.score_range\[1\]: inf is out of range; expected a finite number$"):
        RunConfig().with_overrides(["data.score_range=[0, .inf]"])
    # "inf" and "nan" written as words (strings in YAML) are read as numbers, then refused.
    with pytest.raises(ConfigError, match=r"train\.epochs: inf is out of range"):
        RunConfig().with_overrides(["train.epochs=inf"])


def test_the_ends_of_each_range_are_accepted():
    config = RunConfig().with_overrides({
        "seed": 0, "train.warmup_ratio": 0.0, "train.weight_decay": 0.0, "eval.soup_size": 0, "viz.min_dist": 1.0,
        "eval.interpolation_alphas": [0.0, 1.0], "train.max_validation_share": 1.0, "eval.error_rows": 0,
        "train.collapse_threshold": -1.0, "train.lora_rank": None, "data.negatives.max_score": -3.5})
    assert config.train.warmup_ratio == 0.0 and config.eval.interpolation_alphas == [0.0, 1.0]


def test_a_config_file_out_of_range_is_named_with_its_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch_size: 0\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: train\.batch_size: 0 is out of range; "
                                          r"expected an integer >= 1$"):
        load_config(path)


@pytest.mark.parametrize("spec, message", [
    ({"train.batch_size": {"low": 0, "high": 64}}, r"'train\.batch_size': low 0 is out of the setting's range; "
                                                   r"expected an integer >= 1"),
    ({"train.batch_size": {"choices": [16, 0]}}, r"'train\.batch_size': choice 0 is out of the setting's range"),
    ({"train.warmup_ratio": {"low": 0.0, "high": 1.0}}, r"'train\.warmup_ratio': high 1\.0 is out of the setting's "
                                                        r"range; expected a number in \[0, 1\)"),
])
def test_a_sweep_space_outside_a_setting_range_is_refused(spec, message):
    with pytest.raises(ConfigError, match=r"override: sweep\.space: " + message):
        RunConfig().with_overrides({"sweep.space": spec})
    # Inside the range it is fine.
    RunConfig().with_overrides({"sweep.space": {"train.batch_size": {"low": 1, "high": 64},
                                                "train.warmup_ratio": {"low": 0.0, "high": 0.5}}})
