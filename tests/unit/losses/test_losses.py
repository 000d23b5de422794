"""Every registered loss builds on a model and takes a real training step on tiny data of its shape."""

import math

import pytest
from helpers.tiny_model import build_tiny_model_folder

from sttune_helpers import shapes
from sttune_helpers.config import load_preset
from sttune_helpers.losses import (
    LossChoice,
    LossError,
    build_loss,
    choose_loss,
    explain,
    fit_columns,
    loss_choices,
    loss_shape,
    recommend,
    temperature_params,
    write_plan,
)
from sttune_helpers.rundir import RunDir
from sttune_helpers.shapes.unlabeled import tsdae_noise

TOPICS = ["cats", "trains", "rain", "coffee", "chess", "tides", "bread", "violins"]


def rows(shape):
    """Eight rows of ``shape`` as the data stage writes them."""
    if shape == "pair_score":
        return {"sentence1": [f"a note about {t}" for t in TOPICS], "sentence2": [f"something on {t}" for t in TOPICS],
                "score": [i / 7 for i in range(8)]}
    if shape == "pair_binary":
        # Negatives are identical texts and positives different topics: the contrastive losses'
        # hard cases are never empty, so the step always moves the weights.
        second = [f"is this about {TOPICS[(i + 3) % 8]}" if i % 2 == 0 else f"is this about {t}"
                  for i, t in enumerate(TOPICS)]
        return {"sentence1": [f"is this about {t}" for t in TOPICS], "sentence2": second, "label": [1, 0] * 4}
    if shape == "pair_class":
        return {"sentence1": [f"someone talks of {t}" for t in TOPICS],
                "sentence2": [f"a claim about {t}" for t in TOPICS],
                "label": ["entailment", "neutral", "contradiction", "neutral"] * 2}
    if shape == "triplet":
        return {"anchor": [f"why {t}" for t in TOPICS], "positive": [f"because of {t}" for t in TOPICS],
                "negative": [f"because of {t}" for t in TOPICS[1:] + TOPICS[:1]]}
    if shape == "retrieval":
        return {"anchor": [f"what about {t}" for t in TOPICS], "positive": [f"all about {t} here" for t in TOPICS]}
    if shape == "unlabeled":
        return {"text": [f"a plain sentence about {t} and other things" for t in TOPICS]}
    raise AssertionError(shape)


LABELS = ["entailment", "neutral", "contradiction"]
CASES = [(name, choice.name) for name, shape in shapes.REGISTRY.items() for choice in shape.losses]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model")


def test_registry_covers_every_shape_with_reasons():
    assert set(shapes.REGISTRY) == {"pair_score", "pair_binary", "pair_class", "triplet", "retrieval", "unlabeled"}
    assert [c.name for c in loss_choices("pair_binary")] == [
        "OnlineContrastiveLoss", "ContrastiveLoss", "MultipleNegativesRankingLoss", "CoSENTLoss"]
    assert [c.name for c in loss_choices("retrieval")] == [
        "MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss", "GISTEmbedLoss"]
    assert all(len(c.reason) > 40 for shape in shapes.REGISTRY.values() for c in shape.losses)
    with pytest.raises(ValueError, match="known shapes: pair_score"):
        loss_choices("pairs")


@pytest.mark.parametrize("shape,loss_name", CASES)
def test_every_registered_loss_takes_a_training_step(tiny_folder, tmp_path, shape, loss_name):
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    model = SentenceTransformer(str(tiny_folder), device="cpu")
    guide = SentenceTransformer(str(tiny_folder), device="cpu") if loss_name == "GISTEmbedLoss" else None
    choice = [c for c in loss_choices(shape) if c.name == loss_name][0]
    if loss_name == "CachedMultipleNegativesRankingLoss":
        choice = LossChoice(loss_name, choice.reason, {"mini_batch_size": 2})
    loss = build_loss(model, choice, labels=LABELS, guide=guide)
    dataset = fit_columns(Dataset.from_dict(rows(shape)), shape, loss_name, LABELS, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8,
                                                learning_rate=1e-3, use_cpu=True, report_to=[], save_strategy="no",
                                                logging_strategy="no", seed=0)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    result = trainer.train()
    assert trainer.state.global_step == 1 and math.isfinite(result.training_loss)
    changed = [not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters())]
    assert any(changed), f"{loss_name} on {shape}: no weight moved"


def test_fit_columns_per_loss():
    from datasets import Dataset

    binary = Dataset.from_dict(rows("pair_binary"))
    positives = fit_columns(binary, "pair_binary", "MultipleNegativesRankingLoss")
    assert positives.column_names == ["sentence1", "sentence2"] and len(positives) == 4
    assert fit_columns(binary, "pair_binary", "OnlineContrastiveLoss")["label"] == [1, 0] * 4
    classes = fit_columns(Dataset.from_dict(rows("pair_class")), "pair_class", "SoftmaxLoss", LABELS)
    assert classes["label"] == [0, 1, 2, 1] * 2
    texts = Dataset.from_dict(rows("unlabeled"))
    simcse = fit_columns(texts, "unlabeled", "MultipleNegativesRankingLoss")
    assert simcse["anchor"] == simcse["positive"] == rows("unlabeled")["text"]
    tsdae = fit_columns(texts, "unlabeled", "DenoisingAutoEncoderLoss", seed=3)
    assert tsdae["original"] == rows("unlabeled")["text"]
    assert all(len(d.split()) < len(o.split()) for d, o in zip(tsdae["damaged"], tsdae["original"]))
    assert tsdae["damaged"] == fit_columns(texts, "unlabeled", "DenoisingAutoEncoderLoss", seed=3)["damaged"]


def test_tsdae_noise_deletes_about_sixty_percent_and_keeps_order():
    import random

    words = [f"w{i}" for i in range(1000)]
    kept = tsdae_noise(" ".join(words), random.Random(0)).split()
    assert 330 < len(kept) < 470 and kept == sorted(kept, key=words.index)
    assert len(tsdae_noise("single", random.Random(0)).split()) == 1


def test_temperature_becomes_scale_or_temperature():
    assert temperature_params("MultipleNegativesRankingLoss", 0.05) == {"scale": pytest.approx(20.0)}
    assert temperature_params("GISTEmbedLoss", 0.02) == {"temperature": 0.02}
    with pytest.raises(ValueError, match="does not apply to TripletLoss"):
        temperature_params("TripletLoss", 0.05)
    with pytest.raises(ValueError, match=r"in \(0, 10\]"):
        temperature_params("CoSENTLoss", 0)
    config = load_preset("smoke").with_overrides(["loss.name=CoSENTLoss", "loss.temperature=0.1"])
    chosen, alternatives, how = choose_loss(config, "pair_score")
    assert chosen.params == {"scale": pytest.approx(10.0)} and how == "set in the config (loss.name)"
    assert {a.name for a in alternatives} == {"CosineSimilarityLoss", "AnglELoss"}


def test_params_the_loss_does_not_take_are_refused_before_training():
    config = load_preset("smoke").with_overrides(["loss.params={scale: 5}"])
    assert choose_loss(config, "pair_score", 6000)[0].params == {"scale": 5}  # CoSENTLoss takes a scale
    # On 1,000 pairs the recommendation is cosine regression, which has no scale: named with the way out.
    with pytest.raises(LossError, match=r"loss.params scale does not apply to CosineSimilarityLoss; it takes "
                                        r"loss_fct, cos_score_transformation \(CosineSimilarityLoss is recommended.*"
                                        r"set loss.name to the loss they are for\)"):
        choose_loss(config, "pair_score", 1000)
    named = load_preset("smoke").with_overrides(["loss.name=CosineSimilarityLoss", "loss.params={margin: 1}"])
    with pytest.raises(LossError, match=r"^loss.params margin does not apply to CosineSimilarityLoss; it takes"):
        choose_loss(named, "pair_score", 1000)


def test_recommendation_follows_shape_and_size():
    assert recommend("pair_score", 5000, 16)[0].name == "CoSENTLoss"
    # Small scored-pair data: cosine regression (measured better below 5,000 pairs, bench/RESULTS.md).
    choice, why = recommend("pair_score", 1000, 16)
    assert choice.name == "CosineSimilarityLoss" and "1,000 here" in why and "5,000" in why
    assert recommend("pair_score", 4999, 16)[0].name == "CosineSimilarityLoss"
    assert recommend("pair_score", 0, 16)[0].name == "CoSENTLoss"  # size unknown: the shape's default
    # With the general anchor, CoSENT at any size: its weight held cosine regression's task back.
    choice, why = recommend("pair_score", 1000, 16, anchored=True)
    assert choice.name == "CoSENTLoss" and "train.general_anchor" in why
    anchored = load_preset("smoke").with_overrides(["train.task_prompt='task: '", "train.general_anchor=10"])
    chosen, _, how = choose_loss(anchored, "pair_score", 1000)
    assert chosen.name == "CoSENTLoss" and how.startswith("recommended: train.general_anchor")
    assert recommend("retrieval", 500, 64, anchored=True)[0].name == "MultipleNegativesRankingLoss"
    # Small retrieval sets too: GISTEmbedLoss did worse than MNRL on SciFact (bench/RESULTS.md).
    choice, why = recommend("retrieval", 500, 64)
    assert choice.name == "MultipleNegativesRankingLoss" and "500 training rows" in why
    assert recommend("retrieval", 50_000, 512)[0].name == "CachedMultipleNegativesRankingLoss"
    choice, why = recommend("triplet", 50_000, 16)
    assert choice.name == "MultipleNegativesRankingLoss" and "15 in-batch negatives" in why


def test_loss_shape_follows_the_train_split():
    assert loss_shape({"shape": "pair_binary", "train_shape": "triplet"}) == "triplet"
    assert loss_shape({"shape": "unlabeled", "train_shape": "retrieval"}) == "unlabeled"
    assert loss_shape({"shape": "pair_score"}) == "pair_score"


def test_matryoshka_wraps_and_checks_sizes(tiny_folder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_folder), device="cpu")
    choice = loss_choices("retrieval")[0]
    loss = build_loss(model, choice, matryoshka_dims=[16, 32, 8])
    assert type(loss).__name__ == "MatryoshkaLoss" and list(loss.matryoshka_dims) == [32, 16, 8]
    with pytest.raises(ValueError, match=r"1\.\.32"):
        build_loss(model, choice, matryoshka_dims=[64])


def test_bad_loss_parameters_are_named(tiny_folder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_folder), device="cpu")
    with pytest.raises(ValueError, match="CoSENTLoss does not take the parameters"):
        build_loss(model, LossChoice("CoSENTLoss", "", {"margin": 1}))
    with pytest.raises(ValueError, match="unknown distance_metric 'chebyshev'"):
        build_loss(model, LossChoice("TripletLoss", "", {"distance_metric": "chebyshev"}))
    # A value the loss refuses is named as the setting, not a stack trace from the library.
    with pytest.raises(LossError, match="loss.params of MultipleNegativesRankingLoss: Scale must be a positive"):
        build_loss(model, LossChoice("MultipleNegativesRankingLoss", "", {"scale": -1.0}))
    with pytest.raises(ValueError, match="SoftmaxLoss needs the label set"):
        build_loss(model, loss_choices("pair_class")[0])
    with pytest.raises(ValueError, match="unknown loss 'CosentLoss'"):
        choose_loss(load_preset("smoke").with_overrides(["loss.name=CosentLoss"]), "pair_score")
    with pytest.raises(ValueError, match="CoSENTLoss does not fit retrieval training data.*for retrieval: Multiple"):
        choose_loss(load_preset("smoke").with_overrides(["loss.name=CoSENTLoss"]), "retrieval")


def test_plan_records_train_shape_matryoshka_and_explains(tmp_path):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    config = load_preset("smoke").with_overrides(["loss.name=null", "loss.matryoshka_dims=[256, 64]",
                                                  "train.batch_size=8"])
    plan = write_plan(run, config, n_train=300, shape="triplet")
    assert plan["loss"]["name"] == "MultipleNegativesRankingLoss" and plan["train_shape"] == "triplet"
    assert plan["in_batch_negatives"] and plan["matryoshka_dims"] == [256, 64]
    text = explain(plan)
    assert "MatryoshkaLoss" in text and "7 in-batch negatives" in text and "TripletLoss" in text
