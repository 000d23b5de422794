"""The data stage on every task shape, on samples of the real data sets (tests/data, see its README)."""

import json

import pandas as pd
import pytest
from conftest import DATA

from sttune_helpers.cli import main as sttune_main
from sttune_helpers.config import DataConfig
from sttune_helpers.data import (
    DataError,
    deduplicate,
    detect_shape,
    inspect_data,
    load_split,
    normalise_text,
    prepare_data,
    read_table,
    write_splits,
)
from sttune_helpers.rundir import RunDir

MRPC = DATA / "mrpc-train-sample.tsv"
SNLI = DATA / "snli-sample.tsv"
SCIFACT = DATA / "scifact-mini"


def snli_triplets(path):
    """(premise, entailment, contradiction) for premises that have both, as the README describes."""
    frame = pd.read_csv(SNLI, sep="\t", dtype=str, keep_default_na=False)
    rows = []
    for _, group in frame.groupby("premise_id"):
        by_label = dict(zip(group["label"], group["sentence2"]))
        if "entailment" in by_label and "contradiction" in by_label:
            rows.append({"anchor": group["sentence1"].iloc[0], "positive": by_label["entailment"],
                         "negative": by_label["contradiction"]})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path, len(rows)


def test_each_shape_is_detected_with_a_reason(tmp_path):
    triplets, _ = snli_triplets(tmp_path / "triplets.csv")
    faq = tmp_path / "faq.csv"
    faq.write_text("question,answer\nhow do I reset my password,use the reset link\n")
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nfirst sentence\nsecond sentence\n")
    expected = {MRPC: "pair_binary", SNLI: "pair_class", triplets: "triplet", faq: "retrieval",
                texts: "unlabeled"}
    for path, shape in expected.items():
        decided = detect_shape(read_table(path))
        assert decided.shape == shape, (path, decided)
        assert decided.reason
    assert detect_shape(read_table(faq)).renamed == {"question": "anchor", "answer": "positive"}
    assert "0 or 1" in detect_shape(read_table(MRPC)).reason
    assert "3 label values" in detect_shape(read_table(SNLI)).reason


def test_pair_binary_mrpc():
    prepared = prepare_data(DataConfig(source=str(MRPC)), seed=0)
    assert prepared.shape == "pair_binary"
    assert prepared.report["labels"]["names"] == ["0", "1"]
    assert prepared.report["labels"]["distribution_read"]["all"] == {"0": 90, "1": 110}
    assert sum(len(f) for f in prepared.splits.values()) == 200
    assert set(prepared.splits["train"]["label"]) == {0, 1}


def test_pair_class_snli_with_declared_labels_and_premise_groups():
    config = DataConfig(source=str(SNLI), labels=["entailment", "neutral", "contradiction"], group_by="premise_id",
                        validation_fraction=0.2, test_fraction=0.2)
    prepared = prepare_data(config, seed=0)
    assert prepared.shape == "pair_class"
    assert prepared.report["labels"]["names"] == ["entailment", "neutral", "contradiction"]
    premises = {s: set(f["sentence1"]) for s, f in prepared.splits.items()}
    assert not (premises["train"] & premises["test"]) and not (premises["train"] & premises["validation"])
    assert all(len(f) for f in prepared.splits.values())


def test_label_outside_the_declared_set_is_named(tmp_path):
    bad = tmp_path / "nli.tsv"
    bad.write_text(SNLI.read_text().replace("\tneutral\n", "\tmaybe\n", 1))
    with pytest.raises(DataError, match=r"nli.tsv, row \d+, column 'label': label 'maybe' is outside the declared "
                                        r"set \{entailment, neutral, contradiction\}"):
        prepare_data(DataConfig(source=str(bad), labels=["entailment", "neutral", "contradiction"]), seed=0)
    binary = tmp_path / "binary.csv"
    binary.write_text("sentence1,sentence2,label\na,b,1\nc,d,0\ne,f,2\n")
    with pytest.raises(DataError, match=r"binary.csv, row 4, column 'label': label '2' is outside the declared set "
                                        r"\{0, 1\}"):
        prepare_data(DataConfig(source=str(binary), shape="pair_binary"), seed=0)


def test_triplets_keep_anchor_and_positive_in_one_split(tmp_path):
    path, n = snli_triplets(tmp_path / "triplets.csv")
    prepared = prepare_data(DataConfig(source=str(path), validation_fraction=0.2, test_fraction=0.2), seed=1)
    assert prepared.shape == "triplet"
    assert sum(len(f) for f in prepared.splits.values()) == n
    anchors = {s: set(f["anchor"]) for s, f in prepared.splits.items()}
    assert not (anchors["train"] & anchors["test"])


def test_beir_scifact_retrieval(tmp_path):
    prepared = prepare_data(DataConfig(source=str(SCIFACT)), seed=0)
    assert prepared.shape == "retrieval" and prepared.report["source_kind"] == "beir"
    assert prepared.report["counts"]["train"]["rows_read"] == 32 and len(prepared.splits["test"]) == 13
    assert prepared.report["retrieval"]["documents"] == 88
    queries = {s: set(f["anchor"]) for s, f in prepared.splits.items()}
    assert not (queries["train"] & queries["validation"]) and queries["validation"]  # carved out by query
    run = RunDir(tmp_path / "run")
    write_splits(run, prepared)
    corpus = [json.loads(line) for line in (run.data_dir / "corpus.jsonl").read_text().splitlines()]
    qrels = [json.loads(line) for line in (run.data_dir / "qrels.jsonl").read_text().splitlines()]
    assert len(corpus) == 88 and {q["split"] for q in qrels} == {"train", "validation", "test"}
    assert {q["doc_id"] for q in qrels} <= {d["_id"] for d in corpus}
    assert load_split(run, "train").column_names == ["anchor", "positive"]


def test_beir_qrels_pointing_at_a_missing_document_or_query(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (folder / name).write_text((SCIFACT / name).read_text())
    test = (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()
    first_query = test[1].split("\t")[0]
    test[2] = f"{first_query}\tno-such-doc\t1"
    test.append("no-such-query\t" + test[1].split("\t")[1] + "\t1")
    (folder / "qrels" / "test.tsv").write_text("\n".join(test) + "\n")
    (folder / "qrels" / "train.tsv").write_text((SCIFACT / "qrels" / "train.tsv").read_text())
    with pytest.raises(DataError) as raised:
        prepare_data(DataConfig(source=str(folder)), seed=0)
    message = str(raised.value)
    assert "test.tsv, row 3, column 'corpus-id': document 'no-such-doc' is not in corpus.jsonl" in message
    assert f"test.tsv, row {len(test)}, column 'query-id': query 'no-such-query' is not in queries.jsonl" in message


def test_unlabeled_text(tmp_path):
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": f"sentence number {i}"}) + "\n" for i in range(30))
                    + json.dumps({"text": "Sentence number 3!"}) + "\n")
    prepared = prepare_data(DataConfig(source=str(path)), seed=0)
    assert prepared.shape == "unlabeled"
    assert prepared.report["duplicates"]["all"] == {
        "duplicate after normalising case, whitespace and punctuation": 1}
    assert sum(len(f) for f in prepared.splits.values()) == 30


def test_huggingface_save_to_disk(tmp_path):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=["entailment", "neutral", "contradiction"])})
    frame = pd.read_csv(SNLI, sep="\t", dtype=str, keep_default_na=False)
    names = features["label"].names

    def part(rows):
        return Dataset.from_dict({"premise": list(rows["sentence1"]), "hypothesis": list(rows["sentence2"]),
                                  "label": [names.index(v) for v in rows["label"]]}, features=features)

    DatasetDict({"train": part(frame.iloc[:45]), "validation": part(frame.iloc[45:51]),
                 "test": part(frame.iloc[51:])}).save_to_disk(str(tmp_path / "nli"))
    prepared = prepare_data(DataConfig(source=str(tmp_path / "nli"), labels=names, deduplicate="off"), seed=0)
    assert prepared.shape == "pair_class" and prepared.report["source_kind"] == "hf_disk"
    assert {s: len(f) for s, f in prepared.splits.items()} == {"train": 45, "validation": 6, "test": 9}
    assert prepared.report["columns"]["renamed"] == {"premise": "sentence1", "hypothesis": "sentence2"}


def test_parquet_source_names_record_numbers(tmp_path):
    frame = pd.DataFrame({"sentence1": ["a", "b", "c"], "sentence2": ["x", "", "z"], "score": [1.0, 2.0, 3.0]})
    frame.to_parquet(tmp_path / "pairs.parquet")
    with pytest.raises(DataError, match=r"pairs.parquet, row 2, column 'sentence2': empty text"):
        prepare_data(DataConfig(source=str(tmp_path / "pairs.parquet")), seed=0)


def test_normalised_and_swapped_duplicates(tmp_path):
    frame = pd.DataFrame({"_row": [2, 3, 4, 5, 6], "sentence1": ["A cat sits.", "a  cat sits", "the dog", "the dog",
                                                                   "A cat sits."],
                          "sentence2": ["The mat", "the mat!", "a cat sits", "the bird", "The mat"],
                          "score": [0.4, 0.4, 0.2, 0.1, 0.9]})
    frame.loc[2, ["sentence1", "sentence2"]] = ["The mat", "A cat sits."]  # swapped copy of row 2
    kept, dropped, stats = deduplicate(frame, "pair_score", "normalized", "all")
    assert list(kept["_row"]) == [2, 5]
    reasons = {d.reason: d.count for d in dropped}
    assert reasons == {"exact duplicate (first kept)": 1,
                       "duplicate after normalising case, whitespace and punctuation": 1,
                       "same pair in swapped order (b, a)": 1}
    assert stats["of which with a different label or score than the kept row"] == 2
    assert list(deduplicate(frame, "pair_score", "exact", "all")[0]["_row"]) == [2, 3, 4, 5]
    assert normalise_text("  Hello,\tWORLD! ") == "hello world"


def test_stsb_cross_split_overlap_is_reported_and_removed_on_request():
    report = prepare_data(DataConfig(source="embedded:stsb"), seed=0).report
    assert report["cross_split_overlap"]["train-test"]["items"] == 12
    # 7 when only case and whitespace are ignored (data README); one more pair differs only in punctuation.
    assert report["cross_split_overlap"]["train-validation"]["items"] == 8
    assert report["cross_split_overlap"]["validation-test"]["items"] == 3
    assert report["cross_split_overlap"]["train-test"]["texts"] > 200  # single sentences are shared too
    cleaned = prepare_data(DataConfig(source="embedded:stsb", remove_cross_split_overlap=True), seed=0)
    assert cleaned.report["cross_split_overlap_removed"] == {"train": 19, "validation": 3}
    assert len(cleaned.splits["test"]) == len(prepare_data(DataConfig(), seed=0).splits["test"])


def test_decontamination_drops_mrpc_pairs_that_are_stsb_test_pairs():
    prepared = prepare_data(DataConfig(source=str(MRPC), decontaminate=["embedded:stsb:test"]), seed=0)
    assert prepared.report["counts"]["all"]["contaminated_dropped"] == 127
    assert sum(len(f) for f in prepared.splits.values()) == 73
    assert prepared.report["decontamination"]["dropped"]["all"] == {
        "occurs in evaluation set embedded:stsb:test (data.decontaminate)": 127}


def test_inspect_reports_problems_and_exit_status(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nhow do I log in,use your email\n ,an answer without a question\n")
    inspection = inspect_data(str(bad))
    assert inspection.shape == "retrieval" and not inspection.usable
    assert str(inspection.problems[0]) == f"{bad}, row 3, column 'anchor': empty text (or only whitespace)"
    assert sttune_main(["data", "inspect", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "shape: retrieval" in out and "row 3, column 'anchor'" in out and "usable: no" in out

    assert sttune_main(["data", "inspect", str(MRPC)]) == 0
    out = capsys.readouterr().out
    assert "shape: pair_binary" in out and "usable: yes" in out

    mapped = tmp_path / "mapped.csv"
    # Enough rows for the data stage's validation and test splits: inspect says "usable: yes" only
    # where the stage passes (two rows would leave them empty).
    mapped.write_text("left,right,sim\n" + "".join(f"text {i},other {i},{i % 5 / 4}\n" for i in range(30)))
    assert sttune_main(["data", "inspect", str(mapped), "--map", "left=sentence1", "--map", "right=sentence2",
                        "--map", "sim=score"]) == 0
    assert "shape: pair_score" in capsys.readouterr().out
    assert sttune_main(["data", "inspect", str(tmp_path / "missing.csv")]) == 1
    assert "data source does not exist" in capsys.readouterr().out
