"""The checkpoint-save timer on the tiny model: training.json's "timing" has a save time for each
checkpoint the trainer wrote."""

import pytest
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.core.io import read_json
from sttune_helpers.training import train_model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def test_each_checkpoint_save_is_timed(tmp_path, tiny_folder):
    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.max_steps=4", "train.evaluations_per_epoch=2",
                                                       "train.early_stopping_patience=null",
                                                       "train.collapse_threshold=null"])
    summary = train_model(run, config)
    timing = read_json(run.training_summary_path)["timing"]
    assert timing == summary["timing"]
    saved_steps = sorted(e["step"] for e in summary["log_history"] if "eval_runtime" in e)
    assert [s["step"] for s in timing["checkpoint_saves"]] == saved_steps == [2, 4]
    assert all(s["seconds"] >= 0 for s in timing["checkpoint_saves"])
    assert timing["checkpoint_save_seconds"] == pytest.approx(sum(s["seconds"] for s in timing["checkpoint_saves"]),
                                                              abs=1e-3)
    assert 0 < timing["checkpoint_save_seconds"] < summary["train_seconds"]
