"""The regularisers that keep a fine-tuned model near its base, on a tiny model: L2-SP (the loss
wrapper and its pull towards the base) and LoRA (adapters only train, the saved model is a plain one
with the base's keys, checkpoints resume), and the settings they refuse."""

import json

import pytest
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.core.errors import SettingError
from sttune_helpers.training import train_model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def plain_state(folder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return {k: v.detach().float().clone() for k, v in model.state_dict().items()}


def squared_distance(a, b):
    return sum(float(((a[k] - b[k]) ** 2).sum()) for k in a if a[k].is_floating_point())


def pair_batch(model):
    import torch

    texts = ["a cat sat on the mat", "trains run on rails", "it rained all day", "coffee is bitter"]
    others = ["a cat lay on a rug", "the train was late", "sunshine all week", "tea is mild"]
    features = [model.preprocess(texts), model.preprocess(others)]
    return features, torch.tensor([0.9, 0.6, 0.1, 0.3])


# --- L2-SP ----------------------------------------------------------------------------------------

def test_l2sp_loss_is_the_task_loss_at_the_start_and_adds_weight_times_the_squared_distance(tiny_folder):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from sttune_helpers.losses.regularised import L2SPLoss, with_l2sp

    model = SentenceTransformer(tiny_folder, device="cpu")
    model.eval()  # no dropout: the task loss is the same on every call
    task = CoSENTLoss(model)
    wrapped = with_l2sp(task, 0.5)
    assert isinstance(wrapped, L2SPLoss) and wrapped.model is model and wrapped.loss is task
    assert with_l2sp(task, None) is task and with_l2sp(task, 0.0) is task
    # The trainer's attribute lookups reach the task loss through modules().
    assert any(module is task for module in wrapped.modules())
    features, labels = pair_batch(model)
    with torch.no_grad():
        assert float(wrapped(features, labels)) == pytest.approx(float(task(features, labels)), abs=1e-6)
        assert float(wrapped.penalty()) == 0.0
        torch.manual_seed(0)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
        moved = squared_distance({k: v.float() for k, v in model.state_dict().items()}, start)
        assert moved > 0
        task_value, total = float(task(features, labels)), float(wrapped(features, labels))
    assert total - task_value == pytest.approx(0.5 * moved, rel=1e-4)
    # The penalty has gradients towards the anchors: 2 x weight x (theta - theta0).
    wrapped(features, labels).backward()
    parameter = next(model.parameters())
    assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0
    config = wrapped.get_config_dict()
    assert config["l2sp_weight"] == 0.5 and config["loss"] is task


def test_a_large_l2sp_weight_keeps_the_trained_weights_near_the_base(tmp_path, tiny_folder):
    base = plain_state(tiny_folder)
    common = ["train.learning_rate=1e-3", "train.warmup_ratio=0", "train.max_steps=6",
              "train.early_stopping_patience=null", "train.restore_best=never", "train.weight_decay=0"]
    distances = {}
    for name, extra in (("plain", []), ("l2sp", ["train.l2sp_weight=1000"])):
        run, config = prepare_tiny_run(tmp_path, tiny_folder, [*common, *extra], name=name)
        summary = train_model(run, config)
        regularisation = summary["regularisation"]
        assert regularisation["l2sp_weight"] == (1000.0 if extra else None) and regularisation["lora"] is None
        assert regularisation["trainable_parameters"] == regularisation["total_parameters"] > 0
        assert json.loads(run.training_summary_path.read_text())["regularisation"] == regularisation
        distances[name] = squared_distance(plain_state(run.model_dir), base)
    assert distances["plain"] > 0
    assert distances["l2sp"] < 0.25 * distances["plain"], distances


# --- LoRA -----------------------------------------------------------------------------------------

def test_lora_trains_only_the_adapters_and_saves_a_plain_model_with_the_base_keys(tmp_path, tiny_folder):
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    seen = []

    class Trainable(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen.append(sorted(n for n, p in model.named_parameters() if p.requires_grad))

    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.lora_rank=4", "train.learning_rate=2e-3",
                                                       "train.warmup_ratio=0", "train.max_steps=4",
                                                       "train.evaluations_per_epoch=2",
                                                       "train.early_stopping_patience=null"])
    summary = train_model(run, config, callbacks=[Trainable()])
    regularisation = summary["regularisation"]
    assert regularisation["lora"] == {"rank": 4, "alpha": 8.0, "dropout": 0.0, "adapted_layers": 6,
                                      "target_modules": regularisation["lora"]["target_modules"]}
    assert "intermediate" in regularisation["lora"]["target_modules"]
    assert 0 < regularisation["trainable_parameters"] < 0.1 * regularisation["total_parameters"]
    assert seen and all(names and all(".lora_" in n for n in names) for names in seen)

    base = plain_state(tiny_folder)
    saved = plain_state(run.model_dir)  # loads as a plain SentenceTransformer
    assert list(saved) == list(base)
    assert all(saved[k].shape == base[k].shape for k in base)
    assert not any("lora" in k or "base_layer" in k for k in load_file(run.model_dir / "model.safetensors"))
    changed = [k for k in base if not (saved[k] == base[k]).all()]
    assert changed and all("encoder.layer" in k and k.endswith(".weight") for k in changed)
    # Checkpoints are plain models too, with the adapters beside them.
    checkpoint = run.checkpoints_dir / "checkpoint-4"
    assert list(plain_state(checkpoint)) == list(base) and (checkpoint / "lora_adapter.safetensors").is_file()
    assert squared_distance(plain_state(checkpoint), saved) == pytest.approx(0, abs=1e-10)


def test_lora_training_resumes_from_a_checkpoint(tmp_path, tiny_folder):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    overrides = ["train.lora_rank=2", "train.lora_alpha=4", "train.lora_dropout=0.1", "train.learning_rate=2e-3",
                 "train.max_steps=4", "train.evaluations_per_epoch=2", "train.early_stopping_patience=null",
                 "train.restore_best=never"]
    run, config = prepare_tiny_run(tmp_path, tiny_folder, overrides)
    with pytest.raises(KeyboardInterrupt):
        train_model(run, config, callbacks=[Interrupt()])
    summary = train_model(run, config, resume=True)
    assert summary["resumed_from_step"] == 2 and summary["global_step"] == 4
    assert [e["step"] for e in summary["log_history"] if "loss" in e] == [1, 2, 3, 4]
    assert summary["regularisation"]["lora"]["alpha"] == 4.0
    # The same run without the interruption ends with the same weights: the adapters (seeded at their
    # initialisation) were restored, dropout masks and all.
    straight_run, straight_config = prepare_tiny_run(tmp_path, tiny_folder, overrides, name="straight")
    train_model(straight_run, straight_config)
    assert squared_distance(plain_state(run.model_dir), plain_state(straight_run.model_dir)) < 1e-8


def test_lora_and_l2sp_together_anchor_the_adapters(tmp_path, tiny_folder):
    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.lora_rank=2", "train.l2sp_weight=0.1",
                                                       "train.max_steps=2", "train.early_stopping_patience=null"])
    summary = train_model(run, config)
    assert summary["regularisation"]["l2sp_weight"] == 0.1 and summary["regularisation"]["lora"]["rank"] == 2


def test_lora_falls_back_to_all_linear_layers_for_other_architectures():
    import torch

    from sttune_helpers.training.lora import BERT_TARGETS, target_modules

    other = torch.nn.Sequential(torch.nn.Linear(4, 4))
    assert target_modules(other) == "all-linear"
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16))
    assert target_modules(bert) == BERT_TARGETS


# --- refused settings -----------------------------------------------------------------------------

@pytest.mark.parametrize("override, key", [
    ("train.l2sp_weight=-0.1", "train.l2sp_weight"),
    ("train.l2sp_weight=.inf", "train.l2sp_weight"),
    ("train.l2sp_weight=.nan", "train.l2sp_weight"),
    ("train.lora_rank=0", "train.lora_rank"),
    ("train.lora_alpha=0", "train.lora_alpha"),
    ("train.lora_alpha=-2", "train.lora_alpha"),
    ("train.lora_dropout=1.0", "train.lora_dropout"),
    ("train.lora_dropout=-0.1", "train.lora_dropout"),
])
def test_bad_regularisation_settings_are_refused_naming_the_key(tmp_path, override, key):
    import yaml

    from sttune_helpers.config import ConfigError, load_preset
    from sttune_helpers.rundir import RunDir

    # Refused when the config is built from overrides (config/ranges.py)...
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ": .* is out of range"):
        load_preset("smoke").with_overrides(["train.lora_rank=4", override])
    # ...and, for a config edited in code, by training before any data or model is read.
    config = load_preset("smoke").with_overrides(["train.lora_rank=4"])
    setattr(config.train, key.split(".")[1], yaml.safe_load(override.split("=", 1)[1]))
    with pytest.raises(SettingError, match=key.replace(".", r"\.")):
        train_model(RunDir(tmp_path / "run"), config)


def test_lora_suggests_a_higher_learning_rate(tiny_folder, caplog):
    import logging

    from sentence_transformers import SentenceTransformer

    from sttune_helpers.config import load_preset
    from sttune_helpers.training.lora import add_lora

    config = load_preset("smoke").with_overrides(["train.lora_rank=4", "train.learning_rate=2e-5"])
    with caplog.at_level(logging.INFO):
        add_lora(SentenceTransformer(tiny_folder, device="cpu"), config.train, seed=0)
    assert "2e-04" in caplog.text or "0.0002" in caplog.text
    assert config.train.learning_rate == 2e-5  # suggested, not changed
