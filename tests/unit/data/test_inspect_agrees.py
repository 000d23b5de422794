"""``sttune data inspect`` says "usable: yes" exactly where the data stage (``prepare_data`` with the
default preset's data settings and seed) passes, and otherwise gives the stage's own message."""

from __future__ import annotations

import pytest
from conftest import DATA

from sttune_helpers.config import load_preset
from sttune_helpers.data import DataError, inspect_data, prepare_data

SOURCES = sorted(p for p in DATA.iterdir() if p.name != "README.md")


def test_every_fixture_is_checked():
    assert {p.name for p in SOURCES} >= {"mrpc-train-sample.tsv", "snli-sample.tsv", "scifact-mini"}


@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_inspect_verdict_equals_whether_the_data_stage_passes(source):
    defaults = load_preset("default")
    config = defaults.with_overrides({"data.source": str(source)}).data
    try:
        prepare_data(config, defaults.seed)
        stage_error = None
    except DataError as exc:
        stage_error = str(exc)
    inspection = inspect_data(str(source))
    assert inspection.usable == (stage_error is None), inspection.render()
    if stage_error is not None and not inspection.problems:
        assert inspection.fatal == stage_error


def test_inspect_gives_the_stage_message_where_only_splitting_fails(tmp_path):
    path = tmp_path / "dups.csv"
    path.write_text("anchor,positive\n" + "the same question,the same answer\n" * 20)
    inspection = inspect_data(str(path))
    assert not inspection.usable
    assert inspection.fatal == ("data: the validation split is empty after cleaning; add data or change the "
                                "split fractions")
    assert "usable: no" in inspection.render()
