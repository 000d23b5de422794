"""Data-parallel training on the CPU: 2 processes under torchrun with gloo, on the tiny model and
tiny data prepared by the real data and loss stages. Both ranks train on different batches, rank 0
alone writes into the run directory, the global batch is reported, the general anchor's cadence is
the same on every rank, and a failing rank's error comes back instead of a hang."""

import json
import re

import pytest
from conftest import REPO, sttune
from helpers.tiny_model import build_tiny_model_folder
from helpers.tiny_model import prepared_run as prepare_tiny_run

from sttune_helpers import cli
from sttune_helpers.config import load_preset
from sttune_helpers.core.io import read_json
from sttune_helpers.losses import build_loss, read_plan_loss, supports_gather_across_devices
from sttune_helpers.rundir import RunDir
from sttune_helpers.training import (
    DistributedTrainingError,
    check_devices,
    launch_training,
    plan_training,
    train_model,
)

# Generous for a contended 2-core machine; a hang would otherwise stall the suite.
LAUNCH_TIMEOUT_S = 600


def prepared_run(root, tiny_folder, overrides=()):
    return prepare_tiny_run(root, tiny_folder, ["train.early_stopping_patience=null", *overrides], name="dp")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return str(build_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model"))


def test_two_cpu_processes_train_and_only_rank_zero_writes(tmp_path, tiny_folder):
    # Retrieval pairs with MultipleNegativesRankingLoss: the in-batch negatives are gathered from both ranks.
    run, _ = prepared_run(tmp_path, tiny_folder, [f"data.source={REPO / 'tests' / 'data' / 'scifact-mini'}",
                                                  "data.shape=auto", "loss.name=MultipleNegativesRankingLoss",
                                                  "data.max_train_rows=null",
                                                  "data.max_validation_rows=null", "data.max_test_rows=null",
                                                  "train.batch_size=4", "train.max_steps=2",
                                                  "train.evaluations_per_epoch=1"])
    assert read_json(run.plan_path)["loss"]["name"] == "MultipleNegativesRankingLoss"
    result = sttune("train", "--name", "dp", "--runs-dir", str(tmp_path), "--nproc", "2", cwd=tmp_path,
                    timeout=LAUNCH_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]

    summary = json.loads(run.training_summary_path.read_text())
    assert (summary["world_size"], summary["ddp_backend"], summary["device"]) == (2, "gloo", "cpu")
    assert (summary["per_device_batch_size"], summary["global_batch_size"]) == (4, 8)
    assert "batch: 4 per device x 2 processes x 1 accumulation = 8 global" in result.stdout
    assert summary["gather_across_devices"] is True and summary["global_step"] == 2
    # Both ranks trained: each encoded its own 4 anchors and 4 positives per step, and their batches differ.
    ranks = summary["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert [r["texts_encoded"] for r in ranks] == [2 * 4 * 2, 2 * 4 * 2]
    assert ranks[0]["first_batch_digest"] != ranks[1]["first_batch_digest"]
    assert "rank 0 of 2: 2 steps" in result.stdout and "rank 1 of 2: 2 steps" in result.stdout
    # Rank 0's progress, relayed by the launcher as plain lines (the output is piped), once.
    assert "sttune-progress" not in result.stdout
    assert len(re.findall(r"^ +training 1/2 steps \(50%\), \S+ elapsed", result.stdout, re.M)) == 1
    assert re.search(r"^ +training 2/2 steps \(100%\), \S+ elapsed; validation cosine_ndcg@10 \d\.\d{4}$",
                     result.stdout, re.M), result.stdout[-3000:]
    # Only rank 0 wrote: one device line, one TensorBoard events file, no half-written leftovers.
    assert result.stdout.count("device cpu; precision") == 1
    assert len(list(run.tensorboard_dir.rglob("events.out.tfevents.*"))) == 1
    assert not [p for p in run.root.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".old")]
    assert sorted(p.name for p in run.checkpoints_dir.glob("checkpoint-*")) == ["checkpoint-2"]

    manifest = read_json(run.manifest_path)["stages"]
    assert manifest["training"]["status"] == "completed" and manifest["training"]["global_step"] == 2
    assert manifest["evaluation"]["status"] == "pending"
    assert run.load_config().train.nproc == 2  # what the run used, replayable

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(run.model_dir), device="cpu")
    assert model.encode(["a sentence for the data-parallel model"]).shape == (1, 32)
    assert (run.model_dir / "README.md").is_file()  # the model card, written once by rank 0



def test_the_anchor_every_second_step_runs_in_step_on_both_ranks(tmp_path, tiny_folder):
    # The anchor's extra forward pass is skipped on alternate batches: every rank must skip the same ones,
    # or the ranks' backward passes no longer match.
    run, _ = prepared_run(tmp_path, tiny_folder, [f"data.source={REPO / 'tests' / 'data' / 'scifact-mini'}",
                                                  "data.shape=auto", "loss.name=MultipleNegativesRankingLoss",
                                                  "data.max_train_rows=null", "data.max_validation_rows=null",
                                                  "data.max_test_rows=null", "train.batch_size=4", "train.max_steps=5",
                                                  "train.evaluations_per_epoch=1", "train.task_prompt='task: '",
                                                  "train.general_anchor=10", "train.general_anchor_texts=3",
                                                  "train.general_anchor_every=2"])
    result = sttune("train", "--name", "dp", "--runs-dir", str(tmp_path), "--nproc", "2", cwd=tmp_path,
                    timeout=LAUNCH_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    summary = json.loads(run.training_summary_path.read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 5
    assert summary["regularisation"]["anchor_every"] == 2
    # Each rank: 2 columns of 4 texts on each of the 5 steps, and 3 anchor texts on steps 1, 3 and 5.
    assert [(r["forward_calls"], r["texts_encoded"]) for r in summary["ranks"]] == [(2 * 5 + 3, 2 * 4 * 5 + 3 * 3)] * 2

def test_a_failing_rank_surfaces_its_error(tmp_path, tiny_folder):
    # An infinite scale makes CoSENT's logits inf - inf: NaN at the first step, and the guard raises in the ranks.
    run, config = prepared_run(tmp_path, tiny_folder, ["loss.name=CoSENTLoss", "loss.params={scale: .inf}",
                                                       "train.max_steps=3"])
    config.train.nproc = 2
    choice = read_plan_loss(read_json(run.plan_path))
    assert choice.params["scale"] == float("inf")
    with pytest.raises(DistributedTrainingError) as failure:
        launch_training(run, config, work_dir=tmp_path / "work", timeout_s=LAUNCH_TIMEOUT_S)
    message = str(failure.value)
    assert "training in 2 processes failed" in message
    assert "TrainingDivergedError: training stopped at step 1: the training loss is nan" in message
    assert "stderr, last lines" in message and str(tmp_path / "work" / "logs") in message
    assert not run.training_summary_path.exists() and not run.model_dir.exists()


def test_gather_across_devices_goes_to_the_losses_that_take_it(tiny_folder):
    from sentence_transformers import SentenceTransformer

    from sttune_helpers.losses import LossChoice

    model = SentenceTransformer(tiny_folder, device="cpu")
    assert supports_gather_across_devices("CachedMultipleNegativesRankingLoss")
    assert not supports_gather_across_devices("CoSENTLoss")
    assert build_loss(model, LossChoice("MultipleNegativesRankingLoss", ""), gather_across_devices=True) \
        .gather_across_devices is True
    assert build_loss(model, LossChoice("CachedMultipleNegativesRankingLoss", "", {"mini_batch_size": 4}),
                      gather_across_devices=True).gather_across_devices is True
    assert build_loss(model, LossChoice("MultipleNegativesRankingLoss", "")).gather_across_devices is False
    # The user's explicit choice in loss.params wins.
    assert build_loss(model, LossChoice("MultipleNegativesRankingLoss", "", {"gather_across_devices": False}),
                      gather_across_devices=True).gather_across_devices is False
    assert not hasattr(build_loss(model, LossChoice("CoSENTLoss", ""), gather_across_devices=True),
                       "gather_across_devices")


def test_the_global_batch_counts_every_process():
    config = load_preset("smoke").with_overrides(["train.batch_size=8", "train.gradient_accumulation_steps=3",
                                                  "train.nproc=2", "train.max_steps=null"])
    setup = plan_training(config, 100, "cpu", "pair_score", "CoSENTLoss")
    assert (setup.world_size, setup.global_batch_size, setup.steps_per_epoch) == (2, 48, 3)
    assert setup.batch_line() == "batch: 8 per device x 2 processes x 3 accumulation steps = 48 per optimizer step"
    assert plan_training(config, 100, "cpu", "pair_score", "CoSENTLoss", world_size=1).steps_per_epoch == 5


def test_impossible_process_counts_fail_before_launching(tmp_path):
    with pytest.raises(ValueError, match="train.nproc must be at least 1, got 0"):
        check_devices("cpu", 0)
    with pytest.raises(ValueError, match="not on 'mps'"):
        check_devices("mps", 2)
    import torch

    if torch.cuda.device_count() < 4:
        with pytest.raises(ValueError, match=r"train.nproc=4 needs one GPU per process, but torch sees \d"):
            check_devices("cuda", 4)
    config = load_preset("smoke").with_overrides(["train.nproc=2"])
    with pytest.raises(ValueError, match="callbacks .* cannot be passed to training in several processes"):
        train_model(RunDir(tmp_path), config, callbacks=[object()])
    assert cli.main(["train", "--name", "missing", "--runs-dir", str(tmp_path), "--nproc", "0"]) == 2
    assert cli.main(["train", "--name", "missing", "--runs-dir", str(tmp_path)]) == 2  # no such run
