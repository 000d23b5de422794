"""The scoring encoder on many texts (a large retrieval corpus): encoded in chunks so the terminal
can show how far it is, with the same vectors as in one call."""

import numpy as np

from sttune_helpers.core import progress
from sttune_helpers.scoring import models
from sttune_helpers.scoring.models import Encoder


class CountingModel:
    """Encodes a text as its length and its first letter's code point, and records each call's size."""

    def __init__(self):
        self.calls = []

    def encode(self, texts, **options):
        self.calls.append(len(texts))
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def test_many_texts_are_encoded_in_chunks_with_progress_and_the_same_vectors(monkeypatch):
    monkeypatch.setattr(models, "PROGRESS_CHUNK_TEXTS", 4)
    texts = [f"text {i}" * (i % 3 + 1) for i in range(10)]
    whole = CountingModel()
    expected = whole.encode(texts)
    model, events = CountingModel(), []
    with progress.reporting_to(events.append):
        vectors = Encoder(model, batch_size=2)(texts + texts[:3])  # repeats are encoded once
    assert model.calls == [4, 4, 2]
    np.testing.assert_array_equal(vectors[:10], expected)
    np.testing.assert_array_equal(vectors[10:], expected[:3])
    assert [(e.task, e.done, e.total, e.kind) for e in events] == [
        ("encoding", 4, 10, "step"), ("encoding", 8, 10, "step"), ("encoding", 10, 10, "step"),
        ("encoding", 10, 10, "end")]


def test_a_few_texts_are_encoded_in_one_call_without_progress():
    model, events = CountingModel(), []
    with progress.reporting_to(events.append):
        Encoder(model, batch_size=2)(["a", "bb", "a"])
    assert model.calls == [2] and events == []
