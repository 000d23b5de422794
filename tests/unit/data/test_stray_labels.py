"""A label value found in a single row must not silently decide the shape (issue 19): auto
detection refuses it, naming the file, row, column and value and the two ways out."""

from __future__ import annotations

import pytest

from sttune_helpers.data import DataError, detect_shape, inspect_data, read_table

HEADER = "sentence1,sentence2,label\n"


def _binary_rows(n: int = 30) -> str:
    return "".join(f"first text {i},second text {i},{i % 2}\n" for i in range(n))


def test_a_stray_label_in_a_binary_column_is_refused_with_its_row(tmp_path):
    path = tmp_path / "stray.csv"
    path.write_text(HEADER + _binary_rows() + "odd one,out,2\n")
    with pytest.raises(DataError) as caught:
        detect_shape(read_table(path), "auto", str(path))
    message = str(caught.value)
    assert f"{path}, row 32, column 'label': label '2'" in message
    assert "data.shape=pair_binary" in message and "data.on_invalid: drop" in message
    assert "data.shape=pair_class" in message
    inspection = inspect_data(str(path))
    assert not inspection.usable and "row 32" in inspection.fatal


def test_a_single_fractional_label_does_not_make_a_score(tmp_path):
    path = tmp_path / "half.csv"
    path.write_text(HEADER + _binary_rows() + "odd one,out,0.5\n")
    with pytest.raises(DataError, match=r"row 32, column 'label': label '0.5' is the only fractional value"):
        detect_shape(read_table(path), "auto", str(path))


def test_an_explicit_pair_class_shape_accepts_the_stray_label(tmp_path):
    path = tmp_path / "stray.csv"
    path.write_text(HEADER + _binary_rows() + "odd one,out,2\n")
    assert detect_shape(read_table(path), "pair_class", str(path)).shape == "pair_class"
    inspection = inspect_data(str(path), shape="pair_class")
    assert inspection.shape == "pair_class" and inspection.fatal is None and not inspection.problems


def test_a_normal_binary_file_is_unaffected(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_text(HEADER + _binary_rows())
    assert detect_shape(read_table(path), "auto", str(path)).shape == "pair_binary"


def test_a_normal_three_class_file_is_unaffected(tmp_path):
    path = tmp_path / "classes.csv"
    labels = ("entailment", "neutral", "contradiction")
    path.write_text(HEADER + "".join(f"premise {i},hypothesis {i},{labels[i % 3]}\n" for i in range(30)))
    assert detect_shape(read_table(path), "auto", str(path)).shape == "pair_class"
    path.write_text(HEADER + "a,b,x\nc,d,x\ne,f,y\ng,h,y\ni,j,z\nk,l,z\n")  # each class with 2 rows
    assert detect_shape(read_table(path), "auto", str(path)).shape == "pair_class"
