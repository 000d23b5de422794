"""Reproducibility: the same config and seed, run twice through `sttune run` on CPU, give identical
metrics.json values; the manifest records what a replay needs (config, seed, versions, data
checksums). The two runs (tests/helpers/uninterrupted_runs.py, started in the background) are also
the uninterrupted reference of tests/end_to_end/test_recovery.py."""

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import sttune_command, sttune_env

from sttune_helpers.config import RunConfig, load_config
from sttune_helpers.rundir import STAGES

pytestmark = pytest.mark.slow


def start_run(workdir: Path, name: str, *args: str) -> subprocess.Popen:
    """`sttune run --name NAME ARGS` in the background, in its own process group; output in NAME.out/.err."""
    with open(workdir / f"{name}.out", "w") as out, open(workdir / f"{name}.err", "w") as err:
        return subprocess.Popen(sttune_command("run", "--name", name, *args), cwd=workdir, env=sttune_env(),
                                stdout=out, stderr=err, text=True, start_new_session=True)


@pytest.fixture(scope="module")
def runs(uninterrupted_runs):
    return uninterrupted_runs


def metrics_of(run_dir: Path) -> dict:
    """eval/metrics.json with the run's own directory replaced, so that model paths compare equal."""
    return json.loads((run_dir / "eval" / "metrics.json").read_text().replace(str(run_dir.resolve()), "<run>"))


def numbers(tree, path=""):
    """Every number in a JSON tree, by its path: {"models.base.metrics.spearman_cosine.value": 0.71, ...}."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in numbers(value, f"{path}.{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in numbers(value, f"{path}[{i}]").items()}
    return {path.lstrip("."): tree} if isinstance(tree, (int, float)) and not isinstance(tree, bool) else {}


def test_same_config_and_seed_give_identical_metrics(runs):
    a, b, _ = runs
    for run in (a, b):
        stages = json.loads((run / "manifest.json").read_text())["stages"]
        assert [stages[s]["status"] for s in STAGES] == ["completed"] * len(STAGES)
    metrics_a, metrics_b = metrics_of(a), metrics_of(b)
    values = numbers(metrics_a)
    # Not vacuous: every metric with its interval, both comparisons, the reference set and the sweep.
    assert {"models.fine_tuned.metrics.spearman_cosine.value", "models.fine_tuned.metrics.spearman_cosine.ci95[0]",
            "models.base.metrics.pearson_cosine.ci95[1]", "comparisons[0].p_value",
            "reference.parts.snli.models.fine_tuned.metrics.spearman_cosine.value",
            "reference.parts.squad.models.base.metrics.cosine_ndcg@10.value", "interpolation[1].task"} <= set(values)
    # Training changed the model (else equal metrics would say nothing about training).
    fine_tuned, base = "models.fine_tuned.metrics.spearman_cosine.value", "models.base.metrics.spearman_cosine.value"
    assert values[fine_tuned] != values[base]
    assert numbers(metrics_b) == values  # exactly equal, every value and every interval bound
    assert metrics_b == metrics_a
    # The saved embeddings and the training curve too, bit for bit.
    stored_a, stored_b = (np.load(r / "eval" / "embeddings.npz", allow_pickle=True) for r in (a, b))
    assert set(stored_a.files) == set(stored_b.files)
    for key in stored_a.files:
        if stored_a[key].dtype.kind == "f":
            np.testing.assert_array_equal(stored_a[key], stored_b[key], err_msg=key)
    training_a, training_b = (json.loads((r / "training.json").read_text()) for r in (a, b))
    assert [e.get("loss") for e in training_a["log_history"]] == [e.get("loss") for e in training_b["log_history"]]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_records_what_a_replay_needs(runs):
    a, b, _ = runs
    manifest = json.loads((a / "manifest.json").read_text())
    config = load_config(a / "config.yaml")
    assert manifest["seed"] == config.seed == 42
    assert RunConfig.from_dict(manifest["config"]) == config  # the config itself, not only a path to it
    assert f"sttune run --config {a / 'config.yaml'}" in manifest["replay"]
    # Stage 02 fills the shape's recipe into config.yaml: stages 01 and 02 started with the config before it.
    plan = json.loads((a / "plan.json").read_text())
    assert plan["recipe"]["filled"]
    for stage in STAGES:
        entry = manifest["stages"][stage]
        assert (entry["config_sha256"] == sha256(a / "config.yaml")) is (stage not in STAGES[:2]), stage
        assert entry["pid"] > 0 and entry["host"]
    for package in ("python", "sttune", "torch", "transformers", "sentence-transformers", "numpy", "scikit-learn"):
        assert manifest["versions"][package], package
    data = manifest["data"]
    assert data["source"] == "embedded:stsb"
    assert set(data["splits"]) == {"train.jsonl", "validation.jsonl", "test.jsonl"}
    for name, digest in data["splits"].items():
        assert digest == sha256(a / "data" / name), name
    assert {part: entry["sha256"] for part, entry in data["source_files"].items()} == {
        part: sha256(Path(entry["path"])) for part, entry in data["source_files"].items()}
    assert set(data["source_files"]) == {"train", "validation", "test"}
    # The replay (run b, from a's config.yaml) wrote the same splits from the same source files.
    assert json.loads((b / "manifest.json").read_text())["data"] == data
