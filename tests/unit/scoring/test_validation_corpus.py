"""train.validation_corpus_size: the validation split of a retrieval run ranks against a fixed, seeded
sub-corpus (every relevant document plus random distractors), the same for training's evaluator and
for model selection; the test split keeps the whole corpus."""

import numpy as np
import pytest
from conftest import REPO
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.scoring import build_evaluator, load_task, retrieval_tables, validation_corpus
from sttune_helpers.scoring.tasks import sub_corpus

CORPUS = {f"d{i:03d}": f"document {i}" for i in range(100)}
RELEVANT = {"q1": {"d005", "d050"}, "q2": {"d050", "d099"}, "q3": {"missing"}}


def test_sub_corpus_keeps_the_relevant_documents_and_draws_the_rest_with_the_seed():
    sub = sub_corpus(CORPUS, RELEVANT, 10, seed=3)
    assert len(sub) == 10 and {"d005", "d050", "d099"} <= set(sub)
    assert list(sub) == [d for d in CORPUS if d in sub]  # the corpus's order
    assert sub == sub_corpus(CORPUS, RELEVANT, 10, seed=3)  # the same on every call
    draws = {tuple(sub_corpus(CORPUS, RELEVANT, 10, seed=s)) for s in range(5)}
    assert len(draws) > 1


def test_sub_corpus_is_the_whole_corpus_unless_smaller_and_never_drops_a_relevant_document():
    assert sub_corpus(CORPUS, RELEVANT, None) is CORPUS
    assert sub_corpus(CORPUS, RELEVANT, 100) is CORPUS and sub_corpus(CORPUS, RELEVANT, 500) is CORPUS
    assert set(sub_corpus(CORPUS, RELEVANT, 2)) == {"d005", "d050", "d099"}  # more than asked: all relevant


def test_mined_documents_take_each_querys_top_documents_in_turn():
    doc_ids = [f"d{i}" for i in range(10)]
    rankings = np.array([[3, 4, 5], [6, 3, 7]])  # query 1's best is d3, query 2's d6, ...
    assert validation_corpus.mined_documents(doc_ids, rankings, {"d0"}, 4) == ["d0", "d3", "d4", "d6"]
    assert validation_corpus.mined_documents(doc_ids, rankings, {"d0"}, 99) == ["d0", "d3", "d4", "d5", "d6", "d7"]


def test_auto_is_five_times_the_relevant_documents_and_at_least_a_thousand():
    assert validation_corpus.resolved_size("auto", 300) == 1500
    assert validation_corpus.resolved_size("auto", 100) == 1000
    assert validation_corpus.resolved_size(50, 100) == 50 and validation_corpus.resolved_size(None, 100) is None


def test_mining_keeps_the_hardest_distractors_and_reaches_the_size_where_queries_share_them():
    corpus = {f"d{i}": f"doc {i}" for i in range(20)}
    # Both queries point the same way, so their top documents are the same: the ranking must go deeper.
    angle = {f"doc {i}": i / 20 for i in range(20)} | {"q1": 0.0, "q2": 0.01}

    def encode(texts):
        return np.array([[np.cos(angle[t]), np.sin(angle[t])] for t in texts])

    documents = validation_corpus.mine(corpus, {"q1": "q1", "q2": "q2"}, {"q1": {"d19"}, "q2": {"d19"}}, 6, encode)
    assert documents == ["d0", "d1", "d2", "d3", "d4", "d19"]  # the relevant one and the five nearest


@pytest.fixture(scope="module")
def retrieval_run(tmp_path_factory):
    folder = str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))
    return prepare_tiny_run(tmp_path_factory.mktemp("runs"), folder,
                            [f"data.source={REPO / 'tests' / 'data' / 'scifact-mini'}", "data.shape=auto",
                             "data.max_train_rows=null", "data.max_validation_rows=null", "data.max_test_rows=null"])


def test_validation_and_selection_rank_against_the_same_sub_corpus_and_test_against_the_whole(retrieval_run):
    run, config = retrieval_run
    whole, _, relevant = retrieval_tables(run, "validation")
    size = len({d for wanted in relevant.values() for d in wanted}) + 5
    assert size < len(whole)
    config.train.validation_corpus_size = size
    try:
        selection = load_task(run, config, split="validation")
        test = load_task(run, config, split="test")
        evaluator = build_evaluator("retrieval", None, "validation", run=run, corpus_size=size, seed=config.seed)
    finally:
        config.train.validation_corpus_size = None
    assert len(selection.corpus) == size
    assert all(d in selection.corpus for wanted in selection.relevant for d in wanted)
    assert evaluator.corpus_ids == list(selection.corpus)  # training's evaluator and model selection agree
    assert test.corpus == whole
    assert load_task(run, config, split="validation").corpus == whole  # null: the whole corpus


def test_the_data_stage_mines_the_sub_corpus_that_validation_and_selection_then_share(retrieval_run):
    from sttune_helpers.stages import data_prep

    run, config = retrieval_run
    whole, _, relevant = retrieval_tables(run, "validation")
    needed = {d for wanted in relevant.values() for d in wanted}
    size = len(needed) + 5
    config.train.validation_corpus_size = size
    try:
        info = data_prep.mine_validation_corpus(run, config)
        selection = load_task(run, config, split="validation")
        evaluator = build_evaluator("retrieval", None, "validation", run=run, corpus_size=size, seed=config.seed)
        mined = validation_corpus.read(run, size)
        config.train.validation_corpus_size = size + 1  # changed after stage 01: random distractors until ...
        assert validation_corpus.read(run, size + 1) is None
        assert set(load_task(run, config, split="validation").corpus) == set(sub_corpus(whole, relevant, size + 1,
                                                                                          config.seed))
        assert data_prep.ensure_validation_corpus(run, config)["documents_kept"] == size + 1  # ... training mines
        assert len(load_task(run, config, split="validation").corpus) == size + 1
        assert data_prep.ensure_validation_corpus(run, config) is None  # mined already: not again
        config.train.validation_corpus_size = "auto"  # the corpus is under the floor: nothing is mined
        assert data_prep.mine_validation_corpus(run, config) is None and not validation_corpus.path(run).exists()
    finally:
        config.train.validation_corpus_size = None
    assert info["documents_kept"] == size and info["relevant_documents"] == len(needed)
    assert list(selection.corpus) == mined and needed <= set(mined)
    assert evaluator.corpus_ids == mined  # training's evaluator and model selection agree
    assert corpus_vectors_cached_for_evaluation(run, config)  # the mining's encoding is not paid twice


def corpus_vectors_cached_for_evaluation(run, config) -> bool:
    """Whether the base model's vectors of the test corpus are in the embedding cache under the key
    the evaluation stage uses (evaluation/evaluate.py: load_model, the eval precision and batch size)."""
    from sttune_helpers.core.hardware import resolve_encoding_precision
    from sttune_helpers.modeling import load_model
    from sttune_helpers.scoring.embedding_cache import cache_directory, for_model

    model = load_model(config.model.name, device=config.model.device, max_seq_length=config.model.max_seq_length)
    disk = for_model(cache_directory(run.root.parent), model, resolve_encoding_precision(model, config.eval.precision),
                     config.eval.batch_size)
    corpus = load_task(run, config, split="test").corpus
    return disk.get(list(dict.fromkeys(corpus.values()))) is not None
