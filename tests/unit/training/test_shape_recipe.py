"""train.shape_recipe: a shape's measured recipe fills the settings a config leaves at their defaults,
and nothing the user set, searched or turned off."""

from __future__ import annotations

import pytest
from conftest import REPO
from helpers.tiny_model import build_tiny_model_folder, prepared_run

from sttune_helpers import shapes
from sttune_helpers.config import RunConfig
from sttune_helpers.rundir import RunDir
from sttune_helpers.training.shape_recipe import apply_shape_recipe, describe, fill_shape_recipe

BINARY = shapes.get("pair_binary").recipe.settings


def test_pair_binary_recipe_fills_the_defaults():
    config = RunConfig()
    recipe = fill_shape_recipe(config, "pair_binary")
    assert recipe["filled"] == BINARY == {"train.task_prompt": "task: ", "train.general_anchor": 10.0,
                                          "train.general_anchor_texts": 8, "train.general_anchor_every": 2,
                                          "train.learning_rate": 8e-5, "train.batch_size": 32}
    assert recipe["kept"] == {} and recipe["in_force"] == {}
    assert (config.train.task_prompt, config.train.general_anchor, config.train.general_anchor_texts,
            config.train.general_anchor_every, config.train.learning_rate,
            config.train.batch_size) == ("task: ", 10.0, 8, 2, 8e-5, 32)
    assert "train.shape_recipe=false" in describe(recipe)


def test_settings_the_user_changed_or_a_sweep_searches_are_kept():
    config = RunConfig().with_overrides(["train.learning_rate=3e-5", "train.general_anchor=0",
                                         "train.general_anchor_texts=4", "train.batch_size=8"])
    config.sweep.space = {"train.task_prompt": {"choices": ["q: ", "task: "]}}
    recipe = fill_shape_recipe(config, "pair_binary")
    assert recipe["filled"] == {"train.general_anchor_every": 2}  # left at its default (with the anchor off: no effect)
    assert recipe["kept"] == {"train.general_anchor": 0, "train.general_anchor_texts": 4, "train.learning_rate": 3e-5,
                              "train.batch_size": 8}
    assert recipe["searched"] == {"train.task_prompt": None}
    assert (config.train.task_prompt, config.train.general_anchor, config.train.learning_rate,
            config.train.batch_size) == (None, 0, 3e-5, 8)
    assert "kept from the config: train.general_anchor=0.0, train.general_anchor_texts=4, train.learning_rate=3e-05, " \
           "train.batch_size=8; left to the search: " \
           "train.task_prompt." in describe(recipe)


def test_the_automatic_recipe_chooses_the_rate_and_batch_size_itself():
    config = RunConfig().with_overrides(["train.budget=10m"])
    recipe = fill_shape_recipe(config, "pair_binary")
    assert recipe["filled"] == {"train.task_prompt": "task: ", "train.general_anchor": 10.0,
                                "train.general_anchor_texts": 8, "train.general_anchor_every": 2}
    assert recipe["searched"] == {"train.learning_rate": RunConfig().train.learning_rate,
                                  "train.batch_size": RunConfig().train.batch_size}
    assert (config.train.learning_rate, config.train.batch_size) == (RunConfig().train.learning_rate,
                                                                     RunConfig().train.batch_size)


@pytest.mark.parametrize("loss", ["OnlineContrastiveLoss", "CoSENTLoss"])
def test_a_named_loss_the_recipe_was_measured_with_gets_it(loss):
    config = RunConfig().with_overrides([f"loss.name={loss}"])
    assert fill_shape_recipe(config, "pair_binary")["filled"] == BINARY


def test_a_named_loss_the_recipe_was_not_measured_with_keeps_the_config_as_given():
    config = RunConfig().with_overrides(["loss.name=ContrastiveLoss"])
    recipe = fill_shape_recipe(config, "pair_binary")
    assert config == RunConfig().with_overrides(["loss.name=ContrastiveLoss"])
    assert recipe["filled"] == recipe["in_force"] == {} and "loss.name=ContrastiveLoss" in recipe["skipped"]
    text = describe(recipe)
    assert text.startswith("the pair_binary recipe (train.task_prompt='task: '") and "is not applied" in text
    assert "OnlineContrastiveLoss and CoSENTLoss" in text


@pytest.mark.parametrize("shape, overrides", [("pair_binary", ["train.shape_recipe=false"]),
                                              ("pair_score", ["train.shape_recipe=false"]), ("triplet", []),
                                              ("retrieval", ["train.shape_recipe=false"])])
def test_no_recipe_leaves_the_config_as_given(shape, overrides):
    config = RunConfig().with_overrides(overrides)
    assert fill_shape_recipe(config, shape) is None
    assert config == RunConfig().with_overrides(overrides)


def test_the_run_config_takes_the_recipe_once(tmp_path):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.save_config(RunConfig())  # data.shape "auto", as written before data_prep detects it
    config = RunConfig().with_overrides(["data.shape=pair_binary"])
    first = apply_shape_recipe(run, config, "pair_binary")
    saved = run.load_config()
    assert first["filled"] == BINARY and saved.data.shape == "auto"
    assert (saved.train.task_prompt, saved.train.general_anchor, saved.train.learning_rate,
            saved.train.batch_size) == ("task: ", 10.0, 8e-5, 32)
    again = apply_shape_recipe(run, run.load_config(), "pair_binary")  # stage 02 run a second time
    assert again["filled"] == {} and again["in_force"] == BINARY and run.load_config() == saved


def test_stage_02_plans_with_the_recipe_and_says_so(tmp_path):
    # Planning loads no model: a folder name is enough.
    from sttune_helpers.losses import explain
    from sttune_helpers.stages import loss_selection

    source = REPO / "tests" / "data" / "mrpc-train-sample.tsv"
    run, config = prepared_run(tmp_path, "unused-model", [f"data.source={source}", "data.shape=auto",
                                                        "train.learning_rate=3e-5"])
    plan = loss_selection.plan(run, config)
    assert plan["recipe"]["filled"] == {"train.task_prompt": "task: ", "train.general_anchor": 10.0,
                                        "train.general_anchor_texts": 8, "train.general_anchor_every": 2}
    assert plan["recipe"]["kept"] == {"train.learning_rate": 3e-5, "train.batch_size": 8}  # prepared_run's batch
    assert plan["hyperparameters"]["general_anchor"] == 10.0 and plan["hyperparameters"]["learning_rate"] == 3e-5
    assert run.load_config().train.general_anchor == 10.0 and run.load_config().data.shape == "auto"
    assert "Settings: The pair_binary recipe: train.task_prompt='task: ', train.general_anchor=10.0, " \
           "train.general_anchor_texts=8, train.general_anchor_every=2; kept from the config: " \
           "train.learning_rate=3e-05, train.batch_size=8." in explain(plan)


def test_stage_02_says_why_a_named_loss_gets_no_recipe(tmp_path):
    from sttune_helpers.losses import explain
    from sttune_helpers.stages import loss_selection

    source = REPO / "tests" / "data" / "mrpc-train-sample.tsv"
    run, config = prepared_run(tmp_path, "unused-model", [f"data.source={source}", "data.shape=auto",
                                                        "loss.name=ContrastiveLoss"])
    plan = loss_selection.plan(run, config)
    assert plan["loss"]["name"] == "ContrastiveLoss" and plan["recipe"]["filled"] == {}
    assert "loss.name=ContrastiveLoss" in plan["recipe"]["skipped"]
    assert run.load_config().train.general_anchor is None and plan["hyperparameters"]["general_anchor"] is None
    assert "Settings: The pair_binary recipe (train.task_prompt='task: '" in explain(plan)


def test_retrieval_trains_without_attention_dropout_where_the_model_names_it(monkeypatch):
    from sttune_helpers.training import shape_recipe

    config = RunConfig()  # the packaged all-MiniLM-L6-v2: BERT's attention_probs_dropout_prob
    recipe = fill_shape_recipe(config, "retrieval")
    assert recipe["filled"] == {"model.attention_dropout": 0.0} and config.model.attention_dropout == 0.0
    # A model whose config names no attention dropout keeps its own, and the run says why.
    monkeypatch.setattr(shape_recipe, "has_attention_dropout", lambda name: False)
    config = RunConfig()
    recipe = fill_shape_recipe(config, "retrieval")
    assert recipe["filled"] == {} and config.model.attention_dropout is None
    assert "not model.attention_dropout: the model's config names no attention dropout" in describe(recipe)
    # A value the user set is kept.
    config = RunConfig().with_overrides(["model.attention_dropout=0.1"])
    assert fill_shape_recipe(config, "retrieval")["kept"] == {"model.attention_dropout": 0.1}


def test_retrieval_data_mined_into_triplets_keeps_its_recipe():
    # SciFact-like runs mine negatives: the train split is triplet, whose loss (MNRL) the recipe was measured with.
    config = RunConfig()
    recipe = fill_shape_recipe(config, "retrieval", train_shape="triplet", n_train=800)
    assert recipe["filled"] == {"model.attention_dropout": 0.0} and config.model.attention_dropout == 0.0


def test_pair_binary_data_mined_into_triplets_gets_no_recipe():
    # Its recipe was measured with pair losses; mined triplets train with MNRL.
    config = RunConfig()
    recipe = fill_shape_recipe(config, "pair_binary", train_shape="triplet", n_train=800)
    assert config == RunConfig() and recipe["filled"] == recipe["in_force"] == {}
    assert recipe["skipped"].startswith("the train split is triplet (the data stage made it so), whose loss is "
                                        "MultipleNegativesRankingLoss, and it was measured with OnlineContrastiveLoss")
    assert describe(recipe).endswith("It applies where the train split stays pair_binary "
                                     "(data.negatives.enabled=false).")


def test_stage_02_looks_the_recipe_up_by_the_data_shape(tmp_path):
    # scifact-mini with a stand-in for mined negatives: the report's train_shape is triplet.
    from sttune_helpers.core.io import atomic_write_json, read_json
    from sttune_helpers.stages import loss_selection

    source = REPO / "tests" / "data" / "scifact-mini"
    model = build_tiny_model_folder(tmp_path / "model")  # whose config names its attention dropout
    run, config = prepared_run(tmp_path, str(model), [f"data.source={source}", "data.shape=auto",
                                                          "data.negatives.enabled=false"])
    report = read_json(run.data_report_path)
    atomic_write_json(run.data_report_path, {**report, "train_shape": "triplet"})
    plan = loss_selection.plan(run, config)
    assert plan["train_shape"] == "triplet" and plan["loss"]["name"] == "MultipleNegativesRankingLoss"
    assert plan["recipe"]["shape"] == "retrieval" and plan["recipe"]["filled"] == {"model.attention_dropout": 0.0}
    assert run.load_config().model.attention_dropout == 0.0
