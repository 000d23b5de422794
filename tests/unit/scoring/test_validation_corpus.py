"""train.validation_corpus_size: the validation split of a retrieval run ranks against a fixed, seeded
sub-corpus (every relevant document plus random distractors), the same for training's evaluator and
for model selection; the test split keeps the whole corpus."""

import pytest
from conftest import REPO
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.scoring import build_evaluator, load_task, retrieval_tables
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


def test_auto_keeps_ten_times_the_relevant_documents_and_at_least_two_thousand():
    corpus = {f"d{i:04d}": f"document {i}" for i in range(5000)}
    many = {f"q{i}": {f"d{i * 7:04d}"} for i in range(300)}  # 300 relevant documents
    few = {f"q{i}": {f"d{i * 7:04d}"} for i in range(100)}
    sub = sub_corpus(corpus, many, "auto", seed=1)
    assert len(sub) == 3000 and all(d in sub for wanted in many.values() for d in wanted)
    assert len(sub_corpus(corpus, few, "auto", seed=1)) == 2000  # the floor
    assert sub_corpus(CORPUS, RELEVANT, "auto") is CORPUS  # a corpus under the floor stays whole


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
