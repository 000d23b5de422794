"""Every registered task shape is complete and consistent: what the data, loss, training and evaluation
code ask of it is there, and the config accepts exactly the registered shapes."""

import typing

import pytest

from sttune_helpers import shapes
from sttune_helpers.config import DataConfig, RunConfig
from sttune_helpers.losses import loss_class


@pytest.mark.parametrize("name", shapes.SHAPES)
def test_each_shape_is_complete(name):
    shape = shapes.get(name)
    assert shape.name == name and shape.columns
    assert set(shape.text_columns) | ({shape.label_column} - {None}) == set(shape.columns)
    assert set(shape.group_columns) <= set(shape.text_columns)
    assert shape.losses and shape.default_loss is shape.losses[0]
    for choice in shape.losses:
        assert loss_class(choice.name) is not None and choice.reason
    assert shape.metrics and shape.primary_metric == shape.metrics[0]
    assert shape.validation_metric == "loss" or shape.validation_metric in shape.metrics
    assert shape.item_score_meaning and shape.item_error_meaning


def test_the_config_accepts_exactly_the_registered_shapes():
    allowed = typing.get_args(typing.get_type_hints(DataConfig)["shape"])
    assert allowed == ("auto", *shapes.SHAPES)
    assert RunConfig().with_overrides(["data.shape=triplet"]).data.shape == "triplet"


def test_an_unknown_shape_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown task shape 'quadruplet'; the shapes are: pair_score, "):
        shapes.get("quadruplet")
