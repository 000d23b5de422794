import json
import math
import re

import pandas as pd
import pytest

from sttune_helpers.data import augment
from sttune_helpers.data.augment import (
    Augmented,
    EmbeddingNeighbours,
    MarianTranslator,
    RuleError,
    WordNetSynonyms,
    WordNetUnavailable,
    back_translate,
    simcse_pairs,
    synonym_replace,
    synthesize_pairs,
    validate_rules,
)

PAIRS = pd.DataFrame({
    "sentence1": ["The car is parked near the big house.", "A dog runs quickly across the green field!",
                  "The woman plays music for the children.", "Cheap cars are sold quickly in the city."],
    "sentence2": ["A vehicle waits beside a large building.", "The puppy sprints over the grass.",
                  "A lady performs songs for young kids.", "Inexpensive automobiles sell fast downtown."],
    "label": [1, 1, 1, 0],
})


@pytest.fixture(scope="module")
def embedding_source():
    return EmbeddingNeighbours.from_model("default")


def words_of(text):
    return text.split()


def check_report(result: Augmented, rows_in: int):
    json.dumps(result.report)  # JSON-serialisable
    report = result.report
    assert report["rows_in"] == rows_in
    assert report["rows_out"] == len(result.frame)
    assert len(result.added) == report["rows_added"]
    assert (result.added[augment.AUGMENTATION_COLUMN] != "").all()


# --- synonym replacement through token embeddings ---------------------------------------------


def test_embedding_neighbours_are_close_related_words(embedding_source):
    found = embedding_source.candidates(["car", "Car", "the", "zzqxj", "running"])
    assert set(found) >= {"car", "Car"} and "the" not in found and "zzqxj" not in found
    for neighbour in found["car"]:
        assert neighbour.isalpha() and len(neighbour) >= 3
        assert neighbour.lower() not in {"car", "cars"}
        assert embedding_source.similarity("car", neighbour) >= embedding_source.threshold
    assert {"vehicle", "automobile"} & set(found["car"]), found["car"]
    assert embedding_source.similarity("car", "vehicle") > embedding_source.similarity("car", "guitar")


def test_same_word_family():
    assert augment.same_word_family("car", "Cars")
    assert augment.same_word_family("happy", "unhappy")
    assert augment.same_word_family("parked", "parking")
    assert augment.same_word_family("woman", "women")
    assert not augment.same_word_family("car", "vehicle")


@pytest.mark.parametrize("rate", [0.3, 0.5])
def test_synonym_replace_changes_rate_of_eligible_words(embedding_source, rate):
    result = synonym_replace(PAIRS, "pair_binary", embedding_source, rate=rate, seed=3)
    check_report(result, len(PAIRS))
    frame = result.frame
    originals = frame.iloc[:len(PAIRS)]
    assert (originals[augment.AUGMENTATION_COLUMN] == "").all()
    assert originals[augment.SOURCE_ROW_COLUMN].tolist() == list(range(len(PAIRS)))
    pd.testing.assert_frame_equal(originals[list(PAIRS.columns)].reset_index(drop=True), PAIRS,
                                  check_dtype=False)

    added = result.added
    assert len(added) == len(PAIRS)  # every row here has eligible words
    assert (added[augment.AUGMENTATION_COLUMN] == "synonym_embedding").all()
    replaced_total = eligible_total = 0
    for _, row in added.iterrows():
        source = PAIRS.iloc[int(row[augment.SOURCE_ROW_COLUMN])]
        assert row["label"] == source["label"]
        for column in ("sentence1", "sentence2"):
            old, new = words_of(source[column]), words_of(row[column])
            assert len(old) == len(new)
            bare = [re.sub(r"\W", "", w) for w in old]
            candidates = embedding_source.candidates(bare)
            eligible = sum(w in candidates for w in bare)
            changed = [(o, n) for o, n in zip(old, new) if o != n]
            if changed:
                assert len(changed) == max(1, math.floor(rate * eligible + 0.5))
                replaced_total += len(changed)
                eligible_total += eligible
            for o, n in changed:
                o_word, n_word = re.sub(r"\W", "", o), re.sub(r"\W", "", n)
                assert n_word.lower() in candidates[o_word]  # a close neighbour of that very word
                assert o[0].isupper() == n[0].isupper()  # capitalisation kept
                assert re.sub(r"\w", "", o) == re.sub(r"\w", "", n)  # punctuation kept
        assert (row["sentence1"], row["sentence2"]) != (source["sentence1"], source["sentence2"])
    assert result.report["words_replaced"] == replaced_total
    assert result.report["words_eligible_in_changed_texts"] == eligible_total
    assert abs(replaced_total / eligible_total - rate) < 0.25  # short texts round up


def test_synonym_replace_is_deterministic_per_seed(embedding_source):
    first = synonym_replace(PAIRS, "pair_binary", embedding_source, rate=0.5, copies=2, seed=7)
    again = synonym_replace(PAIRS, "pair_binary", embedding_source, rate=0.5, copies=2, seed=7)
    other = synonym_replace(PAIRS, "pair_binary", embedding_source, rate=0.5, copies=2, seed=8)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert first.report == again.report
    assert not first.added[["sentence1", "sentence2"]].equals(other.added[["sentence1", "sentence2"]])
    # copies: up to two per row, never a repeat of the source or of each other
    assert len(first.added) + sum(first.report["skipped"].values()) == 2 * len(PAIRS)
    assert not first.frame.duplicated(subset=["sentence1", "sentence2"]).any()


def test_synonym_replace_triplet_never_touches_the_negative(embedding_source):
    triplets = pd.DataFrame({"anchor": ["The car drives quickly", "A dog eats cheap food"],
                             "positive": ["A vehicle moves fast", "The puppy eats inexpensive meals"],
                             "negative": ["The woman plays music", "A child reads in the kitchen"]})
    plain = synonym_replace(triplets, "triplet", embedding_source, rate=0.5)
    assert plain.added["negative"].tolist() == triplets["negative"].tolist()
    assert plain.added["positive"].tolist() == triplets["positive"].tolist()
    assert (plain.added["anchor"].values != triplets["anchor"].values).all()
    both = synonym_replace(triplets, "triplet", embedding_source, rate=0.5, include_positive=True)
    assert both.added["negative"].tolist() == triplets["negative"].tolist()
    assert (both.added["positive"].values != triplets["positive"].values).any()
    with pytest.raises(ValueError, match="negative is never rewritten"):
        synonym_replace(triplets, "triplet", embedding_source, columns=["negative"])


def test_synonym_replace_counts_rows_it_cannot_change(embedding_source):
    frame = pd.DataFrame({"text": ["The car drives quickly", "it is of the", "zzqx yyqw"]})
    result = synonym_replace(frame, "unlabeled", embedding_source, rate=0.2)
    check_report(result, 3)
    assert result.report["rows_added"] == 1
    assert result.report["skipped"] == {"no eligible word with a close synonym": 2}
    assert result.added[augment.SOURCE_ROW_COLUMN].tolist() == [0]


def test_synonym_replace_rejects_bad_input(embedding_source):
    with pytest.raises(ValueError, match="missing: label"):
        synonym_replace(PAIRS.drop(columns="label"), "pair_binary", embedding_source)
    with pytest.raises(ValueError, match="rate"):
        synonym_replace(PAIRS, "pair_binary", embedding_source, rate=0)
    with pytest.raises(ValueError, match=r"row 1 .*column 'sentence2'"):
        synonym_replace(PAIRS.assign(sentence2=["a", None, "b", "c"]), "pair_binary", embedding_source)


# --- synonym replacement through WordNet ------------------------------------------------------


def _wordnet_state():
    try:
        import nltk
    except ImportError:
        return "no nltk"
    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        return "no data"
    return "ready"


def test_wordnet_source_or_clear_install_message(capsys):
    state = _wordnet_state()
    if state != "ready":
        with pytest.raises(WordNetUnavailable) as caught:
            WordNetSynonyms()
        message = str(caught.value)
        assert "python -m nltk.downloader wordnet" in message
        if state == "no nltk":
            assert "pip install nltk" in message
        with capsys.disabled():
            print(f"\n[wordnet: {state}; checked the install message instead of replacements]")
        with pytest.raises(WordNetUnavailable):
            synonym_replace(PAIRS, "pair_binary", "wordnet")
        return
    source = WordNetSynonyms()
    found = source.candidates(["car", "quickly"])
    assert {"auto", "automobile", "machine"} & set(found["car"])
    result = synonym_replace(PAIRS, "pair_binary", source, rate=0.3)
    check_report(result, len(PAIRS))
    assert (result.added[augment.AUGMENTATION_COLUMN] == "synonym_wordnet").all()


# --- back-translation -------------------------------------------------------------------------


class SwapTranslator:
    """A stand-in translator: the round trip changes "car" and nothing else."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    def translate(self, texts):
        self.calls.append(list(texts))
        return [self.table.get(t, t) for t in texts]


def test_back_translate_drops_identical_round_trips_and_counts_them():
    frame = pd.DataFrame({"sentence1": ["the car is red", "a dog runs", "the car is red"],
                          "sentence2": ["a red car", "the dog sleeps", "a red car"], "score": [0.9, 0.1, 0.9]})
    forward = SwapTranslator({"the car is red": "das Auto ist rot", "a dog runs": "ein Hund läuft"})
    backward = SwapTranslator({"das Auto ist rot": "the automobile is red", "ein Hund läuft": "A  dog RUNS"})
    result = back_translate(frame, "pair_score", forward, backward)
    check_report(result, 3)
    assert forward.calls == [["the car is red", "a red car", "a dog runs", "the dog sleeps"]]  # each text once
    assert result.report["texts_translated"] == 4
    assert result.report["texts_identical_dropped"] == 3  # case and spacing changes do not count
    assert result.report["rows_added"] == 2
    assert result.report["skipped"] == {"back-translation identical to the source": 1}
    assert result.added["sentence1"].tolist() == ["the automobile is red"] * 2
    assert result.added["sentence2"].tolist() == ["a red car"] * 2  # unchanged side kept
    assert result.added["score"].tolist() == [0.9, 0.9]
    assert result.added[augment.SOURCE_ROW_COLUMN].tolist() == [0, 2]


def test_back_translate_fraction_and_translator_errors():
    frame = pd.DataFrame({"text": [f"text number {i}" for i in range(10)]})
    upper = SwapTranslator({})
    changer = type("Changer", (), {"translate": lambda self, texts: [t + " again" for t in texts]})()
    result = back_translate(frame, "unlabeled", upper, changer, fraction=0.3, seed=1)
    assert result.report["rows_added"] == 3
    assert result.report["skipped"] == {"not sampled (fraction)": 7}
    assert back_translate(frame, "unlabeled", upper, changer, fraction=0.3, seed=1).frame.equals(result.frame)
    broken = type("Broken", (), {"translate": lambda self, texts: texts[:-1]})()
    with pytest.raises(ValueError, match="returned 9 texts for 10 inputs"):
        back_translate(frame, "unlabeled", broken, changer)


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory):
    """A real Marian model and tokenizer, tiny and with random weights, built offline."""
    sentencepiece = pytest.importorskip("sentencepiece")
    folder = tmp_path_factory.mktemp("marian")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(["the car is red", "a dog runs fast", "das auto ist rot", "ein hund läuft schnell",
                                 "the woman plays the guitar", "die frau spielt gitarre"] * 5) + "\n")
    sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "spm"), vocab_size=40,
                                             model_type="unigram", hard_vocab_limit=False, character_coverage=1.0,
                                             minloglevel=2)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / "spm.model"))
    vocab = {"</s>": 0, "<unk>": 1}
    for index in range(processor.get_piece_size()):
        vocab.setdefault(processor.id_to_piece(index), len(vocab))
    vocab.pop("<s>", None)
    vocab = {piece: i for i, piece in enumerate(vocab)}
    vocab["<pad>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))

    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    model_dir = folder / "model"
    MarianTokenizer(source_spm=str(folder / "spm.model"), target_spm=str(folder / "spm.model"),
                    vocab=str(folder / "vocab.json")).save_pretrained(model_dir)
    torch.manual_seed(0)
    config = MarianConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                          max_position_embeddings=64, pad_token_id=vocab["<pad>"], eos_token_id=0,
                          decoder_start_token_id=vocab["<pad>"], forced_eos_token_id=0)
    MarianMTModel(config).save_pretrained(model_dir)
    return model_dir


def test_marian_translator_end_to_end(tiny_marian):
    forward = MarianTranslator(tiny_marian, batch_size=2, max_length=8)
    backward = MarianTranslator(tiny_marian, batch_size=3, max_length=8)
    texts = ["the car is red", "a dog runs fast", "the woman plays the guitar"]
    output = forward.translate(texts)
    assert len(output) == len(texts) and all(isinstance(t, str) for t in output)
    assert forward.translate(texts) == output  # greedy decoding: deterministic
    assert forward.translate(list(reversed(texts))) == list(reversed(output))  # order kept across batches
    assert forward.translate([]) == []

    frame = pd.DataFrame({"sentence1": texts, "sentence2": ["a red car", "the dog sleeps", "a guitar"],
                          "label": [1, 0, 1]})
    result = back_translate(frame, "pair_binary", forward, backward)
    check_report(result, 3)
    report = result.report
    assert report["texts_translated"] == 6
    assert report["rows_added"] + sum(report["skipped"].values()) == 3
    assert report["settings"]["forward"] == f"MarianTranslator({str(tiny_marian)!r})"
    assert result.added["label"].tolist() == frame["label"].iloc[result.added["source_row"].tolist()].tolist()


# --- SimCSE -----------------------------------------------------------------------------------


def test_simcse_pairs():
    frame = pd.DataFrame({"text": ["a cat sits", "a dog barks ", "a cat sits", "birds fly"]})
    result = simcse_pairs(frame)
    json.dumps(result.report)
    assert list(result.frame[["anchor", "positive"]].itertuples(index=False, name=None)) == [
        ("a cat sits", "a cat sits"), ("a dog barks", "a dog barks"), ("birds fly", "birds fly")]
    assert result.frame[augment.SOURCE_ROW_COLUMN].tolist() == [0, 1, 3]
    assert result.report["rows_in"] == 4 and result.report["rows_added"] == 3 == len(result.frame)
    assert result.report["rows_removed"] == 1 and result.report["removed"] == {"duplicate text": 1}
    assert simcse_pairs(["x", "y"]).frame["anchor"].tolist() == ["x", "y"]
    with pytest.raises(ValueError, match=r"row 1 .*non-empty text"):
        simcse_pairs(["fine", "   ", "also fine"])
    with pytest.raises(ValueError, match=r"row 2 .*file row 4"):
        simcse_pairs(pd.DataFrame({"text": ["a", "b", None], "_row": [2, 3, 4]}))


# --- rule-based synthetic pairs ---------------------------------------------------------------

SUPPORT = pd.DataFrame({"sentence1": ["How do I login to my account?", "Reset my password please"],
                        "sentence2": ["Where is the Login page", "I forgot my password"], "label": [1, 1]})


def test_regex_rule_makes_positive_pairs():
    rules = [{"kind": "regex", "pattern": r"\bpassword\b", "replacement": "passcode", "label": "positive"}]
    result = synthesize_pairs(SUPPORT, "pair_binary", rules)
    check_report(result, 2)
    assert list(result.added[["sentence1", "sentence2", "label"]].itertuples(index=False, name=None)) == [
        ("Reset my password please", "Reset my passcode please", 1),
        ("I forgot my password", "I forgot my passcode", 1)]
    assert result.added[augment.AUGMENTATION_COLUMN].tolist() == ["rule:regex#0"] * 2
    assert result.added[augment.SOURCE_ROW_COLUMN].tolist() == [1, 1]
    assert result.report["per_rule"][0]["pairs"] == 2


def test_swap_rule_makes_negative_pairs_and_keeps_case():
    rules = [{"kind": "swap", "words": ["login", "logout"], "label": "negative", "name": "login-logout"}]
    result = synthesize_pairs(SUPPORT.rename(columns={"label": "score"}), "pair_score", rules)
    check_report(result, 2)
    assert list(result.added[["sentence1", "sentence2", "score"]].itertuples(index=False, name=None)) == [
        ("How do I login to my account?", "How do I logout to my account?", 0.0),
        ("Where is the Login page", "Where is the Logout page", 0.0)]
    assert set(result.added[augment.AUGMENTATION_COLUMN]) == {"rule:login-logout"}


TEMPLATE_SLOTS = {"action": [["reset", "change"], "delete"], "object": ["password", "account"]}


def test_template_rules_positive_same_meaning_negative_one_slot_differs():
    rules = [{"kind": "template", "template": "how do I {action} my {object}", "slots": TEMPLATE_SLOTS,
              "label": "positive"},
             {"kind": "template", "template": "how do I {action} my {object}", "slots": TEMPLATE_SLOTS,
              "label": "negative"}]
    result = synthesize_pairs(SUPPORT.iloc[0:0], "pair_binary", rules)
    check_report(result, 0)
    pairs = {(a, b): label for a, b, label in result.added[["sentence1", "sentence2", "label"]].itertuples(
        index=False, name=None)}
    assert pairs[("how do I reset my password", "how do I change my password")] == 1
    assert pairs[("how do I reset my account", "how do I change my account")] == 1
    assert sum(label == 1 for label in pairs.values()) == 2
    negatives = [pair for pair, label in pairs.items() if label == 0]
    assert len(negatives) == 4  # 2 objects x 1 action change + 2 actions x 1 object change
    for a, b in negatives:
        differing = [(x, y) for x, y in zip(a.split(), b.split()) if x != y]
        assert len(differing) == 1 and {"reset", "change"} != set(differing[0])
    assert result.added[augment.SOURCE_ROW_COLUMN].isna().all()


def test_paraphrase_templates_give_positives_and_triplets_combine_rules():
    rules = [{"kind": "template", "templates": ["how do I {action} my {object}", "{action} {object}"],
              "slots": TEMPLATE_SLOTS, "label": "positive", "name": "paraphrase"},
             {"kind": "template", "template": "how do I {action} my {object}", "slots": TEMPLATE_SLOTS,
              "label": "negative", "name": "other-intent"}]
    triplets = pd.DataFrame({"anchor": ["q"], "positive": ["p"], "negative": ["n"]})
    result = synthesize_pairs(triplets, "triplet", rules, seed=1)
    check_report(result, 1)
    added = result.added
    assert len(added) > 0 and set(added[augment.AUGMENTATION_COLUMN]) == {"rule:paraphrase+other-intent"}
    actions = {"reset": 0, "change": 0, "delete": 1}
    for anchor, positive, negative in added[["anchor", "positive", "negative"]].itertuples(index=False, name=None):
        meaning = lambda text: ({actions[w] for w in text.split() if w in actions},
                                {w for w in text.split() if w in ("password", "account")})
        assert meaning(anchor) == meaning(positive) and meaning(anchor) != meaning(negative)
    assert synthesize_pairs(triplets, "triplet", rules, seed=1).frame.equals(result.frame)


def test_retrieval_keeps_positives_and_pair_class_needs_label_values():
    rules = [{"kind": "regex", "pattern": "password", "replacement": "passcode", "label": "positive"},
             {"kind": "swap", "words": ["login", "logout"], "label": "negative"}]
    retrieval = pd.DataFrame({"anchor": SUPPORT["sentence1"], "positive": SUPPORT["sentence2"]})
    result = synthesize_pairs(retrieval, "retrieval", rules)
    check_report(result, 2)
    assert result.report["skipped"] == {"negative pair (retrieval keeps positives only)": 2}
    assert result.added["positive"].str.contains("passcode").all()

    classes = SUPPORT.assign(label=["entailment", "entailment"])
    with pytest.raises(ValueError, match="label_values"):
        synthesize_pairs(classes, "pair_class", rules)
    result = synthesize_pairs(classes, "pair_class", rules,
                              label_values={"positive": "entailment", "negative": "contradiction"})
    assert sorted(result.added["label"]) == ["contradiction"] * 2 + ["entailment"] * 2
    with pytest.raises(ValueError, match="unlabeled"):
        synthesize_pairs(pd.DataFrame({"text": ["a"]}), "unlabeled", rules)


def test_rule_outputs_are_deduplicated_capped_and_conflicts_dropped():
    frame = pd.DataFrame({"sentence1": ["login now", "please help"], "sentence2": ["logout now", "x"],
                          "label": [0, 1]})
    rules = [{"kind": "swap", "words": ["login", "logout"], "label": "negative"},  # one pair (made twice), a row
             {"kind": "swap", "words": ["please", "kindly"], "label": "positive"},
             {"kind": "swap", "words": ["please", "kindly"], "label": "negative"},  # contradicts the one above
             {"kind": "regex", "pattern": "now", "replacement": "today", "label": "positive"},  # 2 pairs, cap 1
             {"kind": "regex", "pattern": "help", "replacement": "aid", "label": "positive"},
             {"kind": "regex", "pattern": "help", "replacement": "aid", "label": "positive"}]  # the same again
    result = synthesize_pairs(frame, "pair_binary", rules, max_pairs_per_rule=1, seed=0)
    check_report(result, 2)
    assert result.report["skipped"] == {"already in the data": 1, "rules disagree on the label": 2,
                                        "over max_pairs_per_rule": 1, "made twice": 2}
    assert result.report["rows_added"] == 2
    assert ("please help", "please aid") in set(result.added[["sentence1", "sentence2"]].itertuples(
        index=False, name=None))


@pytest.mark.parametrize("rule, message", [
    ({"kind": "lookup"}, r"rule 0, field 'kind'"),
    ({"kind": "regex", "pattern": "(", "replacement": "x", "label": "positive"}, r"rule 0 \(regex\), field 'pattern'"),
    ({"kind": "regex", "pattern": "a", "replacement": r"\2", "label": "positive"},
     r"rule 0 \(regex\), field 'replacement'"),
    ({"kind": "regex", "pattern": "a", "label": "positive"}, r"field 'replacement': is missing"),
    ({"kind": "swap", "words": ["login"], "label": "negative"}, r"rule 0 \(swap\), field 'words'"),
    ({"kind": "swap", "words": ["a", "b"], "label": "neg"}, r"field 'label'"),
    ({"kind": "swap", "words": ["a", "b"], "label": "negative", "word": 1}, r"field 'word': is not a field"),
    ({"kind": "template", "template": "{a} {b}", "slots": {"a": ["x", "y"]}, "label": "negative"},
     r"field 'template'.*\['b'\]"),
    ({"kind": "template", "template": "{a}", "slots": {"a": ["x", "y"]}, "label": "positive"},
     r"field 'slots': a positive template rule"),
    ({"kind": "template", "template": "{a}", "slots": {"a": []}, "label": "negative"}, r"field 'slots.a'"),
])
def test_rule_validation_names_index_and_field(rule, message):
    good = {"kind": "swap", "words": ["login", "logout"], "label": "negative"}
    with pytest.raises(RuleError, match=message.replace("rule 0", "rule 1")
                       if message.startswith("rule 0") else message):
        validate_rules([good, rule])


def test_rules_must_be_a_list():
    with pytest.raises(RuleError, match="list"):
        validate_rules({"kind": "swap"})
    assert [r.name for r in validate_rules([{"kind": "swap", "words": ["a", "b"], "label": "positive",
                                             "name": "ab"}])] == ["ab"]
