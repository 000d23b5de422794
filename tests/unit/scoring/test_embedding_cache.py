"""Embeddings kept between scorings (scoring/embedding_cache.py): a scoring done before is read back
with the same figures and no encoding; anything the vectors depend on changes the key, and the folder a
model was loaded from does not; a damaged or unwritable cache only costs the encoding; the least
recently used entries go first; and a second evaluation of a run encodes nothing, while
eval.cache_embeddings=false keeps no cache."""

import os

import numpy as np
import pandas as pd
import pytest
from helpers.tiny_model import build_tiny_model_folder, prepared_run

from sttune_helpers.core.hardware import resolve_encoding_precision
from sttune_helpers.core.statistics import Bootstrap
from sttune_helpers.modeling import load_model
from sttune_helpers.scoring import TaskSet, score_model
from sttune_helpers.scoring.embedding_cache import EmbeddingCache, cache_directory, model_key, prune


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def sts_task(n=12):
    items = pd.DataFrame({"sentence1": [f"a man plays guitar number {i}" for i in range(n)],
                          "sentence2": [f"someone is playing music {i % 4}" for i in range(n)],
                          "score": np.linspace(0, 1, n)})
    return TaskSet("pair_score", "toy", items, score_range=(0.0, 1.0))


def counting(model):
    """Count the texts ``model`` encodes."""
    encoded, encode = [], model.encode
    model.encode = lambda texts, **kw: encoded.extend(texts) or encode(texts, **kw)
    return encoded


def test_a_scoring_done_before_is_read_back_with_the_same_figures(tmp_path, tiny):
    task, boot, cache = sts_task(), Bootstrap.draw(12, 50, 0.95, 0), tmp_path / "cache"
    first_model = load_model(tiny, device="cpu")
    first_encoded = counting(first_model)
    first = score_model(task, first_model, boot, 4, 0, "fp32", cache)
    again_model = load_model(tiny, device="cpu")  # a fresh load of the same model: the same key
    again_encoded = counting(again_model)
    again = score_model(task, again_model, boot, 4, 0, "fp32", cache)
    assert len(first_encoded) == 12 + 4 and again_encoded == []
    assert again.metrics == first.metrics
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    # Without the cache the same figures, encoded again.
    plain_model = load_model(tiny, device="cpu")
    plain_encoded = counting(plain_model)
    assert score_model(task, plain_model, boot, 4, 0, "fp32").metrics == first.metrics and len(plain_encoded) == 16


def test_the_key_follows_the_weights_the_length_limit_precision_and_batch(tiny):
    import torch

    model = load_model(tiny, device="cpu")
    key = model_key(model, "fp32", 64)
    assert model_key(load_model(tiny, device="cpu"), "fp32", 64) == key
    assert model_key(model, "bf16", 64) != key and model_key(model, "fp32", 32) != key
    model.max_seq_length = 16
    assert model_key(model, "fp32", 64) != key
    model.max_seq_length = load_model(tiny, device="cpu").max_seq_length
    assert model_key(model, "fp32", 64) == key
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3  # one weight, slightly
    assert model_key(model, "fp32", 64) != key


def test_the_key_follows_the_tokenizer_not_the_folder(tmp_path, tiny):
    # The packaged model lives inside each environment: a new one must not miss every cached vector.
    import shutil

    key = model_key(load_model(tiny, device="cpu"), "fp32", 64)
    moved = shutil.copytree(tiny, tmp_path / "elsewhere" / "model")
    assert model_key(load_model(str(moved), device="cpu"), "fp32", 64) == key
    model = load_model(str(moved), device="cpu")
    model.encode(["a first encoding sets the tokenizer's truncation and padding"], batch_size=1)
    assert model_key(model, "fp32", 64) == key
    # A tokenizer that splits text differently is another key, though the weights are the same.
    model.tokenizer.add_tokens(["guitarmusic"])
    assert model_key(model, "fp32", 64) != key
    lowered = load_model(str(moved), device="cpu")
    lowered.tokenizer.backend_tokenizer.normalizer = type(lowered.tokenizer.backend_tokenizer.normalizer)(
        lowercase=False)
    assert model_key(lowered, "fp32", 64) != key


def test_a_damaged_or_unwritable_cache_costs_only_the_encoding(tmp_path, tiny):
    task, boot = sts_task(), Bootstrap.draw(12, 50, 0.95, 0)
    expected = score_model(task, load_model(tiny, device="cpu"), boot, 4, 0, "fp32").metrics
    cache = tmp_path / "cache"
    score_model(task, load_model(tiny, device="cpu"), boot, 4, 0, "fp32", cache)
    entries = {len(np.load(p)): p for p in cache.glob("*/*.npy")}
    assert sorted(entries) == [4, 12]  # the first sentences, then the distinct second ones
    entries[12].write_bytes(b"not an array")
    model = load_model(tiny, device="cpu")
    encoded = counting(model)
    assert score_model(task, model, boot, 4, 0, "fp32", cache).metrics == expected
    assert len(encoded) == 12  # the damaged entry encoded again, the other read back
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # a cache directory that cannot be made
    assert score_model(task, load_model(tiny, device="cpu"), boot, 4, 0, "fp32", blocked / "cache").metrics == expected


def test_the_least_recently_used_entries_go_first(tmp_path):
    cache = EmbeddingCache(tmp_path, "model")
    for i in range(4):
        cache.put([f"text {i}"], np.ones((1, 256), np.float32))
        os.utime(cache._path([f"text {i}"]), (1000 + i, 1000 + i))
    cache.get(["text 0"])  # read: recently used again
    size = cache._path(["text 0"]).stat().st_size
    prune(tmp_path, max_bytes=2 * size)
    kept = {p for p in range(4) if cache._path([f"text {p}"]).exists()}
    assert kept == {0, 3}


def test_a_second_evaluation_of_a_run_encodes_nothing(tmp_path, tiny, monkeypatch):
    from sttune_helpers.evaluation import evaluate as evaluate_module
    from sttune_helpers.evaluation import evaluate_models

    loaded = []

    def load_and_count(*args, **kwargs):
        model = load_model(*args, **kwargs)
        loaded.append(counting(model))
        return model

    monkeypatch.setattr(evaluate_module, "load_model", load_and_count)
    tuned = str(build_tiny_model_folder(tmp_path / "tuned", seed=1))  # other weights
    models = {"base": tiny, "fine_tuned": tuned}
    run, config = prepared_run(tmp_path, tiny, ["eval.reference_max_pairs=8", "eval.bootstrap_samples=20"])
    first = evaluate_models(run, config, models).report
    assert sum(map(len, loaded)) > 0
    # in the runs directory, a folder per model and precision (the reference in bf16 where training uses it)
    precisions = {"fp32", resolve_encoding_precision(load_model(tiny), config.eval.reference_precision)}
    assert len(list(cache_directory(tmp_path).iterdir())) == 2 * len(precisions)
    loaded.clear()
    from sttune_helpers.scoring import embedding_cache

    digests = []
    digest = embedding_cache.weights_digest
    monkeypatch.setattr(embedding_cache, "weights_digest", lambda model: digests.append(1) or digest(model))
    again = evaluate_models(run, config, models).report
    assert len(digests) == 2  # once per model, not once per split scored
    assert [len(texts) for texts in loaded] == [0, 0]
    assert again["models"] == first["models"] and again["reference"] == first["reference"]

    off, off_config = prepared_run(tmp_path / "off", tiny, ["eval.reference_max_pairs=8", "eval.bootstrap_samples=20",
                                                            "eval.cache_embeddings=false"])
    loaded.clear()
    assert evaluate_models(off, off_config, models).report["models"] == first["models"]
    assert sum(map(len, loaded)) > 0 and not (tmp_path / "off" / ".cache").exists()
