"""Topic-grouped batches (training/topic_batches.py): rows whose anchors cluster together share a batch,
each row once per epoch with no text twice in a batch, seeded by the epoch; the factory the training
arguments hold pickles without the embeddings; the setting is refused for losses without in-batch
negatives and reaches a real (tiny-model) training run, in one process and in two."""

import pickle

import numpy as np
import pytest
from conftest import REPO
from datasets import Dataset
from helpers.tiny_model import build_tiny_model_folder, trained_in_two_processes
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.config import load_preset
from sttune_helpers.core.errors import SettingError
from sttune_helpers.training import plan_training, train_model
from sttune_helpers.training.topic_batches import TopicBatchSamplerFactory, TopicGroupedBatchSampler

N_TOPICS, PER_TOPIC = 12, 16


@pytest.fixture(scope="module")
def topics():
    """12 topics of 16 rows; each anchor's embedding lies near its topic's centre. Rows 0 and 1 of a
    topic share a positive (a document two queries are about), so they can never share a batch."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(N_TOPICS, 32))
    topic = np.repeat(np.arange(N_TOPICS), PER_TOPIC)
    embeddings = centres[topic] + 0.1 * rng.normal(size=(len(topic), 32))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    order = rng.permutation(len(topic))  # the dataset's rows are not sorted by topic
    positives = [f"doc {t}-{max(i % PER_TOPIC, 1)}" for i, t in enumerate(topic)]
    dataset = Dataset.from_dict({"anchor": [f"query {i}" for i in order],
                                 "positive": [positives[i] for i in order]})
    return dataset, embeddings[order].astype(np.float32), topic[order]


def test_rows_of_one_topic_share_a_batch_each_once_without_duplicates(topics):
    dataset, embeddings, topic = topics
    sampler = TopicBatchSamplerFactory(embeddings)(dataset, batch_size=8, drop_last=False, seed=0)
    assert isinstance(sampler, TopicGroupedBatchSampler)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for batch in batches for i in batch) == list(range(len(dataset)))
        for batch in batches:
            texts = [dataset[i]["anchor"] for i in batch] + [dataset[i]["positive"] for i in batch]
            assert len(set(texts)) == len(texts)
        # Random batches of 8 from 12 topics would hold 6 topics each on average; here a batch spans
        # at most the end of one cluster and the start of the next.
        topics_per_batch = [len(set(topic[batch])) for batch in batches]
        assert np.mean(topics_per_batch) < 2.0 and max(topics_per_batch) <= 3, topics_per_batch


def test_seeded_by_seed_and_epoch(topics):
    dataset, embeddings, _ = topics
    factory = TopicBatchSamplerFactory(embeddings)
    first, again, other = (factory(dataset, batch_size=8, drop_last=False, seed=s) for s in (0, 0, 1))
    epoch_0 = list(first)
    assert list(again) == epoch_0 and list(other) != epoch_0
    first.set_epoch(1)
    assert list(first) != epoch_0
    first.set_epoch(0)
    assert list(first) == epoch_0


def test_one_embedding_per_row_is_required(topics):
    dataset, embeddings, _ = topics
    with pytest.raises(ValueError, match="192 embeddings for 191 rows"):
        TopicBatchSamplerFactory(embeddings)(dataset.select(range(191)), batch_size=8, drop_last=False)


def test_the_factory_pickles_without_its_embeddings(topics):
    dataset, embeddings, _ = topics
    restored = pickle.loads(pickle.dumps(TopicBatchSamplerFactory(embeddings)))
    assert restored.embeddings is None and "without embeddings" in repr(restored)
    with pytest.raises(RuntimeError, match="restored from a checkpoint"):
        restored(dataset, batch_size=8, drop_last=False)


def test_only_losses_with_in_batch_negatives_take_it():
    config = load_preset("smoke").with_overrides(["train.batch_sampler=topic_grouped"])
    assert plan_training(config, 100, "cpu", "retrieval", "MultipleNegativesRankingLoss").batch_sampler == \
        "topic_grouped_no_duplicates"
    with pytest.raises(SettingError, match="train.batch_sampler=topic_grouped .* the loss is CoSENTLoss"):
        plan_training(config, 100, "cpu", "pair_score", "CoSENTLoss")


SCIFACT_MNRL = [f"data.source={REPO / 'tests' / 'data' / 'scifact-mini'}", "data.shape=auto",
                "data.max_train_rows=null", "data.max_validation_rows=null", "data.max_test_rows=null",
                "loss.name=MultipleNegativesRankingLoss", "train.batch_sampler=topic_grouped"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def test_a_tiny_model_trains_in_topic_grouped_batches(tmp_path, tiny_folder):
    from transformers import TrainerCallback

    used = []

    class RecordSampler(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            used.append(train_dataloader.batch_sampler)

    # Checkpoints at steps 2 and 4: the trainer pickles its arguments, the sampler's factory among them.
    run, config = prepare_tiny_run(tmp_path, tiny_folder, [*SCIFACT_MNRL, "train.batch_size=4", "train.max_steps=4",
                                                           "train.evaluations_per_epoch=2",
                                                           "train.early_stopping_patience=null"])
    summary = train_model(run, config, callbacks=[RecordSampler()])
    assert (summary["batch_sampler"], summary["global_step"]) == ("topic_grouped_no_duplicates", 4)
    assert len(used) == 1 and isinstance(used[0], TopicGroupedBatchSampler)
    assert used[0].embeddings.shape[0] == len(used[0].lengths) > 0  # one anchor embedding per training row
    assert np.allclose(np.linalg.norm(used[0].embeddings, axis=1), 1.0, atol=1e-4)
    assert all(np.isfinite(e["loss"]) for e in summary["log_history"] if "loss" in e)


def test_two_processes_train_in_topic_grouped_batches(tmp_path, tiny_folder):
    summary = trained_in_two_processes(tmp_path, tiny_folder, "topic_grouped")
    assert summary["batch_sampler"] == "topic_grouped_no_duplicates"
