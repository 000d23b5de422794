"""Interruption and recovery: a run stopped in training by SIGINT, or killed with SIGKILL (the sttune
process and its kernel), keeps no model or metrics of the unfinished stage, its manifest says which
stage stopped and why, and `sttune run --resume --name NAME` finishes it from the last checkpoint to
the model and metrics of an uninterrupted run (tests/end_to_end/test_reproducibility.py's run `a`)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import sttune
from helpers.uninterrupted_runs import override_args, tiny_pipeline_overrides
from test_reproducibility import metrics_of, numbers, start_run

from sttune_helpers.rundir import STAGES, RunDirError, StageOrderError, open_run

# Encoding the same texts with the resumed and the uninterrupted model. Resuming restores the
# weights, optimizer, scheduler, RNG states and data order from the checkpoint, so on one CPU thread
# the remaining steps repeat the same float operations: the models agree to float32 rounding. The
# tolerances allow for that rounding (a weight written and read back, a sum reordered), far below
# the differences that one training step more or less makes (~1e-3 here).
EMBEDDING_ATOL = 1e-5
METRIC_ATOL = 1e-6
PROBE_TEXTS = ["A man is playing a guitar.", "A woman slices an onion.", "The stock market fell sharply.",
               "Two dogs run across a field.", "a completely different sentence about the weather"]


def wait_for_checkpoint(run_dir, process, timeout=900):
    """The first complete checkpoint (trainer_state.json is written last) of a run in progress."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state in sorted((run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json")):
            try:
                json.loads(state.read_text())
                return state.parent
            except (OSError, ValueError):
                continue  # being written
        assert process.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint in {run_dir / 'checkpoints'} after {timeout} s")


def process_gone(pid, timeout=30):
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def assert_nothing_final_from_training(run_dir):
    assert not (run_dir / "model").exists() and not (run_dir / "training.json").exists()
    assert not (run_dir / "eval" / "metrics.json").exists() and not (run_dir / "viz").exists()


def assert_matches_the_uninterrupted_run(run_dir, reference, checkpoint_step):
    from sentence_transformers import SentenceTransformer

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [manifest["stages"][s]["status"] for s in STAGES] == ["completed"] * len(STAGES)
    training = json.loads((run_dir / "training.json").read_text())
    assert training["resumed_from_step"] >= checkpoint_step and training["global_step"] == 24
    expected = json.loads((reference / "training.json").read_text())
    # Steps before the checkpoint come from its history, the rest from the resumed run: each step once.
    steps = [e["step"] for e in training["log_history"] if "loss" in e]
    assert steps == list(range(1, 25))
    np.testing.assert_allclose([e["loss"] for e in training["log_history"] if "loss" in e],
                               [e["loss"] for e in expected["log_history"] if "loss" in e], atol=METRIC_ATOL)
    assert training["best_checkpoint"].rsplit("-", 1)[-1] == expected["best_checkpoint"].rsplit("-", 1)[-1]

    resumed = SentenceTransformer(str(run_dir / "model"), device="cpu").encode(PROBE_TEXTS)
    uninterrupted = SentenceTransformer(str(reference / "model"), device="cpu").encode(PROBE_TEXTS)
    np.testing.assert_allclose(resumed, uninterrupted, atol=EMBEDDING_ATOL)

    metrics, reference_metrics = numbers(metrics_of(run_dir)), numbers(metrics_of(reference))
    assert set(metrics) == set(reference_metrics) and len(metrics) > 20
    np.testing.assert_allclose([metrics[k] for k in sorted(metrics)], [reference_metrics[k] for k in sorted(metrics)],
                               atol=METRIC_ATOL, err_msg="metrics.json differs from the uninterrupted run's")


@pytest.fixture(scope="module")
def reference(uninterrupted_runs):
    return uninterrupted_runs



@pytest.mark.slow
def test_sigint_in_training_then_resume_matches_an_uninterrupted_run(tmp_path, reference):
    run_a, _, tiny = reference
    run_dir = tmp_path / "runs" / "stopped"
    process = start_run(tmp_path, "stopped", "--preset", "smoke", *override_args(tiny_pipeline_overrides(tiny)))
    checkpoint = wait_for_checkpoint(run_dir, process)
    process.send_signal(signal.SIGINT)  # to the sttune process alone, as `kill -INT` does
    process.wait(timeout=120)
    out = (tmp_path / "stopped.out").read_text() + (tmp_path / "stopped.err").read_text()
    assert process.returncode == 130, out
    assert "sttune: interrupted by SIGINT during stage 'training'; continue with `sttune run --resume --name stopped" \
        in out
    manifest = json.loads((run_dir / "manifest.json").read_text())
    training = manifest["stages"]["training"]
    assert training["status"] == "interrupted" and training["error"] == "interrupted by SIGINT"
    assert [manifest["stages"][s]["status"] for s in STAGES[:2]] == ["completed"] * 2
    assert [manifest["stages"][s]["status"] for s in STAGES[3:]] == ["pending"] * 2
    assert process_gone(training["pid"], timeout=5), "the kernel outlived the interrupted run"
    assert_nothing_final_from_training(run_dir)

    resumed = sttune("run", "--resume", "--name", "stopped", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming at stage 'training'" in resumed.stdout
    entry = json.loads((run_dir / "manifest.json").read_text())["stages"]["training"]
    assert entry["previous_attempt"]["status"] == "interrupted"
    assert_matches_the_uninterrupted_run(run_dir, run_a, int(checkpoint.name.rsplit("-", 1)[-1]))


@pytest.mark.slow
def test_sigterm_with_a_kernel_per_stage_kills_that_kernel_and_records_the_interruption(tmp_path, reference):
    # --kernel-per-stage: papermill starts the kernel, so sttune finds it among its child processes.
    _, _, tiny = reference
    run_dir = tmp_path / "runs" / "own-kernel"
    process = start_run(tmp_path, "own-kernel", "--preset", "smoke", "--kernel-per-stage",
                        *override_args(tiny_pipeline_overrides(tiny)))
    wait_for_checkpoint(run_dir, process)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    out = (tmp_path / "own-kernel.out").read_text() + (tmp_path / "own-kernel.err").read_text()
    assert process.returncode == 130, out
    assert "interrupted by SIGTERM during stage 'training'" in out
    training = json.loads((run_dir / "manifest.json").read_text())["stages"]["training"]
    assert training["status"] == "interrupted" and training["error"] == "interrupted by SIGTERM"
    assert process_gone(training["pid"], timeout=5), "the kernel outlived the interrupted run"
    assert_nothing_final_from_training(run_dir)


@pytest.mark.slow
def test_sigkill_of_sttune_and_its_kernel_then_resume_matches_an_uninterrupted_run(tmp_path, reference):
    run_a, _, tiny = reference
    run_dir = tmp_path / "runs" / "killed"
    process = start_run(tmp_path, "killed", "--preset", "smoke", *override_args(tiny_pipeline_overrides(tiny)))
    checkpoint = wait_for_checkpoint(run_dir, process)
    kernel = json.loads((run_dir / "manifest.json").read_text())["stages"]["training"]["pid"]
    # Everything at once, as the OOM killer or a lost machine would: sttune's process group, and the
    # kernel, which Jupyter starts in a session of its own.
    os.killpg(process.pid, signal.SIGKILL)
    os.kill(kernel, signal.SIGKILL)
    process.wait(timeout=30)
    assert process_gone(kernel)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["training"]["status"] == "running"  # nothing could record the kill
    assert_nothing_final_from_training(run_dir)

    resumed = sttune("run", "--resume", "--name", "killed", cwd=tmp_path)
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out
    assert "stage 'training' was left running by a process that no longer exists: marked interrupted" in out
    assert "resuming at stage 'training'" in out
    entry = json.loads((run_dir / "manifest.json").read_text())["stages"]["training"]
    assert entry["previous_attempt"]["status"] == "interrupted"
    assert f"process {kernel} on {socket.gethostname()} ended without finishing" in entry["previous_attempt"]["error"]
    assert not [p for p in run_dir.rglob(".*") if p.name.endswith((".tmp", ".old"))
                and "checkpoints" not in p.parts]
    assert_matches_the_uninterrupted_run(run_dir, run_a, int(checkpoint.name.rsplit("-", 1)[-1]))


# --- the bookkeeping, in-process ---------------------------------------------------------------------


def started_run(tmp_path):
    run, _ = open_run(tmp_path / "run", "data_prep", preset="smoke")
    return run


def test_a_failed_stage_keeps_no_final_artifact(tmp_path):
    run = started_run(tmp_path)
    run.complete_stage("data_prep")
    run.start_stage("loss_selection")
    run.complete_stage("loss_selection")
    run.start_stage("training")
    run.model_dir.mkdir()
    (run.model_dir / "model.safetensors").write_bytes(b"weights of a stage that did not finish")
    run.training_summary_path.write_text("{}")
    (run.checkpoints_dir / "checkpoint-2").mkdir(parents=True)
    run.fail_stage("training", "TrainingDivergedError: training stopped at step 3: the training loss is nan")
    entry = run.manifest()["stages"]["training"]
    assert entry["status"] == "failed" and entry["error"].startswith("TrainingDivergedError: training stopped")
    assert sorted(entry["removed"]) == ["model", "training.json"]
    assert not run.model_dir.exists() and not run.training_summary_path.exists()
    assert (run.checkpoints_dir / "checkpoint-2").is_dir()  # kept: --resume continues from it


def test_resume_marks_a_stage_whose_process_is_gone_interrupted(tmp_path):
    run = started_run(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    manifest = run.manifest()
    manifest["stages"]["data_prep"].update(pid=dead.pid, pid_started=None)
    run.record(stages=manifest["stages"])
    (run.root / ".config.yaml.abc123.tmp").write_text("half")  # an atomic write that was killed
    (run.data_dir / ".train.jsonl.x.tmp").parent.mkdir()
    (run.data_dir / ".train.jsonl.x.tmp").write_text("half")
    assert run.recover_interrupted() == ["data_prep"]
    entry = run.manifest()["stages"]["data_prep"]
    assert entry["status"] == "interrupted" and f"process {dead.pid} on {socket.gethostname()}" in entry["error"]
    assert not list(run.root.rglob("*.tmp"))
    assert run.recover_interrupted() == []  # nothing left to recover


def test_resume_refuses_while_the_stage_still_runs(tmp_path):
    run = started_run(tmp_path)  # running in this very process, which is alive
    assert run.manifest()["stages"]["data_prep"]["pid"] == os.getpid()
    with pytest.raises(RunDirError, match=rf"stage 'data_prep' of .* is still running \(process {os.getpid()} on "):
        run.recover_interrupted()
    manifest = run.manifest()
    manifest["stages"]["data_prep"]["host"] = "another-machine"
    run.record(stages=manifest["stages"])
    with pytest.raises(RunDirError, match="by process .* on host another-machine, which this machine .* cannot check"):
        run.recover_interrupted()
    assert run.stage_status("data_prep") == "running"


def test_interrupted_stage_blocks_the_later_ones_and_names_itself(tmp_path):
    run = started_run(tmp_path)
    run.fail_stage("data_prep", "interrupted by SIGTERM", status="interrupted")
    with pytest.raises(StageOrderError, match="needs stage 'data_prep'.*it is 'interrupted'"):
        run.start_stage("loss_selection")
    run.start_stage("data_prep")
    previous = run.manifest()["stages"]["data_prep"]["previous_attempt"]
    assert previous["status"] == "interrupted" and previous["error"] == "interrupted by SIGTERM"
