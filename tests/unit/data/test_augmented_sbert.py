"""Augmented SBERT: recombined pairs of the train sentences labelled by a cross-encoder (silver pairs)."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from helpers.tiny_model import build_tiny_model_folder

from sttune_helpers.config import ConfigError, RunConfig, load_preset
from sttune_helpers.core.errors import SettingError
from sttune_helpers.data import augment_train, augmentation_gains_table, prepare_data
from sttune_helpers.data.augment import gains, neighbour_pairs, silver_pairs
from sttune_helpers.data.cleaning import normalise_text
from sttune_helpers.evaluation.doctor import check_data_size

SENTENCES = ["a man plays a guitar", "a man is playing the guitar", "a woman slices an onion",
             "a woman is cutting onions", "a dog runs in the park", "the dog is running on grass",
             "a child reads a book", "a kid is reading", "two men play football", "people play soccer"]
TRAIN = pd.DataFrame({"sentence1": SENTENCES[0::2], "sentence2": SENTENCES[1::2],
                      "score": [0.9, 0.8, 0.7, 0.6, 0.5]})


class OverlapLabeller:
    """Word overlap (Jaccard) as the 'cross-encoder': deterministic, in 0..1, no model."""

    def __init__(self):
        self.calls = 0

    def predict(self, pairs):
        self.calls += 1
        return [len(set(a.split()) & set(b.split())) / len(set(a.split()) | set(b.split())) for a, b in pairs]


class WordCountEncoder:
    """A bag-of-words 'bi-encoder' over the test vocabulary."""

    def __init__(self, texts):
        self.vocabulary = sorted({w for t in texts for w in t.split()})

    def encode(self, texts, normalize_embeddings=True, **_):
        vectors = np.array([[t.split().count(w) for w in self.vocabulary] for t in texts], dtype=np.float32) + 1e-3
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def pair_keys(frame):
    return {tuple(sorted((normalise_text(a), normalise_text(b)))) for a, b in zip(frame["sentence1"],
                                                                                   frame["sentence2"])}


@pytest.mark.parametrize("sampling", ["bm25", "semantic"])
def test_silver_pairs_are_new_in_range_and_counted(sampling):
    result = silver_pairs(TRAIN, "pair_score", OverlapLabeller(), sampling=sampling, top_k=3,
                          bi_encoder=WordCountEncoder(SENTENCES))
    json.dumps(result.report)
    added, report = result.added, result.report
    assert len(added) == report["rows_added"] > 0
    assert (added["augmentation"] == "augmented_sbert").all() and added["source_row"].isna().all()
    assert added["score"].between(0, 1).all()
    assert not pair_keys(added) & pair_keys(TRAIN)  # never a gold pair again, in either order
    assert len(pair_keys(added)) == len(added)  # each unordered pair once
    assert all(a != b for a, b in zip(added["sentence1"], added["sentence2"]))
    assert report["candidate_pairs"] == report["rows_added"] + report["skipped"].get("already a pair in the train "
                                                                                     "split", 0)
    assert sum(report["silver_labels"]["histogram"].values()) == len(added)
    assert report["silver_labels"]["mean"] == pytest.approx(added["score"].mean(), abs=1e-4)
    assert report["sentences_pooled"] == len(SENTENCES) and report["sentences_held_out"] == 0
    assert result.frame.iloc[:len(TRAIN)][["sentence1", "sentence2", "score"]].equals(TRAIN)  # gold rows untouched


def test_semantic_neighbours_are_the_nearest_texts():
    pairs = neighbour_pairs(SENTENCES, "semantic", 1, WordCountEncoder(SENTENCES))
    # "a man plays a guitar" shares the most words with "a man is playing the guitar"
    assert (0, 1) in pairs
    assert all(i < j for i, j in pairs) and len(set(pairs)) == len(pairs)


def test_held_out_sentences_never_enter_a_silver_pair():
    held_out = ["A woman is cutting onions!", "a kid is reading"]  # other case and punctuation still match
    result = silver_pairs(TRAIN, "pair_score", OverlapLabeller(), sampling="bm25", top_k=5, held_out_texts=held_out)
    texts = {normalise_text(t) for t in (*result.added["sentence1"], *result.added["sentence2"])}
    assert texts and not texts & {normalise_text(t) for t in held_out}
    assert result.report["sentences_held_out"] == 2 and result.report["sentences_pooled"] == len(SENTENCES) - 2


def test_silver_pairs_skip_pairs_other_steps_added_and_recombine_only_gold_sentences():
    extra = pd.DataFrame({"sentence1": ["a man plays a guitar", "a totally new synonym sentence"],
                          "sentence2": ["a woman slices an onion", "a dog runs in the park"], "score": [0.1, 0.2],
                          "augmentation": ["rules", "synonyms"], "source_row": [0, 2]})
    frame = pd.concat([TRAIN.assign(augmentation="", source_row=range(len(TRAIN))), extra], ignore_index=True)
    result = silver_pairs(frame, "pair_score", OverlapLabeller(), sampling="bm25", top_k=9)
    assert ("a man plays a guitar", "a woman slices an onion") not in pair_keys(result.added)
    assert "a totally new synonym sentence" not in {*result.added["sentence1"], *result.added["sentence2"]}


def test_max_pairs_sample_is_seeded():
    def run(seed):
        return silver_pairs(TRAIN, "pair_score", OverlapLabeller(), sampling="bm25", top_k=5, max_pairs=4, seed=seed)

    first, again, other = run(0), run(0), run(1)
    assert len(first.added) == 4 and first.report["skipped"]["over augmented_sbert_max_pairs"] > 0
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert pair_keys(first.added) != pair_keys(other.added)


def test_pair_binary_labels_at_the_threshold():
    binary = TRAIN.drop(columns="score").assign(label=[1, 1, 0, 1, 0])
    result = silver_pairs(binary, "pair_binary", OverlapLabeller(), sampling="bm25", top_k=5, threshold=0.2)
    scores = np.array(OverlapLabeller().predict(list(zip(result.added["sentence1"], result.added["sentence2"]))))
    assert result.added["label"].tolist() == (scores >= 0.2).astype(int).tolist()
    labels = result.report["silver_labels"]
    assert labels["1"] + labels["0"] == len(result.added) and labels["1"] > 0 and labels["0"] > 0


def test_bad_shape_settings_and_labeller_output_are_refused():
    triplets = pd.DataFrame({"anchor": ["a"], "positive": ["b"], "negative": ["c"]})
    with pytest.raises(SettingError, match="pair_score or pair_binary data, not triplet"):
        silver_pairs(triplets, "triplet", OverlapLabeller())
    with pytest.raises(SettingError, match="augmented_sbert_top_k"):
        silver_pairs(TRAIN, "pair_score", OverlapLabeller(), sampling="bm25", top_k=0)
    with pytest.raises(SettingError, match="augmented_sbert_sampling"):
        silver_pairs(TRAIN, "pair_score", OverlapLabeller(), sampling="random")

    class Logits:
        def predict(self, pairs):
            return [3.5] * len(pairs)

    with pytest.raises(ValueError, match=r"probabilities in 0\.\.1"):
        silver_pairs(TRAIN, "pair_score", Logits(), sampling="bm25")


@pytest.mark.parametrize("key, value", [("augmented_sbert_top_k", 0), ("augmented_sbert_max_pairs", 0),
                                        ("augmented_sbert_threshold", 1.0), ("cross_encoder_epochs", 0),
                                        ("cross_encoder_batch_size", 0), ("cross_encoder_learning_rate", -1e-5)])
def test_config_ranges(key, value):
    with pytest.raises(ConfigError, match=re.escape(f"data.augment.{key}: {value}")):
        RunConfig().with_overrides({f"data.augment.{key}": value})
    with pytest.raises(ConfigError, match="augmented_sbert_sampling"):
        RunConfig().with_overrides(["data.augment.augmented_sbert_sampling=random"])


def test_recommender_offers_it_with_the_measured_gain(tmp_path, monkeypatch):
    finding = check_data_size(200, "CoSENTLoss", 16, False, "pair_score")
    assert finding.fired and "data.augment.augmented_sbert=true" in finding.fix
    assert f"measured: {gains.measured_gain('augmented_sbert', 'pair_score')}" in finding.fix
    assert "augmented_sbert" not in check_data_size(200, "MultipleNegativesRankingLoss", 16, False, "triplet").fix
    table = tmp_path / "gains.tsv"
    table.write_text("method\tshape\tgain\tseed_spread\tmeasured_on\n"
                     "augmented_sbert\tpair_score\t0.0125\t0.004\tstsb 1000 pairs, 3 seeds\n"
                     "synonyms\tpair_score\t\t\t\n"
                     "augmented_sbert\tpair_score\t-0.0010\t0.003\tsnli 1000 pairs, 3 seeds\n")
    # One clause per set it was measured on, a loss as plainly as a gain.
    assert gains.measured_gain("augmented_sbert", "pair_score", table) == \
        "+0.0125 ± 0.0040 on the test metric (stsb 1000 pairs, 3 seeds); " \
        "-0.0010 ± 0.0030 on the test metric (snli 1000 pairs, 3 seeds)"
    assert gains.measured_gain("synonyms", "pair_score", table) == gains.NOT_MEASURED
    assert gains.measured_gain("augmented_sbert", "pair_binary", table) == gains.NOT_MEASURED
    monkeypatch.setattr(gains, "GAINS_TABLE", table)
    shown = augmentation_gains_table("pair_score")
    silver = shown[shown["method"] == "augmented_sbert"]
    assert list(silver["measured gain"]) == ["+0.0125", "-0.0010"]
    assert list(silver["helps beyond the spread"]) == ["yes", "no"]
    shown = shown.set_index("method")
    assert shown.loc["synonyms", "measured gain"] == "not yet measured"
    assert augmentation_gains_table("triplet").empty
    table.write_text("what\tgain\n")
    with pytest.raises(ValueError, match="gains.tsv: expected the tab-separated columns"):
        gains.read_gains(table)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def test_data_stage_with_the_tiny_model_end_to_end(tiny):
    """The real thing: a cross-encoder trained from the tiny bi-encoder checkpoint, semantic sampling
    with the tiny bi-encoder, on a small STS-B slice; seeded; no validation or test sentence used."""
    config = load_preset("smoke").with_overrides([
        f"model.name={tiny}", "data.max_train_rows=40", "data.max_validation_rows=20", "data.max_test_rows=20",
        "data.augment.augmented_sbert=true", "data.augment.augmented_sbert_top_k=2"])

    def run():
        prepared = prepare_data(config.data, seed=config.seed)
        augment_train(prepared, config.data, seed=config.seed, model_name=config.model.name, device="cpu")
        return prepared

    prepared, again = run(), run()
    train = prepared.splits["train"]
    silver = train[train["augmentation"] == "augmented_sbert"]
    report = prepared.report["augmentation"][-1]
    assert report["method"] == "augmented_sbert" and report["rows_added"] == len(silver) > 0
    assert prepared.report["counts"]["train"]["rows_after_augmentation"] == len(train)
    assert silver["score"].between(0, 1).all() and silver["score"].nunique() > 1
    assert report["cross_encoder"]["train_pairs"] == 40 and report["cross_encoder"]["steps"] > 0
    assert report["cross_encoder"]["validation"]["n"] == 20
    held_out = {normalise_text(t) for split in ("validation", "test") for c in ("sentence1", "sentence2")
                for t in prepared.splits[split][c]}
    assert not {normalise_text(t) for t in (*silver["sentence1"], *silver["sentence2"])} & held_out
    assert not pair_keys(silver) & pair_keys(train[train["augmentation"] == ""])
    pd.testing.assert_frame_equal(train, again.splits["train"])  # seeded: the same silver pairs and labels
