"""Length-grouped batches (training/samplers.py): each row once per epoch, batches of similar length,
no duplicate texts under the no-duplicates rule, seeded, sharded across processes as accelerate does,
and wired from train.batch_sampler into a real (tiny-model) training run."""

import random

import numpy as np
import pytest
from conftest import REPO
from datasets import Dataset
from helpers.tiny_model import build_tiny_model_folder, trained_in_two_processes
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.config import load_preset
from sttune_helpers.training import plan_training, train_model
from sttune_helpers.training.samplers import (
    LengthGroupedBatchSampler,
    LengthGroupedNoDuplicatesBatchSampler,
    trainer_batch_sampler,
)

N_ROWS = 1003  # not a multiple of the batch size: the last batch is incomplete


def text(rng: random.Random, most_words: int) -> str:
    return " ".join(rng.choice(["lorem", "ipsum", "dolor", "sit", "amet"]) for _ in range(rng.randint(1, most_words)))


@pytest.fixture(scope="module")
def pairs():
    """Queries of 1 to 120 words, each asked 1-3 times with different short positives (as in
    retrieval data, where a query has several relevant documents), and a score column the samplers
    ignore. A query's rows are of about the same length: length grouping brings them together."""
    rng = random.Random(0)
    anchors, positives = [], []
    while len(anchors) < N_ROWS:
        query = text(rng, 120)
        for _ in range(rng.randint(1, 3)):
            anchors.append(query)
            positives.append(f"{len(positives)} {text(rng, 3)}")
    return Dataset.from_dict({"anchor": anchors[:N_ROWS], "positive": positives[:N_ROWS],
                              "score": [0.5] * N_ROWS})


def make(sampler_class, dataset, batch_size=16, drop_last=False, seed=0, **kwargs):
    return sampler_class(dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=["score"],
                         seed=seed, **kwargs)


def mean_length_range(batches, lengths) -> float:
    return float(np.mean([np.ptp(lengths[batch]) for batch in batches]))


@pytest.mark.parametrize("sampler_class", [LengthGroupedBatchSampler, LengthGroupedNoDuplicatesBatchSampler])
def test_every_row_once_per_epoch_in_batches_of_similar_length(pairs, sampler_class):
    sampler = make(sampler_class, pairs)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(N_ROWS))
    sizes = [len(batch) for batch in batches]
    if sampler_class is LengthGroupedBatchSampler:
        assert len(batches) == len(sampler) == 63
        assert sizes == [16] * 62 + [N_ROWS - 62 * 16]
    else:  # the last rows can be copies of one query: one incomplete batch each, as NoDuplicatesBatchSampler does
        assert len(sampler) == 63 <= len(batches) <= 63 + 2
        full = sizes.count(16)
        assert full >= 60 and sizes[:full] == [16] * full and all(size < 16 for size in sizes[full:])
    # Without a tokenizer the lengths are the rows' summed character lengths, the label column left out.
    assert sampler.lengths[5] == len(pairs[5]["anchor"]) + len(pairs[5]["positive"])

    rng = np.random.default_rng(0)
    random_batches = np.array_split(rng.permutation(N_ROWS), len(batches))
    grouped, random_spread = mean_length_range(batches, sampler.lengths), mean_length_range(random_batches,
                                                                                           sampler.lengths)
    assert grouped < 0.15 * random_spread, (grouped, random_spread)


def test_no_duplicate_texts_in_a_batch_under_the_no_duplicates_rule(pairs):
    def repeats(batches):
        return sum(len(batch) - len({pairs[i]["anchor"] for i in batch}) for batch in batches)

    # Length grouping alone puts a query's rows (same anchor, similar length) side by side, far more
    # often than random batches would...
    rng = np.random.default_rng(0)
    random_repeats = repeats(np.array_split(rng.permutation(N_ROWS), 63))
    assert repeats(list(make(LengthGroupedBatchSampler, pairs))) > max(50, 5 * random_repeats)
    # ...the no-duplicates variant keeps every text (anchor or positive, in any column) once per batch.
    sampler = make(LengthGroupedNoDuplicatesBatchSampler, pairs)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for batch in batches for i in batch) == list(range(N_ROWS))
        for batch in batches:
            texts = [pairs[i]["anchor"] for i in batch] + [pairs[i]["positive"] for i in batch]
            assert len(set(texts)) == len(texts)
    assert mean_length_range(batches, sampler.lengths) < 0.25 * np.ptp(sampler.lengths)


def test_a_text_repeated_across_columns_counts_as_a_duplicate():
    dataset = Dataset.from_dict({"anchor": ["a", "b", "c", "d"], "positive": ["b", "x", "y", "z"]})
    batches = list(LengthGroupedNoDuplicatesBatchSampler(dataset, batch_size=2, drop_last=False, seed=0))
    assert not any(set(batch) == {0, 1} for batch in batches)  # row 0's positive is row 1's anchor
    assert sorted(i for batch in batches for i in batch) == [0, 1, 2, 3]


@pytest.mark.parametrize("sampler_class", [LengthGroupedBatchSampler, LengthGroupedNoDuplicatesBatchSampler])
def test_seeded_the_same_and_different_across_epochs_and_seeds(pairs, sampler_class):
    first, again, other_seed = (make(sampler_class, pairs, seed=s) for s in (0, 0, 1))
    epoch_0 = list(first)
    assert list(again) == epoch_0
    assert list(other_seed) != epoch_0
    first.set_epoch(1)
    epoch_1 = list(first)
    assert epoch_1 != epoch_0 and sorted(map(sorted, epoch_1)) != sorted(map(sorted, epoch_0))
    first.set_epoch(0)
    assert list(first) == epoch_0  # the epoch, not the number of passes so far, seeds the order


def test_drop_last_keeps_only_full_batches(pairs):
    for sampler_class in (LengthGroupedBatchSampler, LengthGroupedNoDuplicatesBatchSampler):
        sampler = make(sampler_class, pairs, drop_last=True)
        batches = list(sampler)
        assert len(batches) == len(sampler) == N_ROWS // 16
        assert all(len(batch) == 16 for batch in batches)
        assert len({i for batch in batches for i in batch}) == 16 * len(batches)


def test_shards_across_processes_as_accelerate_wraps_it(pairs):
    # What the trainer's accelerator.prepare does with a batch sampler on each of 2 processes.
    from accelerate.data_loader import BatchSamplerShard

    def shards(sampler):
        return [list(BatchSamplerShard(sampler, num_processes=2, process_index=rank, even_batches=False))
                for rank in (0, 1)]

    def step_gap(shards):
        """The mean difference in mean length between the two processes' batches of one step."""
        return np.mean([abs(np.mean(sampler.lengths[a]) - np.mean(sampler.lengths[b])) for a, b in zip(*shards)])

    sampler = make(LengthGroupedNoDuplicatesBatchSampler, pairs, num_processes=2)
    two = shards(sampler)
    rows = [i for shard in two for batch in shard for i in batch]
    assert sorted(rows) == list(range(N_ROWS))  # every row once, on one of the processes
    assert not set(map(tuple, two[0])) & set(map(tuple, two[1]))
    # The processes' batches of one step come from the same sorted stretch: similar lengths, so
    # neither waits long for the other, where batches shuffled one by one would pair at random.
    one_by_one = shards(make(LengthGroupedNoDuplicatesBatchSampler, pairs, num_processes=1))
    assert step_gap(two) < 0.25 * step_gap(one_by_one), (step_gap(two), step_gap(one_by_one))


def test_the_config_choice_reaches_the_trainer_arguments():
    config = load_preset("smoke").with_overrides(["train.batch_sampler=length_grouped"])
    mnrl = plan_training(config, 100, "cpu", "retrieval", "MultipleNegativesRankingLoss")
    cosent = plan_training(config, 100, "cpu", "pair_score", "CoSENTLoss")
    assert (mnrl.batch_sampler, cosent.batch_sampler) == ("length_grouped_no_duplicates", "length_grouped")
    assert trainer_batch_sampler(mnrl.batch_sampler) is LengthGroupedNoDuplicatesBatchSampler
    assert trainer_batch_sampler(cosent.batch_sampler) is LengthGroupedBatchSampler
    assert trainer_batch_sampler("no_duplicates") == "no_duplicates"
    # "auto" chooses it where it was measured faster at no cost in accuracy (cosine regression, CoSENT,
    # online contrastive), not for in-batch-negative losses nor for losses it was not measured on.
    auto = load_preset("smoke")
    assert plan_training(auto, 100, "cpu", "retrieval", "MultipleNegativesRankingLoss").batch_sampler == \
        "no_duplicates"
    assert {plan_training(auto, 100, "cpu", shape, loss).batch_sampler
            for shape, loss in (("pair_score", "CosineSimilarityLoss"), ("pair_score", "CoSENTLoss"),
                                ("pair_binary", "OnlineContrastiveLoss"))} == {"length_grouped"}
    assert plan_training(auto, 100, "cpu", "pair_binary", "ContrastiveLoss").batch_sampler == "batch_sampler"
    # Rows sort by tokens, except for the losses that scored better sorted by characters (CoSENT on STS-B).
    assert plan_training(auto, 100, "cpu", "pair_binary", "OnlineContrastiveLoss").length_unit == "tokens"
    assert plan_training(auto, 100, "cpu", "pair_score", "CoSENTLoss").length_unit == "characters"
    assert (mnrl.length_unit, cosent.length_unit) == ("tokens", "characters")
    assert plan_training(auto, 100, "cpu", "retrieval", "MultipleNegativesRankingLoss").length_unit is None


def test_the_doctor_knows_the_length_grouped_sampler_keeps_duplicates_out():
    import pandas as pd

    from sttune_helpers.evaluation.doctor import check_batch_duplicates

    train = pd.DataFrame({"anchor": ["q1", "q2", "q1"], "positive": ["a1", "a2", "a3"]})
    in_batch = {"in_batch_negatives": True}
    assert not check_batch_duplicates(train, in_batch, "length_grouped_no_duplicates").fired
    assert check_batch_duplicates(train, in_batch, "batch_sampler").fired


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.mark.parametrize("extra,expected_sampler,expected_class,unit", [
    ([], "length_grouped", LengthGroupedBatchSampler, "characters"),  # CoSENT
    ([f"data.source={REPO / 'tests' / 'data' / 'scifact-mini'}", "data.shape=auto", "data.max_train_rows=null",
      "data.max_validation_rows=null", "data.max_test_rows=null", "loss.name=MultipleNegativesRankingLoss"],
     "length_grouped_no_duplicates", LengthGroupedNoDuplicatesBatchSampler, "tokens"),
])
def test_a_tiny_model_trains_with_length_grouped_batches(tmp_path, tiny_folder, extra, expected_sampler,
                                                         expected_class, unit):
    from transformers import TrainerCallback

    used, expected_lengths = [], []

    class RecordSampler(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, model=None, **kwargs):
            sampler = train_dataloader.batch_sampler  # accelerate's shard wrapper only in several processes
            sampler = getattr(sampler, "batch_sampler", sampler)
            used.append(type(sampler))
            # By tokens: a row's longest text column in the model's tokens, cut at max_seq_length, as the
            # collator pads it; by characters: its summed text length.
            dataset = train_dataloader.dataset
            columns = [c for c in dataset.column_names if c not in ("label", "score")]
            if unit == "tokens":
                counts = [[len(ids) for ids in model.tokenizer(list(dataset[c]), truncation=True,
                                                               max_length=model.max_seq_length)["input_ids"]]
                          for c in columns]
                expected_lengths.append(np.max(counts, axis=0))
            else:
                expected_lengths.append(np.sum([[len(t) for t in dataset[c]] for c in columns], axis=0))
            assert np.array_equal(sampler.lengths, expected_lengths[-1])

    run, config = prepare_tiny_run(tmp_path, tiny_folder, ["train.batch_sampler=length_grouped", "train.max_steps=3",
                                                       "train.evaluations_per_epoch=1", *extra])
    summary = train_model(run, config, callbacks=[RecordSampler()])
    assert (summary["batch_sampler"], summary["length_unit"], summary["global_step"]) == (expected_sampler, unit, 3)
    assert used == [expected_class] and len(expected_lengths) == 1
    assert all(np.isfinite(e["loss"]) for e in summary["log_history"] if "loss" in e)


def test_two_processes_train_with_length_grouped_batches(tmp_path, tiny_folder):
    summary = trained_in_two_processes(tmp_path, tiny_folder, "length_grouped")
    assert summary["batch_sampler"] == "length_grouped_no_duplicates"


def test_a_lora_run_resumed_mid_epoch_draws_the_same_length_grouped_batches(tmp_path, tiny_folder):
    # Resuming skips the batches already trained on, so the sampler must draw the same ones again: an
    # interrupted LoRA run ends with the weights of the same run straight through.
    from sentence_transformers import SentenceTransformer
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    def weights(folder):
        return SentenceTransformer(str(folder), device="cpu").state_dict()

    overrides = ["train.batch_sampler=length_grouped", "train.lora_rank=2", "train.learning_rate=2e-3",
                 "train.max_steps=4", "train.evaluations_per_epoch=2", "train.early_stopping_patience=null",
                 "train.restore_best=never"]
    run, config = prepare_tiny_run(tmp_path, tiny_folder, overrides)
    with pytest.raises(KeyboardInterrupt):
        train_model(run, config, callbacks=[Interrupt()])
    summary = train_model(run, config, resume=True)
    assert (summary["resumed_from_step"], summary["global_step"], summary["batch_sampler"]) == \
        (2, 4, "length_grouped")
    straight_run, straight_config = prepare_tiny_run(tmp_path, tiny_folder, overrides, name="straight")
    train_model(straight_run, straight_config)
    resumed, straight = weights(run.model_dir), weights(straight_run.model_dir)
    assert sum(float(((resumed[k] - straight[k]) ** 2).sum()) for k in resumed
               if resumed[k].is_floating_point()) < 1e-8
