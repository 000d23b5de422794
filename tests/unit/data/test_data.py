import json

import pytest

from sttune_helpers.config import DataConfig
from sttune_helpers.data import (
    DataError,
    detect_score_scale,
    load_split,
    prepare_data,
    read_table,
    resolve_source,
    write_splits,
)
from sttune_helpers.rundir import RunDir


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def pairs_csv(tmp_path, rows, header="sentence1,sentence2,score", name="pairs.csv"):
    return write(tmp_path / name, header + "\n" + "\n".join(rows) + "\n")


def test_embedded_stsb_prepares_with_its_own_splits():
    prepared = prepare_data(DataConfig(), seed=1)
    counts = prepared.report["counts"]
    assert counts["train"]["rows_read"] == 5749
    assert counts["validation"]["rows_read"] == 1500
    assert counts["test"]["rows_read"] == 1379
    assert prepared.report["score_scale"] == {"original": [0.0, 5.0], "detected": True, "normalised_to": [0.0, 1.0]}
    for split, frame in prepared.splits.items():
        assert frame["score"].between(0, 1).all()
        assert counts[split]["rows"] == len(frame)
        assert len(frame) + counts[split]["duplicates_dropped"] == counts[split]["rows_read"]
    assert prepared.report["split_method"] == "given splits"


def test_csv_with_column_mapping_and_1_to_5_scale(tmp_path):
    rows = [f"a{i},b{i},{1 + i % 5}" for i in range(40)]
    path = pairs_csv(tmp_path, rows, header="left,right,sim")
    prepared = prepare_data(DataConfig(source=str(path), columns={"left": "sentence1", "right": "sentence2",
                                                                  "sim": "score"}), seed=0)
    assert prepared.report["score_scale"]["original"] == [1.0, 5.0]
    sizes = {s: len(f) for s, f in prepared.splits.items()}
    assert sum(sizes.values()) == 40 and sizes["test"] >= 1 and sizes["validation"] >= 1


def test_jsonl_source(tmp_path):
    lines = [json.dumps({"sentence1": f"q{i}", "sentence2": f"d{i}", "score": i / 40}) for i in range(40)]
    path = write(tmp_path / "pairs.jsonl", "\n".join(lines) + "\n")
    prepared = prepare_data(DataConfig(source=str(path)), seed=0)
    assert prepared.report["score_scale"]["original"] == [0.0, 1.0]


def test_group_split_keeps_each_sentence_in_one_split(tmp_path):
    # Sentences repeat across rows (s0 pairs with many); a row-level split would leak them.
    rows = [f"s{i % 7},t{i},{i % 5}" for i in range(70)]
    prepared = prepare_data(DataConfig(source=str(pairs_csv(tmp_path, rows))), seed=3)
    seen = {split: set(f["sentence1"]) | set(f["sentence2"]) for split, f in prepared.splits.items()}
    assert not (seen["train"] & seen["test"]) and not (seen["train"] & seen["validation"])
    assert not (seen["validation"] & seen["test"])
    assert prepared.report["split_method"].startswith("group split")


def test_exact_duplicates_are_dropped_and_reported(tmp_path):
    rows = [f"a{i},b{i},{i % 5}" for i in range(30)] + ["a1,b1,4", "a2,b2,3"]
    prepared = prepare_data(DataConfig(source=str(pairs_csv(tmp_path, rows))), seed=0)
    assert prepared.report["counts"]["all"]["duplicates_dropped"] == 2
    dropped = prepared.report["dropped"][0]
    assert dropped["reason"].startswith("exact duplicate") and dropped["count"] == 2
    assert dropped["examples"][0]["row"] == 32  # header is row 1, so the 31st data row is row 32


def test_missing_column_is_named(tmp_path):
    path = pairs_csv(tmp_path, ["a,b"], header="sentence1,sentence2")
    with pytest.raises(DataError, match=r"pairs.csv, row 1, column 'score': missing column 'score'"
                                        r".*found sentence1, sentence2"):
        prepare_data(DataConfig(source=str(path), shape="pair_score"), seed=0)
    with pytest.raises(DataError, match=r"cannot tell the task shape from the columns sentence1, sentence2"):
        prepare_data(DataConfig(source=str(path)), seed=0)


def test_non_numeric_score_names_file_row_and_column(tmp_path):
    path = pairs_csv(tmp_path, ["a,b,1", "c,d,high", "e,f,2"])
    with pytest.raises(DataError, match=r"pairs.csv, row 3, column 'score': expected a number, got 'high'"):
        prepare_data(DataConfig(source=str(path)), seed=0)


def test_empty_text_is_named(tmp_path):
    path = pairs_csv(tmp_path, ["a,b,1", "  ,d,2"])
    with pytest.raises(DataError, match=r"row 3, column 'sentence1': empty text"):
        prepare_data(DataConfig(source=str(path)), seed=0)


def test_out_of_range_score_with_declared_range(tmp_path):
    path = pairs_csv(tmp_path, ["a,b,1", "c,d,7"])
    with pytest.raises(DataError, match=r"row 3, column 'score': 7 is outside the score range 0-5"):
        prepare_data(DataConfig(source=str(path), score_range=[0, 5]), seed=0)


def test_undetectable_scale_asks_for_score_range():
    with pytest.raises(DataError, match="set data.score_range"):
        detect_score_scale([0.0, 12.0])


def test_drop_mode_reports_every_dropped_row(tmp_path):
    rows = [f"a{i},b{i},{i % 5}" for i in range(30)] + ["x,y,oops", ",z,1"]
    prepared = prepare_data(DataConfig(source=str(pairs_csv(tmp_path, rows)), on_invalid="drop"), seed=0)
    assert prepared.report["counts"]["all"]["invalid_dropped"] == 2
    reasons = {d["reason"]: d["count"] for d in prepared.report["dropped"]}
    assert reasons == {"score: expected a number": 1, "sentence1: empty text (or only whitespace)": 1}
    assert {e["row"] for d in prepared.report["dropped"] for e in d["examples"]} == {32, 33}
    assert sum(len(f) for f in prepared.splits.values()) == 30


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match=r"pairs.csv: file is empty"):
        read_table(write(tmp_path / "pairs.csv", ""))


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="header but no data rows"):
        read_table(write(tmp_path / "pairs.csv", "sentence1,sentence2,score\n"))


def test_wrong_delimiter(tmp_path):
    path = write(tmp_path / "pairs.csv", "sentence1;sentence2;score\na;b;1\n")
    with pytest.raises(DataError, match=r"single column.*contains ';'"):
        read_table(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path / "pairs.csv", b"sentence1,sentence2,score\na,b,1\ncaf\xe9,b,2\n")
    with pytest.raises(DataError, match=r"pairs.csv, row 3: bytes that are not UTF-8"):
        read_table(path)


def test_missing_source(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        resolve_source(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="unknown embedded data set 'nope'"):
        resolve_source("embedded:nope")
    with pytest.raises(DataError, match="no 'tset' split"):
        resolve_source("embedded:stsb:tset")


def test_folder_with_train_and_test_carves_validation(tmp_path):
    pairs_csv(tmp_path, [f"a{i},b{i},{i % 5}" for i in range(50)], name="my-train.csv")
    pairs_csv(tmp_path, [f"c{i},d{i},{i % 5}" for i in range(10)], name="my-test.csv")
    prepared = prepare_data(DataConfig(source=str(tmp_path), validation_fraction=0.2), seed=0)
    assert len(prepared.splits["test"]) == 10
    assert len(prepared.splits["validation"]) == 10 and len(prepared.splits["train"]) == 40


def test_written_splits_load_as_datasets(tmp_path):
    prepared = prepare_data(DataConfig(max_train_rows=20, max_validation_rows=10, max_test_rows=10), seed=0)
    run = RunDir(tmp_path)
    write_splits(run, prepared)
    train = load_split(run, "train")
    assert train.column_names == ["sentence1", "sentence2", "score"] and len(train) == 20
    assert all(0 <= s <= 1 for s in train["score"])
    assert json.loads(run.data_report_path.read_text())["counts"]["train"]["capped_away"] > 0
