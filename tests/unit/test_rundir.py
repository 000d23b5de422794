import json
import os

import pytest

from sttune_helpers.core.io import atomic_directory, atomic_write_json
from sttune_helpers.rundir import RunDirError, StageOrderError, check_run_name, open_run


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary left behind


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("interrupted")
    assert (target / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_stage_order_and_manifest(tmp_path):
    run, config = open_run(tmp_path / "r", "data_prep", preset="smoke")
    assert run.config_path.is_file() and config.data.max_train_rows == 128
    with pytest.raises(StageOrderError, match="needs stage 'data_prep'"):
        run.start_stage("loss_selection")
    run.complete_stage("data_prep", rows=3)
    manifest = run.manifest()
    entry = manifest["stages"]["data_prep"]
    assert entry["status"] == "completed" and entry["seconds"] >= 0 and entry["rows"] == 3
    assert manifest["seed"] == 42 and "torch" in manifest["versions"]
    run.start_stage("loss_selection")
    run.complete_stage("loss_selection")
    # Re-running an upstream stage makes everything after it pending again.
    run.start_stage("data_prep")
    assert run.stage_status("loss_selection") == "pending"
    with pytest.raises(StageOrderError, match="needs stage 'data_prep'.*'running'"):
        run.require_completed("training")


def test_open_run_refuses_later_stage_on_a_fresh_directory(tmp_path):
    with pytest.raises(StageOrderError, match="01_data_prep.ipynb"):
        open_run(tmp_path / "fresh", "training", preset="smoke")


def test_open_run_overrides_are_written_back(tmp_path):
    open_run(tmp_path / "r", "data_prep", preset="smoke")
    run, config = open_run(tmp_path / "r", "data_prep", overrides={"train.learning_rate": 1e-4})
    assert config.train.learning_rate == 1e-4
    assert run.load_config().train.learning_rate == 1e-4


def test_fail_stage_records_error(tmp_path):
    run, _ = open_run(tmp_path / "r", "data_prep", preset="smoke")
    run.fail_stage("data_prep", "DataError: bad row", notebook="x.ipynb")
    entry = run.manifest()["stages"]["data_prep"]
    assert entry["status"] == "failed" and entry["error"] == "DataError: bad row"


def test_stage_context_records_completion_failure_and_interruption(tmp_path):
    run, _ = open_run(tmp_path / "r", "data_prep", preset="smoke")  # marks data_prep running
    with run.stage("data_prep") as recorded:  # not started again
        run.data_dir.mkdir()
        recorded["rows"] = {"train": 3}
    entry = run.manifest()["stages"]["data_prep"]
    assert entry["status"] == "completed" and entry["rows"] == {"train": 3}
    assert recorded["seconds"] == entry["seconds"]
    with pytest.raises(ValueError, match="bad plan"):
        with run.stage("loss_selection"):  # started here: data_prep has completed
            run.plan_path.write_text("{}")
            raise ValueError("bad plan")
    entry = run.manifest()["stages"]["loss_selection"]
    assert (entry["status"], entry["error"]) == ("failed", "ValueError: bad plan")
    assert not run.plan_path.exists() and entry["removed"] == ["plan.json"]  # no half-made artifact stays
    with pytest.raises(KeyboardInterrupt):
        with run.stage("loss_selection"):
            raise KeyboardInterrupt
    assert run.stage_status("loss_selection") == "interrupted"


def test_stage_config_gives_later_stages_the_detected_shape(tmp_path):
    run, config = open_run(tmp_path / "r", "data_prep", preset="smoke")
    assert config.data.shape == "auto"
    atomic_write_json(run.data_report_path, {"shape": "pair_score"})
    assert run.stage_config(config, "data_prep").data.shape == "auto"  # the data stage detects it itself
    assert run.stage_config(config, "training").data.shape == "pair_score"
    assert run.load_config().data.shape == "auto"  # config.yaml keeps what the user asked for


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "-x", ".."])
def test_run_names_that_escape_are_refused(name):
    with pytest.raises(RunDirError, match="not allowed"):
        check_run_name(name)


def test_run_name_ok():
    assert check_run_name("sts-b_v2.1") == "sts-b_v2.1"


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "m.json", {})
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "w").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
