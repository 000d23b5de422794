"""train.task_prompt and train.general_anchor on a tiny model: the anchor loss wrapper (zero drift at
the base, a pull back towards it after a change, unprompted texts), a run that trains behind the
prompt (the saved model encodes with it by default; the reference is scored without it) and the
settings refused up front."""

import json

import numpy as np
import pytest
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.config import RunConfig
from sttune_helpers.config.coercion import ConfigError
from sttune_helpers.training import train_model

PROMPT = "task: "
TEXTS = ["a cat sat on the mat", "trains run on rails", "it rained all day", "coffee is bitter"]
OTHERS = ["a cat lay on a rug", "the train was late", "sunshine all week", "tea is mild"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def base_vectors(model, texts):
    return model.encode(texts, convert_to_numpy=True, prompt="")


def test_the_anchor_adds_nothing_at_the_base_and_pulls_back_after_a_change(tiny_folder):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from sttune_helpers.losses.general_anchor import AnchorDraws, GeneralAnchorLoss, with_general_anchor

    model = SentenceTransformer(tiny_folder, device="cpu")
    model.eval()
    draws = AnchorDraws(TEXTS + OTHERS, seed=0)
    anchors = base_vectors(model, draws.texts)
    task = CoSENTLoss(model)
    wrapped = with_general_anchor(task, 2.0, draws, anchors)
    assert isinstance(wrapped, GeneralAnchorLoss) and wrapped.model is model and wrapped.loss is task
    assert with_general_anchor(task, None, None, None) is task
    assert with_general_anchor(task, 0.0, None, None) is task
    features = [model.preprocess(TEXTS), model.preprocess(OTHERS)]
    labels = torch.tensor([0.9, 0.6, 0.1, 0.3])
    with torch.no_grad():
        assert float(wrapped.drift()) == pytest.approx(0.0, abs=1e-5)
        assert float(wrapped(features, labels)) == pytest.approx(float(task(features, labels)), abs=1e-4)
        torch.manual_seed(0)
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        assert float(wrapped.drift()) > 1e-3
    wrapped.drift().backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())
    assert wrapped.get_config_dict()["general_anchor"] == 2.0


def test_every_k_batches_the_anchor_adds_k_times_its_term_and_nothing_between(tiny_folder):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from sttune_helpers.losses.general_anchor import AnchorDraws, GeneralAnchorLoss

    model = SentenceTransformer(tiny_folder, device="cpu")
    model.eval()
    texts = TEXTS + OTHERS
    # a window of every text each batch, so that each anchored batch's drift is the same
    draws = AnchorDraws(texts, seed=0, texts_per_step=len(texts), lengths=list(range(len(texts))))
    anchors = base_vectors(model, draws.texts)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    task = CoSENTLoss(model)
    wrapped = GeneralAnchorLoss(task, draws, anchors, 2.0, every=3)
    features = [model.preprocess(TEXTS), model.preprocess(OTHERS)]
    labels = torch.tensor([0.9, 0.6, 0.1, 0.3])
    bare = float(task(features, labels))
    with torch.no_grad():
        drift = float(wrapped.drift())
    assert drift > 1e-3
    added = [float(wrapped(features, labels)) - bare for _ in range(7)]  # training batches (gradients on)
    assert added == pytest.approx([3 * 2.0 * drift, 0, 0] * 2 + [3 * 2.0 * drift], abs=1e-4)
    # an evaluation pass (no gradients) scores the term at its average weight and counts no batch
    with torch.no_grad():
        assert float(wrapped(features, labels)) - bare == pytest.approx(2.0 * drift, abs=1e-4)
    assert float(wrapped(features, labels)) - bare == pytest.approx(0.0, abs=1e-4)  # the 8th batch
    assert wrapped.get_config_dict()["every"] == 3
    with pytest.raises(ValueError, match="every"):
        GeneralAnchorLoss(task, draws, anchors, 2.0, every=0)


def test_a_resumed_run_draws_and_anchors_as_the_uninterrupted_one(tiny_folder):
    """A run resumed from a checkpoint after 7 batches goes on with the 8th batch's draw and cadence."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from sttune_helpers.losses.general_anchor import AnchorDraws, GeneralAnchorLoss

    model = SentenceTransformer(tiny_folder, device="cpu")
    texts = TEXTS + OTHERS
    draws = AnchorDraws(texts, seed=5, texts_per_step=2, lengths=[len(t) for t in texts], draws=6)
    anchors = base_vectors(model, draws.texts)

    def anchor():
        return GeneralAnchorLoss(CoSENTLoss(model), draws, anchors, 1.0, every=2)

    def batches(loss, n):  # what forward does on a training batch, without the model's passes
        rows = []
        for _ in range(n):
            anchored, loss.batches = loss.batches % loss.every == 0, loss.batches + 1
            rows.append(loss.draw().tolist() if anchored else None)
        return rows

    uninterrupted = batches(anchor(), 12)
    resumed = anchor()
    resumed.resume_at(7)
    assert batches(resumed, 5) == uninterrupted[7:]
    assert batches(anchor(), 5) != uninterrupted[7:]  # without it the draws start over


def test_the_draws_are_fixed_up_front_and_only_the_texts_drawn_need_a_base_embedding(tiny_folder):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from sttune_helpers.losses.general_anchor import AnchorDraws, GeneralAnchorLoss

    texts = [f"text number {i} " + "word " * (i % 7) for i in range(60)]
    lengths = [len(t.split()) for t in texts]
    draws = AnchorDraws(texts, seed=1, texts_per_step=3, lengths=lengths, draws=4)
    assert len(draws) == 4 and draws.pool_size == 60 and len(set(draws.texts)) == len(draws.texts)
    assert 3 <= len(draws.texts) <= 12  # 4 windows of 3: the base model encodes these, not all 60
    assert draws.texts == AnchorDraws(texts, seed=1, texts_per_step=3, lengths=lengths, draws=4).texts
    assert draws.texts != AnchorDraws(texts, seed=2, texts_per_step=3, lengths=lengths, draws=4).texts
    # a longer plan starts with the same draws
    longer = AnchorDraws(texts, seed=1, texts_per_step=3, lengths=lengths, draws=9)
    assert [[longer.texts[i] for i in longer.rows[d].tolist()] for d in range(4)] == \
        [[draws.texts[i] for i in draws.rows[d].tolist()] for d in range(4)]
    model = SentenceTransformer(tiny_folder, device="cpu")
    anchors = base_vectors(model, draws.texts)
    loss = GeneralAnchorLoss(CoSENTLoss(model), draws, anchors, 1.0)
    drawn = [[loss.texts[i] for i in loss.draw().tolist()] for _ in range(6)]
    assert drawn[4:] == drawn[:2]  # a run longer than planned draws the schedule again
    assert all(len(set(lengths[texts.index(t)] for t in step)) <= 2 for step in drawn)  # neighbours in length
    with pytest.raises(ValueError, match="one base embedding per text drawn"):
        GeneralAnchorLoss(CoSENTLoss(model), draws, anchors[:-1], 1.0)


def test_the_anchor_encodes_its_texts_without_the_models_default_prompt(tiny_folder):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from sttune_helpers.losses.general_anchor import AnchorDraws, GeneralAnchorLoss
    from sttune_helpers.modeling import with_task_prompt

    model = SentenceTransformer(tiny_folder, device="cpu")
    model.eval()
    draws = AnchorDraws(TEXTS, seed=0)
    anchors = base_vectors(model, draws.texts)
    with_task_prompt(model, PROMPT)
    # encode() now applies the prompt, so it moves the embeddings; the anchor's own encoding does not.
    prompted = model.encode(draws.texts, convert_to_numpy=True)
    assert not np.allclose(prompted, anchors, atol=1e-4)
    wrapped = GeneralAnchorLoss(CoSENTLoss(model), draws, anchors, 1.0)
    with torch.no_grad():
        assert float(wrapped.drift()) == pytest.approx(0.0, abs=1e-5)


def test_with_lengths_a_steps_texts_are_length_neighbours_and_every_text_is_drawn(tiny_folder):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CoSENTLoss

    from sttune_helpers.losses.general_anchor import AnchorDraws, GeneralAnchorLoss

    model = SentenceTransformer(tiny_folder, device="cpu")
    model.eval()
    texts = TEXTS + OTHERS
    lengths = [len(t.split()) * 10 + i for i, t in enumerate(texts)]  # distinct, so the order is unique
    draws = AnchorDraws(texts, seed=3, texts_per_step=3, lengths=lengths, draws=40)
    anchors = base_vectors(model, draws.texts)
    wrapped = GeneralAnchorLoss(CoSENTLoss(model), draws, anchors, 1.0)
    rank = {t: r for r, t in enumerate(sorted(texts, key=lambda t: lengths[texts.index(t)]))}
    drawn, seen = [], set()
    preprocess = model.preprocess
    model.preprocess = lambda batch: drawn.append(list(batch)) or preprocess(batch)
    with torch.no_grad():
        for _ in range(40):
            # the anchors were reordered with the texts: at the base every draw is still 0
            assert float(wrapped.drift()) == pytest.approx(0.0, abs=1e-5)
    for batch in drawn:
        ranks = [rank[t] for t in batch]
        assert all((b - a) % len(texts) == 1 for a, b in zip(ranks, ranks[1:])), ranks  # a window, wrapping
        seen.update(batch)
    assert seen == set(texts)
    assert wrapped.get_config_dict()["length_grouped"] is True
    with pytest.raises(ValueError, match="one length per text"):
        AnchorDraws(texts, seed=0, lengths=lengths[:-1])


def test_a_run_behind_a_task_prompt_keeps_it_in_the_model_and_anchors_the_unprompted_one(tmp_path, tiny_folder,
                                                                                         caplog):
    import logging

    from sentence_transformers import SentenceTransformer

    from sttune_helpers.scoring.reference import GENERAL_USE

    # A loss named in the config other than CoSENT (the anchor's own recommendation): training warns.
    common = ["train.learning_rate=1e-3", "train.warmup_ratio=0", "train.max_steps=6", "loss.name=CosineSimilarityLoss",
              "train.early_stopping_patience=null", "train.restore_best=never"]
    probe = ["a man is playing a guitar", "the stock market fell sharply", "two dogs run through the snow"]
    base = SentenceTransformer(tiny_folder, device="cpu")
    base_unprompted = base.encode(probe, convert_to_numpy=True, normalize_embeddings=True)
    drifts = {}
    for name, extra in (("prompted", [f"train.task_prompt='{PROMPT}'"]),
                        ("anchored", [f"train.task_prompt='{PROMPT}'", "train.general_anchor=100",
                                      "train.general_anchor_texts=3", "train.general_anchor_every=2"])):
        run, config = prepare_tiny_run(tmp_path, tiny_folder, [*common, *extra], name=name)
        with caplog.at_level(logging.INFO):
            summary = train_model(run, config)
        assert json.loads(run.plan_path.read_text())["loss"]["name"] == "CosineSimilarityLoss"
        # the weight was measured with CoSENTLoss: another loss's scale gets a warning that names both
        warned = any("train.general_anchor=100" in r.getMessage() and "CosineSimilarityLoss" in r.getMessage()
                     for r in caplog.records)
        assert warned == (name == "anchored")
        said = any("over 3 of" in r.getMessage() and "every 2 steps, at 2 x the weight" in r.getMessage()
                   for r in caplog.records)
        assert said == (name == "anchored")
        caplog.clear()
        regularisation = summary["regularisation"]
        assert regularisation["task_prompt"] == PROMPT
        assert regularisation["general_anchor"] == (100.0 if name == "anchored" else None)
        assert (regularisation["anchor_texts"] > 0) == (name == "anchored")
        # 6 steps, every second anchored: 3 windows of 3 texts, the only ones the base model encoded
        assert (0 < regularisation["anchor_texts_drawn"] <= 9) == (name == "anchored")
        assert regularisation["anchor_texts_drawn"] <= regularisation["anchor_texts"]
        assert regularisation["anchor_draws_by_length"] == (name == "anchored")  # training passes the lengths
        assert regularisation["anchor_texts_per_step"] == (3 if name == "anchored" else None)
        assert regularisation["anchor_every"] == (2 if name == "anchored" else None)
        saved_config = json.loads((run.model_dir / "config_sentence_transformers.json").read_text())
        assert saved_config["prompts"]["task"] == PROMPT and saved_config["default_prompt_name"] == "task"
        trained = SentenceTransformer(str(run.model_dir), device="cpu")
        assert np.allclose(trained.encode(probe, convert_to_numpy=True),
                           trained.encode(probe, convert_to_numpy=True, prompt=PROMPT), atol=1e-6)
        unprompted = trained.encode(probe, convert_to_numpy=True, normalize_embeddings=True, prompt=GENERAL_USE)
        drifts[name] = float(np.mean(1 - np.sum(unprompted * base_unprompted, axis=1)))
    assert drifts["prompted"] > 0
    assert drifts["anchored"] < 0.5 * drifts["prompted"], drifts


def test_reference_parts_are_encoded_without_the_prompt_and_cached_apart(tmp_path, tiny_folder):
    import pandas as pd
    from sentence_transformers import SentenceTransformer

    from sttune_helpers.core.statistics import Bootstrap
    from sttune_helpers.modeling import with_task_prompt
    from sttune_helpers.scoring.embedding_cache import for_model
    from sttune_helpers.scoring.models import score_model
    from sttune_helpers.scoring.taskset import TaskSet

    model = with_task_prompt(SentenceTransformer(tiny_folder, device="cpu"), PROMPT)
    items = pd.DataFrame({"sentence1": TEXTS, "sentence2": OTHERS, "score": [0.9, 0.6, 0.1, 0.3]})
    boot = Bootstrap.draw(len(items), 10, 0.95, 0)
    cache = for_model(tmp_path / "cache", model, "fp32", 8)
    task = score_model(TaskSet("pair_score", "test", items), model, boot, batch_size=8, cache=cache)
    entries = len(list((tmp_path / "cache").glob("*/*.npy")))
    general = score_model(TaskSet("pair_score", "stsb-report", items, prompt=""), model, boot, batch_size=8,
                          cache=cache)
    unprompted = base_vectors(SentenceTransformer(tiny_folder, device="cpu"), TEXTS + OTHERS)
    unprompted /= np.linalg.norm(unprompted, axis=1, keepdims=True)
    by_text = dict(zip(general.sentences, general.embeddings))
    assert np.allclose([by_text[t] for t in TEXTS + OTHERS], unprompted, atol=1e-5)
    assert not np.allclose(task.embeddings, general.embeddings, atol=1e-4)
    # the same texts without the prompt are entries of their own, not the prompted ones read back
    assert entries > 0 and len(list((tmp_path / "cache").glob("*/*.npy"))) == 2 * entries
    again = score_model(TaskSet("pair_score", "stsb-report", items, prompt=""), model, boot, batch_size=8, cache=cache)
    assert np.allclose(again.embeddings, general.embeddings)
    # A model without a default prompt: prompt="" is its plain encode, and reads the same entries.
    plain = SentenceTransformer(tiny_folder, device="cpu")
    plain_cache = for_model(tmp_path / "plain", plain, "fp32", 8)
    score_model(TaskSet("pair_score", "test", items), plain, boot, batch_size=8, cache=plain_cache)
    written = sorted((tmp_path / "plain").glob("*/*.npy"))
    score_model(TaskSet("pair_score", "stsb-report", items, prompt=""), plain, boot, batch_size=8, cache=plain_cache)
    assert written and sorted((tmp_path / "plain").glob("*/*.npy")) == written


@pytest.mark.parametrize("overrides, key", [
    (["train.general_anchor=10"], "train.general_anchor"),
    (["train.task_prompt='  '"], "train.task_prompt"),
    (["train.general_anchor=-1", f"train.task_prompt='{PROMPT}'"], "train.general_anchor"),
    (["train.general_anchor_texts=0"], "train.general_anchor_texts"),
    (["train.general_anchor_every=0"], "train.general_anchor_every"),
])
def test_settings_the_anchor_cannot_work_with_are_refused_up_front(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        RunConfig().with_overrides(overrides)


def test_a_task_prompt_is_refused_for_data_scored_on_the_reference():
    from sttune_helpers.core.errors import SettingError
    from sttune_helpers.training.train import check_task_prompt_shape

    config = RunConfig().with_overrides([f"train.task_prompt='{PROMPT}'"])
    with pytest.raises(SettingError, match=r"train\.task_prompt: unlabeled"):
        check_task_prompt_shape(config, "unlabeled")
    check_task_prompt_shape(config, "pair_score")


def test_an_anchor_without_a_prompt_says_the_shape_recipe_fills_its_prompt_too_late():
    with pytest.raises(ConfigError, match="stage 02") as refused:
        RunConfig().with_overrides(["train.general_anchor=5"])
    assert "train.task_prompt" in str(refused.value)
    with pytest.raises(ConfigError) as without_recipe:
        RunConfig().with_overrides(["train.shape_recipe=false", "train.general_anchor=5"])
    assert "train.task_prompt" in str(without_recipe.value) and "stage 02" not in str(without_recipe.value)
