import pytest

from sttune_helpers.config import (
    ConfigError,
    RunConfig,
    load_config,
    load_preset,
    preset_names,
    resolve_config,
    save_config,
)


def test_presets_ship_and_load():
    assert {"default", "smoke"} <= set(preset_names())
    default = load_preset("default")
    assert default.train.learning_rate == 2e-5
    assert default.train.batch_size == 16
    assert default.data.source == "embedded:stsb"
    assert load_preset("smoke").data.max_train_rows == 128


def test_yaml_round_trip(tmp_path):
    config = load_preset("smoke").with_overrides({"train.learning_rate": 3e-5, "loss.params": {"scale": 10.0}})
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


def test_dotted_overrides_are_typed():
    config = RunConfig().with_overrides(["train.learning_rate=3e-5", "train.batch_size=32", "seed=7",
                                         "train.gradient_checkpointing=true", "data.score_range=[0, 5]",
                                         "data.columns.similarity=score", "train.max_steps=null"])
    assert config.train.learning_rate == pytest.approx(3e-5) and isinstance(config.train.learning_rate, float)
    assert config.train.batch_size == 32 and config.seed == 7
    assert config.train.gradient_checkpointing is True
    assert config.data.score_range == [0.0, 5.0]
    assert config.data.columns == {"similarity": "score"}
    assert config.train.max_steps is None


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError,
                       match=r"unknown config key 'train.learnin_rate' \(did you mean 'train.learning_rate'\?\)"):
        RunConfig().with_overrides(["train.learnin_rate=1e-5"])
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        RunConfig.from_dict({"trian": {"epochs": 1}})


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError, match=r"'train.batch_size' expects an integer, got 'big'"):
        RunConfig().with_overrides(["train.batch_size=big"])
    with pytest.raises(ConfigError,
                       match=r"'train.precision' expects one of 'auto', 'bf16', 'fp16', 'fp32', got 'fp8'"):
        RunConfig().with_overrides({"train.precision": "fp8"})
    with pytest.raises(ConfigError, match=r"'train.epochs' expects a number, got True"):
        RunConfig.from_dict({"train": {"epochs": True}})


def test_an_unquoted_prompt_read_as_a_mapping_says_how_to_quote_it():
    # the shell drops the trailing space of `-p train.task_prompt=task: `, and YAML reads "task:" as {task: null}
    with pytest.raises(ConfigError, match=r"expects a string or null, got \{'task': None\} \(dict\); YAML reads a "
                                          r"value ending in ': ' as a mapping, so quote it: "
                                          r"-p \"train.task_prompt='task: '\""):
        RunConfig().with_overrides(["train.task_prompt=task:"])
    assert RunConfig().with_overrides(["train.task_prompt='task: '"]).train.task_prompt == "task: "
    with pytest.raises(ConfigError) as refused:  # a mapping that is not a stray colon gets no such hint
        RunConfig().with_overrides(["train.task_prompt={a: 1}"])
    assert "quote it" not in str(refused.value)


def test_a_union_says_null_only_where_null_is_allowed():
    from typing import Literal, Optional, Union

    from sttune_helpers.config.coercion import _type_name

    with pytest.raises(ConfigError, match=r"'train.validation_corpus_size' expects an integer or one of 'auto' or "
                                          r"null, got 'many'"):
        RunConfig().with_overrides(["train.validation_corpus_size=many"])
    assert _type_name(Union[bool, Literal["auto"]]) == "true or false or one of 'auto'"
    assert _type_name(Optional[int]) == "an integer or null"


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "unknown.yaml").write_text("train:\n  epochz: 2\n")
    with pytest.raises(ConfigError, match=r"unknown.yaml: unknown config key 'train.epochz'"):
        load_config(tmp_path / "unknown.yaml")
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        resolve_config("nope")


def test_malformed_override():
    with pytest.raises(ConfigError, match="must look like key=value"):
        RunConfig().with_overrides(["train.learning_rate"])


def test_budget_parses_hours_minutes_seconds_strictly():
    from sttune_helpers.config import parse_budget
    from sttune_helpers.core.errors import SettingError

    assert parse_budget("20m") == 1200
    assert parse_budget("90s") == 90
    assert parse_budget("1h30m") == 5400
    assert parse_budget("1h5m30s") == 3930
    for bad in ["20", "1.5h", "20 min", "20M", "30m1h", "m", "", " 20m", "0s", "0h0m", 20, None]:
        with pytest.raises(SettingError, match=r"train\.budget .*\"20m\"") as caught:
            parse_budget(bad)
        assert repr(bad) in str(caught.value)


def test_auto_preset_is_the_default_with_a_budget():
    auto, default = load_preset("auto"), load_preset("default")
    assert auto.train.budget == "20m" and default.train.budget is None
    auto.train.budget = None
    assert auto == default
    # A bad budget fails when the config is read, naming the key and the form (a bare number too).
    from sttune_helpers.core.errors import SettingError

    for bad in ["20 minutes", 90]:
        with pytest.raises(SettingError, match=r"train\.budget must be .*\"1h30m\""):
            RunConfig().with_overrides({"train.budget": bad})
    assert RunConfig().with_overrides(["train.budget=1h30m"]).train.budget == "1h30m"
