"""A tiny, randomly initialised BERT with the packaged model's tokenizer, saved as a plain
transformers folder: every loss, pooling and guard can take real training steps on it in well
under a second on a CPU, where all-MiniLM-L6-v2 would take minutes per test."""

from __future__ import annotations

from pathlib import Path


def build_tiny_model_folder(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from sttune_helpers.modeling import packaged_model_path

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def prepared_run(root: Path, model_folder: str, overrides=(), name: str = "run"):
    """A run directory ``root/name`` whose data_prep and loss_selection stages completed on a small
    slice of the embedded STS-B (or the ``data.source`` in ``overrides``), for ``model_folder``."""
    from sttune_helpers.config import load_preset
    from sttune_helpers.data import prepare_data, write_splits
    from sttune_helpers.losses import loss_shape, write_plan
    from sttune_helpers.rundir import RunDir

    config = load_preset("smoke").with_overrides([f"model.name={model_folder}", "loss.name=null",
                                                  "data.max_train_rows=48", "data.max_validation_rows=24",
                                                  "data.max_test_rows=16", "train.batch_size=8",
                                                  "train.logging_steps=1",
                                                  # selection has its own tests; elsewhere it only costs time
                                                  "eval.select_model=false", *overrides])
    run = RunDir(Path(root) / name)
    run.root.mkdir(parents=True)
    run.save_config(config)
    run.start_stage("data_prep")
    prepared = prepare_data(config.data, config.seed)
    write_splits(run, prepared)
    run.complete_stage("data_prep")
    config.data.shape = prepared.report["shape"]
    run.start_stage("loss_selection")
    write_plan(run, config, n_train=len(prepared.splits["train"]), shape=loss_shape(prepared.report))
    run.complete_stage("loss_selection")
    return run, config


def trained_in_two_processes(root: Path, model_folder: str, sampler: str) -> dict:
    """Train a prepared run on scifact-mini with MultipleNegativesRankingLoss under ``sampler``
    (train.batch_sampler) in 2 CPU processes for 2 steps of 4 pairs, as `sttune train --nproc 2` does;
    checks that each process trained full batches of its own, and returns training.json."""
    from conftest import REPO, sttune

    from sttune_helpers.core.io import read_json

    run, _ = prepared_run(root, model_folder, [
        f"data.source={REPO / 'tests' / 'data' / 'scifact-mini'}", "data.shape=auto", "data.max_train_rows=null",
        "data.max_validation_rows=null", "data.max_test_rows=null", "loss.name=MultipleNegativesRankingLoss",
        f"train.batch_sampler={sampler}", "train.batch_size=4", "train.max_steps=2",
        "train.evaluations_per_epoch=1", "train.early_stopping_patience=null"], name="dp")
    result = sttune("train", "--name", "dp", "--runs-dir", str(root), "--nproc", "2", cwd=root, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    summary = read_json(run.training_summary_path)
    assert (summary["world_size"], summary["global_step"]) == (2, 2)
    ranks = summary["ranks"]
    assert [r["texts_encoded"] for r in ranks] == [2 * 4 * 2, 2 * 4 * 2]  # full batches of 4 pairs on each
    assert ranks[0]["first_batch_digest"] != ranks[1]["first_batch_digest"]
    return summary
