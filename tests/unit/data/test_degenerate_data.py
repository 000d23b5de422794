"""Degenerate data (issue 19, class 4): repeated ids, repeated header names, JSON values that are not
texts, a score column with one value, triplets whose texts repeat. Each is refused with its file, row
and column, or, with data.on_invalid=drop, dropped and counted with its reason."""

import json
import shutil

import pytest
from conftest import DATA

from sttune_helpers.config import DataConfig
from sttune_helpers.data import DataError, inspect_data, prepare_data, read_table

SCIFACT = DATA / "scifact-mini"


def beir_with_a_repeated_id(tmp_path, name):
    """scifact-mini with the first record of ``name`` repeated at its end under another text."""
    folder = tmp_path / "beir"
    shutil.copytree(SCIFACT, folder)
    lines = (folder / name).read_text().splitlines()
    first = json.loads(lines[0])
    lines.append(json.dumps({**first, "text": "a different text under the same id"}))
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder, first["_id"], len(lines)


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_a_repeated_beir_id_names_the_file_both_lines_and_the_id(tmp_path, name):
    folder, record_id, last_line = beir_with_a_repeated_id(tmp_path, name)
    with pytest.raises(DataError) as raised:
        prepare_data(DataConfig(source=str(folder)), seed=0)
    assert (f"{name}, row {last_line}, column '_id': duplicate _id, {record_id!r} is already on line 1"
            in str(raised.value))


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl"])
def test_a_repeated_beir_id_is_dropped_keeping_the_first(tmp_path, name):
    folder, record_id, last_line = beir_with_a_repeated_id(tmp_path, name)
    prepared = prepare_data(DataConfig(source=str(folder), on_invalid="drop"), seed=0)
    entries = [d for d in prepared.report["dropped"] if d["reason"] == "_id: duplicate _id"]
    assert [(d["split"], d["count"], d["examples"][0]["row"]) for d in entries] == [(name[:-6], 1, last_line)]
    table = prepared.retrieval.corpus if name == "corpus.jsonl" else prepared.retrieval.queries
    assert table[record_id] != "a different text under the same id"


@pytest.mark.parametrize("name, header", [("pairs.csv", "sentence1,sentence2,sentence1,score"),
                                          ("pairs.tsv", "sentence1\tsentence2\tsentence1\tscore")])
def test_a_repeated_header_name_is_refused_naming_it(tmp_path, name, header):
    delimiter = "," if name.endswith(".csv") else "\t"
    path = tmp_path / name
    path.write_text(header + "\n" + delimiter.join(["a", "b", "c", "1"]) + "\n")
    with pytest.raises(DataError) as raised:
        read_table(path)
    message = str(raised.value)
    assert f"{name}, row 1, column 'sentence1': the header names this column 2 times (fields 1, 3)" in message
    assert "sentence1.1" not in message


def pairs_jsonl(tmp_path, odd_values):
    """30 scored pairs, then one pair per odd sentence2 value."""
    rows = [{"sentence1": f"first {i}", "sentence2": f"second {i}", "score": i % 5} for i in range(30)]
    rows += [{"sentence1": f"odd {i}", "sentence2": value, "score": 1} for i, value in enumerate(odd_values)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_json_value_that_is_not_a_string_is_refused_as_a_text(tmp_path):
    path = pairs_jsonl(tmp_path, [{"a": 1}, ["x", "y"], 42, True])
    with pytest.raises(DataError) as raised:
        prepare_data(DataConfig(source=str(path)), seed=0)
    message = str(raised.value)
    for line, found in ((31, 'object {"a": 1}'), (32, 'array ["x", "y"]'), (33, "number 42"), (34, "boolean true")):
        assert f"pairs.jsonl, row {line}, column 'sentence2': expected a text (a JSON string), found a JSON {found}" \
            in message
    assert "row 3," not in message  # numbers are fine as scores


def test_a_json_value_that_is_not_a_string_is_dropped_with_its_reason(tmp_path):
    path = pairs_jsonl(tmp_path, [{"a": 1}, ["x", "y"]])
    prepared = prepare_data(DataConfig(source=str(path), on_invalid="drop"), seed=0)
    reasons = {d["reason"]: d["count"] for d in prepared.report["dropped"]}
    assert reasons == {"sentence2: expected a text (a JSON string)": 2}
    texts = {t for f in prepared.splits.values() for t in f["sentence2"]}
    assert "{'a': 1}" not in texts and len(texts) == 30


def test_a_beir_document_whose_text_is_an_object_is_refused(tmp_path):
    folder = tmp_path / "beir"
    shutil.copytree(SCIFACT, folder)
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), "text": {"abstract": "x"}, "metadata": {"kept": True}})
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as raised:
        prepare_data(DataConfig(source=str(folder)), seed=0)
    assert "corpus.jsonl, row 2, column 'text': expected a text (a JSON string), found a JSON object" \
        in str(raised.value)
    assert "metadata" not in str(raised.value)


def test_a_score_column_with_a_single_value_is_refused(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("sentence1,sentence2,score\n" + "".join(f"a{i},b{i},3\n" for i in range(30)))
    with pytest.raises(DataError) as raised:
        prepare_data(DataConfig(source=str(path)), seed=0)
    assert "pairs.csv, column 'score': every score is 3 (30 rows)" in str(raised.value)
    assert "Spearman correlation is undefined" in str(raised.value)


def test_inspect_names_a_score_column_with_a_single_value(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("sentence1,sentence2,score\n" + "".join(f"a{i},b{i},0.5\n" for i in range(10)))
    problems = [str(p) for p in inspect_data(str(path)).problems]
    assert any("pairs.csv, column 'score': every score is 0.5 (10 rows)" in p for p in problems)


def triplets_csv(tmp_path):
    rows = [f"anchor {i},positive {i},negative {i}" for i in range(30)]
    rows += ["same,same,other", "a,b, b "]
    path = tmp_path / "triplets.csv"
    path.write_text("anchor,positive,negative\n" + "\n".join(rows) + "\n")
    return path


def test_a_triplet_whose_texts_repeat_is_a_row_problem(tmp_path):
    with pytest.raises(DataError) as raised:
        prepare_data(DataConfig(source=str(triplets_csv(tmp_path))), seed=0)
    message = str(raised.value)
    assert "triplets.csv, row 32, column 'positive': same text as the anchor" in message
    assert "triplets.csv, row 33, column 'negative': same text as the positive" in message
    assert "(columns 'positive' and 'negative')" in message


def test_a_triplet_whose_texts_repeat_is_dropped_with_its_reason(tmp_path):
    prepared = prepare_data(DataConfig(source=str(triplets_csv(tmp_path)), on_invalid="drop"), seed=0)
    reasons = {d["reason"]: d["count"] for d in prepared.report["dropped"]}
    assert reasons == {"positive: same text as the anchor": 1, "negative: same text as the positive": 1}
    assert sum(len(f) for f in prepared.splits.values()) == 30
