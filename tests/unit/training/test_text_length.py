"""train.max_seq_length: the training steps see texts cut shorter; validation and the saved model
keep the model's own max_seq_length."""

from __future__ import annotations

import pytest
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.modeling import load_model
from sttune_helpers.training import train_model
from sttune_helpers.training.errors import TrainingError


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def long_pairs(folder):
    rows = [f"{' '.join(f'first{i}x{j}' for j in range(40))},{' '.join(f'second{i}x{j}' for j in range(40))},{i % 6}"
            for i in range(60)]
    source = folder / "long.csv"
    source.write_text("sentence1,sentence2,score\n" + "\n".join(rows) + "\n")
    return source


@pytest.mark.parametrize("cut, batch_tokens", [(16, 16), (None, 64)])
def test_training_steps_see_texts_cut_at_train_max_seq_length(tmp_path, tiny_folder, cut, batch_tokens):
    from transformers import TrainerCallback

    seen, validation_lengths = [], []

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            batch = next(iter(train_dataloader))
            seen.extend(v.shape[1] for k, v in batch.items() if k.endswith("_input_ids"))

        def on_evaluate(self, args, state, control, model=None, **kwargs):
            validation_lengths.append(model.max_seq_length)

    overrides = [f"data.source={long_pairs(tmp_path)}", "train.max_steps=2", "train.evaluations_per_epoch=1",
                 "train.early_stopping_patience=null"]
    if cut is not None:
        overrides.append(f"train.max_seq_length={cut}")
    run, config = prepare_tiny_run(tmp_path, tiny_folder, overrides)
    summary = train_model(run, config, callbacks=[Probe()])
    # every text has over 64 tokens: each column of a batch pads to the cut exactly
    assert seen == [batch_tokens, batch_tokens]
    assert summary["train_max_seq_length"] == cut
    train_texts = 2 * sum(1 for _ in (run.data_dir / "train.jsonl").open())
    assert summary["cut_by_train_max_seq_length"] == (train_texts if cut else 0)
    assert validation_lengths and set(validation_lengths) == {64}  # validation encodes at the model's 64
    assert load_model(str(run.model_dir), device="cpu").max_seq_length == 64  # the saved model encodes as before


@pytest.mark.parametrize("cut", [65, 0])
def test_a_cut_above_the_models_or_below_one_is_refused_before_training(tmp_path, tiny_folder, cut):
    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.max_steps=2"])
    config.train.max_seq_length = cut  # edited in code: the YAML path checks the range itself
    with pytest.raises(TrainingError if cut == 65 else Exception, match="train.max_seq_length") as error:
        train_model(run, config)
    assert not (run.root / "training.json").exists()
    if cut == 65:
        assert "above the model's max_seq_length (64)" in str(error.value)
