"""Training across machines, with two "nodes" on this one: two `sttune train` processes with
--nnodes 2, one rank each, gloo, a c10d rendezvous on 127.0.0.1, sharing one run directory. The
global batch is the sum, global rank 0 alone writes, and the loss curve is the one-process curve of
the same global batch; both nodes resume from a checkpoint as if never stopped; a rank failing on one
node, in training or as it starts, stops the other; a node whose rendezvous does not answer fails
within train.rdzv_timeout; and only `sttune train` starts training on several machines."""

import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest
from conftest import REPO, sttune, sttune_command, sttune_env
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers.config import load_preset
from sttune_helpers.core.io import read_json
from sttune_helpers.training import TrainingError, check_nodes, train_model
from sttune_helpers.training.launch import torchrun_command

# Two nodes whose rank fails at step 2 are both stopped within this (measured: ~35 s).
FAILURE_TIMEOUT_S = 240
# A rank failing as it starts: node 0's rank waits train.rdzv_timeout for it (long enough for node 1 to
# join the rendezvous on a contended machine), then both nodes have stopped within FAILURE_TIMEOUT_S.
START_TIMEOUT_S = 30
LAUNCH_TIMEOUT_S = 600  # generous for a contended 2-core machine; a hang would otherwise stall the suite
# The logged training loss of two ranks (a gloo all-reduce of their gradients, the mean of their
# losses) against one process on the same 8 rows: the same sums in another order, float32.
LOSS_TOLERANCE = 1e-4
# Per-example losses only (a mean over the batch), no dropout, plain batches in the seeded order:
# rank r's share of a global step is the rows one process takes at that step.
SAME_CURVE = ["loss.name=CosineSimilarityLoss", "train.batch_sampler=batch_sampler", "model.hidden_dropout=0",
              "model.attention_dropout=0", "train.max_steps=3", "train.evaluations_per_epoch=1",
              "train.early_stopping_patience=null", "train.restore_best=never",
              # a step that moves the weights, so that steps 2 and 3 show whether the gradients were shared
              "train.learning_rate=5e-3", "train.warmup_ratio=0"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def node_command(runs_dir, node_rank, endpoint, *extra):
    return sttune_command("train", "--name", "mn", "--runs-dir", str(runs_dir), "--nnodes", "2",
                          "--node-rank", str(node_rank), "--rdzv-endpoint", endpoint, *extra)


def losses(summary):
    return [(e["step"], e["loss"]) for e in summary["log_history"] if "loss" in e]


def train_two_nodes(runs_dir, run, *extra, cwd, node1_env=None, timeout=LAUNCH_TIMEOUT_S):
    """`sttune train` as node 0 and node 1 of run ``run`` with ``extra`` arguments; each node's
    (return code, stdout, stderr). Node 1 joins once node 0 has marked the stage running in the
    shared manifest, as a later node would."""
    endpoint = f"127.0.0.1:{free_port()}"

    def start(rank, env):
        return subprocess.Popen(node_command(runs_dir, rank, endpoint, "--rdzv-timeout", "300", *extra), cwd=cwd,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    before = read_json(run.manifest_path)["stages"]["training"].get("started_unix")
    nodes = [start(0, sttune_env())]
    deadline = time.monotonic() + timeout
    try:
        while nodes[0].poll() is None:
            training = read_json(run.manifest_path)["stages"]["training"]
            if training["status"] == "running" and training.get("started_unix") != before:
                break
            assert time.monotonic() < deadline, "node 0 did not start training"
            time.sleep(0.2)
        nodes.append(start(1, {**sttune_env(), **(node1_env or {})}))
        outputs = [node.communicate(timeout=max(1.0, deadline - time.monotonic())) for node in nodes]
        return [(node.returncode, out, err) for node, (out, err) in zip(nodes, outputs)]
    finally:
        for node in nodes:  # after a hang: SIGINT stops `sttune train` and its torchrun
            if node.poll() is None:
                node.send_signal(signal.SIGINT)
                node.wait(timeout=60)


def test_two_nodes_train_one_run_as_one_process_would(tmp_path, tiny_folder):
    run, _ = prepare_tiny_run(tmp_path / "nodes", tiny_folder, [*SAME_CURVE, "train.batch_size=4"], name="mn")
    (code0, out0, err0), (code1, out1, err1) = train_two_nodes(tmp_path / "nodes", run, cwd=tmp_path)
    assert code0 == 0, out0[-6000:] + err0[-3000:]
    assert code1 == 0, out1[-6000:] + err1[-3000:]

    summary = json.loads(run.training_summary_path.read_text())
    assert (summary["world_size"], summary["ddp_backend"]) == (2, "gloo")
    assert (summary["per_device_batch_size"], summary["global_batch_size"]) == (4, 8)  # 4 + 4
    assert "batch: 4 per device x 2 processes x 1 accumulation = 8 global" in out0
    assert "training in 1 process on each of 2 nodes (this is node 1)" in out1 + err1
    assert [r["rank"] for r in summary["ranks"]] == [0, 1]
    assert [r["texts_encoded"] for r in summary["ranks"]] == [3 * 4 * 2, 3 * 4 * 2]  # 3 steps of 4 pairs each
    # Global rank 0 alone wrote (on whichever node the rendezvous put it); node 0 alone kept the manifest.
    both = out0 + err0 + out1 + err1
    assert both.count("device cpu; precision") == 1
    assert len(list(run.tensorboard_dir.rglob("events.out.tfevents.*"))) == 1
    assert not [p for p in run.root.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".old")]
    assert "node 0 records it" in out1
    manifest = read_json(run.manifest_path)["stages"]["training"]
    assert manifest["status"] == "completed" and manifest["global_step"] == 3
    # The checkpoint holds each global rank's RNG state, which --resume restores by rank.
    checkpoint = run.checkpoints_dir / "checkpoint-3"
    assert sorted(p.name for p in checkpoint.glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]

    single, _ = prepare_tiny_run(tmp_path / "single", tiny_folder, [*SAME_CURVE, "train.batch_size=8"], name="one")
    alone = train_model(single, single.load_config())
    assert alone["global_batch_size"] == 8 and alone["world_size"] == 1
    two, one = losses(summary), losses(alone)
    assert [step for step, _ in two] == [step for step, _ in one] == [1, 2, 3]
    assert [loss for _, loss in two] == pytest.approx([loss for _, loss in one], rel=LOSS_TOLERANCE), (two, one)
    assert one[0][1] != pytest.approx(one[2][1], rel=0.01)  # the curve moves: the comparison can fail


# Resuming: the tiny model's dropout (0.1) left on, so that each rank's steps after the checkpoint
# depend on its own RNG state; a constant learning rate, so that 2 steps then 2 more are the 4-step
# schedule; a validation (and a checkpoint) every 2 steps in both runs, none spaced out by time.
RESUMABLE = ["loss.name=CosineSimilarityLoss", "train.batch_sampler=batch_sampler", "train.batch_size=4",
             "train.evaluations_per_epoch=3", "train.max_validation_share=null", "train.early_stopping_patience=null",
             "train.restore_best=never", "train.learning_rate=5e-3", "train.warmup_ratio=0",
             "train.scheduler=constant"]


def test_two_nodes_resume_from_a_checkpoint_as_if_never_stopped(tmp_path, tiny_folder):
    import torch

    run, _ = prepare_tiny_run(tmp_path / "nodes", tiny_folder, RESUMABLE, name="mn")
    # Stopped after step 2 (its checkpoint saved), then both nodes resume with --resume to step 4.
    for arguments in (["-p", "train.max_steps=2"], ["-p", "train.max_steps=4", "--resume"]):
        for code, out, err in train_two_nodes(tmp_path / "nodes", run, *arguments, cwd=tmp_path):
            assert code == 0, out[-6000:] + err[-3000:]
        if "--resume" not in arguments:
            # Each global rank's RNG state, its own: the ranks' batches differ, and so does what dropout drew.
            states = [torch.load(run.checkpoints_dir / "checkpoint-2" / f"rng_state_{rank}.pth", weights_only=False)
                      for rank in (0, 1)]
            assert not torch.equal(states[0]["cpu"], states[1]["cpu"])
    resumed = json.loads(run.training_summary_path.read_text())
    assert (resumed["resumed_from_step"], resumed["global_step"], resumed["world_size"]) == (2, 4, 2)
    assert read_json(run.manifest_path)["stages"]["training"]["global_step"] == 4

    reference, _ = prepare_tiny_run(tmp_path / "whole", tiny_folder, [*RESUMABLE, "train.max_steps=4"], name="mn")
    for code, out, err in train_two_nodes(tmp_path / "whole", reference, cwd=tmp_path):
        assert code == 0, out[-6000:] + err[-3000:]
    uninterrupted = json.loads(reference.training_summary_path.read_text())
    assert uninterrupted["resumed_from_step"] is None
    after, whole = losses(resumed), losses(uninterrupted)
    assert [step for step, _ in after] == [step for step, _ in whole] == [1, 2, 3, 4]
    # Steps 3 and 4 ran after the resume on both ranks: the same batches, weights, optimizer and dropout.
    assert [loss for _, loss in after] == pytest.approx([loss for _, loss in whole], rel=LOSS_TOLERANCE), (after, whole)


def failing_ranks(**settings):
    """The environment in which a node's ranks fail as ``settings`` say (tests/helpers/failing_rank)."""
    helper = REPO / "tests" / "helpers" / "failing_rank"
    return {"PYTHONPATH": f"{helper}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **settings}


def test_a_rank_failing_on_one_node_stops_the_other_with_its_error(tmp_path, tiny_folder):
    run, _ = prepare_tiny_run(tmp_path / "nodes", tiny_folder, [*SAME_CURVE, "train.batch_size=4"], name="mn")
    # Node 1's rank raises at step 2, while node 0's waits for its gradients.
    started = time.monotonic()
    (code0, out0, err0), (code1, out1, err1) = train_two_nodes(tmp_path / "nodes", run, cwd=tmp_path,
                                                               node1_env=failing_ranks(STTUNE_TEST_FAIL_AT_STEP="2"),
                                                               timeout=FAILURE_TIMEOUT_S)
    seconds = time.monotonic() - started
    assert (code0, code1) == (1, 1), out0[-3000:] + err0[-3000:] + out1[-3000:] + err1[-3000:]
    assert seconds < FAILURE_TIMEOUT_S  # not the process group's own timeout (30 minutes)
    # Node 1 names the failed rank by its global rank, and its error; the rendezvous may give it rank 0 or 1.
    failed = re.search(r"^rank (\d) \(local rank 0 on this node\) failed: InjectedFailure: injected at step 2 on "
                       r"global rank (\d) ", err1, re.M)
    assert failed and failed[1] == failed[2], err1[-3000:]
    assert "training in 1 process on each of 2 nodes (this is node 1) failed" in err1
    # Node 0's rank failed on the lost connection, and node 0 says where the failure began.
    assert re.search(r"^rank \d \(local rank 0 on this node\) failed: RuntimeError: .*Connection closed by peer",
                     err0, re.M), err0[-3000:]
    assert "lost a rank on another node: the failure began there" in err0
    assert "InjectedFailure" not in out0 + err0  # the error came from node 1 alone
    training = read_json(run.manifest_path)["stages"]["training"]
    assert training["status"] == "failed" and "lost a rank on another node" in training["error"]
    assert not run.training_summary_path.exists()


def test_a_rank_failing_as_it_starts_stops_the_other_node_within_the_rendezvous_timeout(tmp_path, tiny_folder):
    run, _ = prepare_tiny_run(tmp_path / "nodes", tiny_folder, [*SAME_CURVE, "train.batch_size=4"], name="mn")
    # Node 1's rank exits as it starts, before the process group forms; node 0's torchrun watches only its own
    # rank, which would wait in init_process_group for transformers' ddp_timeout (30 minutes) without the check.
    started = time.monotonic()
    (code0, out0, err0), (code1, out1, err1) = train_two_nodes(
        tmp_path / "nodes", run, "--rdzv-timeout", str(START_TIMEOUT_S), cwd=tmp_path,
        node1_env=failing_ranks(STTUNE_TEST_FAIL_AT_START="1"), timeout=FAILURE_TIMEOUT_S)
    seconds = time.monotonic() - started
    assert (code0, code1) == (1, 1), out0[-3000:] + err0[-3000:] + out1[-3000:] + err1[-3000:]
    assert seconds < FAILURE_TIMEOUT_S
    # Node 1 shows its rank's failure as it does today: the rank by its global rank, and its stderr.
    failed1 = re.search(r"^rank (\d) \(local rank 0 on this node\) failed", err1, re.M)
    assert failed1, err1[-3000:]
    assert f"injected start-up failure on global rank {failed1[1]}" in err1
    # Node 0's rank gave up after train.rdzv_timeout, naming the rank that never came and where to look.
    failed0 = re.search(r"^rank (\d) \(local rank 0 on this node\) failed: DistributedTrainingError: rank (\d) of 2 "
                        rf"did not get ready to train within train.rdzv_timeout={START_TIMEOUT_S} s", err0, re.M)
    assert failed0, err0[-3000:]
    assert failed0[2] == failed1[1] != failed0[1]
    assert "the output of `sttune train` on its node names the error" in err0
    assert "injected start-up failure" not in out0 + err0
    training = read_json(run.manifest_path)["stages"]["training"]
    assert training["status"] == "failed" and "did not get ready to train" in training["error"]


def test_a_node_whose_rendezvous_does_not_answer_fails_within_the_timeout(tmp_path, tiny_folder):
    prepare_tiny_run(tmp_path, tiny_folder, ["train.max_steps=1"], name="mn")
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = sttune("train", "--name", "mn", "--runs-dir", str(tmp_path), "--nnodes", "2", "--node-rank", "1",
                    "--rdzv-endpoint", endpoint, "--rdzv-timeout", "5", cwd=tmp_path, timeout=LAUNCH_TIMEOUT_S)
    seconds = time.monotonic() - started
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"node 1 of 2 could not join the rendezvous at {endpoint} within train.rdzv_timeout=5 s" in result.stderr
    assert f"while trying to connect to (127.0.0.1, {endpoint.rsplit(':', 1)[1]})" in result.stderr
    # 5 s of waiting plus starting Python, sttune and torchrun twice on a contended machine.
    assert seconds < 5 + 90
    assert not (tmp_path / "mn" / "training.json").exists()


def test_only_sttune_train_starts_training_on_several_machines(tmp_path, tiny_folder, capsys):
    # config.yaml records what node 0's `sttune train --nnodes 2` used; the node settings are per launch.
    run, _ = prepare_tiny_run(tmp_path, tiny_folder, ["train.nnodes=2", "train.rdzv_endpoint=127.0.0.1:29400",
                                                      "train.max_steps=1", "train.early_stopping_patience=null"],
                              name="mn")
    recorded = run.config_path.read_text()
    where = f"--name mn --runs-dir {tmp_path}"
    from sttune_helpers import cli
    from sttune_helpers.stages import training

    # `sttune run --resume` (and --from training) on one machine: refused before any kernel starts.
    for arguments in (["--resume"], ["--from", "training"]):
        assert cli.main(["run", *arguments, "--name", "mn", "--runs-dir", str(tmp_path)]) == 2
        error = capsys.readouterr().err
        assert f"train.nnodes=2 (in {run.config_path} or the overrides)" in error
        assert (f"`sttune train {where} --nnodes 2 --node-rank R --rdzv-endpoint 127.0.0.1:29400 [--resume]`"
                in error)
        assert f"`sttune train {where} --nnodes 1 [--resume]` (--nproc N to keep the global batch of 2" in error
    # The notebook's training.start: refused before the stage is marked running or config.yaml rewritten.
    with pytest.raises(TrainingError, match="training on several machines is started by `sttune train`"):
        training.start(run.root, overrides={"train.max_steps": 2})
    assert read_json(run.manifest_path)["stages"]["training"]["status"] == "pending"
    assert run.config_path.read_text() == recorded
    # The stages after training do not train: not refused.
    from sttune_helpers.rundir import STAGES
    from sttune_helpers.runner.pipeline import preflight

    preflight(run.load_config(), STAGES[STAGES.index("training") + 1:], run.root)
    # The way out the message names: `sttune train --nnodes 1` trains here, and records nnodes 1.
    assert cli.main(["train", *where.split(), "--nnodes", "1"]) == 0
    assert run.load_config().train.nnodes == 1
    assert json.loads(run.training_summary_path.read_text())["world_size"] == 1
    preflight(run.load_config(), ["training"], run.root)


def test_multinode_settings_are_checked_before_launching(tmp_path):
    config = load_preset("smoke")
    train = config.with_overrides(["train.nnodes=2"]).train
    with pytest.raises(TrainingError, match="train.nnodes=2 needs train.rdzv_endpoint"):
        check_nodes(train)
    train.rdzv_endpoint = "node0"
    with pytest.raises(TrainingError, match="'node0' must look like host:port"):
        check_nodes(train)
    train.rdzv_endpoint, train.node_rank = "node0:29400", 2
    with pytest.raises(TrainingError, match="train.node_rank must be from 0 to train.nnodes - 1 = 1, got 2"):
        check_nodes(train)
    train.node_rank = 1
    assert check_nodes(train) == ("node0", 29400)
    command = torchrun_command(tmp_path / "run-a", tmp_path / "c.yaml", train, tmp_path / "logs", resume=True)
    assert {"--nnodes=2", "--node-rank=1", "--nproc-per-node=1", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29400",
            "--rdzv-id=run-a", "--rdzv-conf=join_timeout=600,read_timeout=600,is_host=0", "--resume"} <= set(command)
    assert "--standalone" in torchrun_command(tmp_path / "a", tmp_path / "c.yaml", config.train, tmp_path, False)
    from sttune_helpers import cli

    assert cli.main(["train", "--name", "x", "--runs-dir", str(tmp_path), "--node-rank", "-1"]) == 2
    assert cli.main(["train", "--name", "x", "--runs-dir", str(tmp_path), "--nnodes", "0"]) == 2
