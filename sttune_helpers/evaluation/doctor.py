"""The doctor: checks that name common failures of a finished run (collapsed embeddings, overfitting,
a score scale mismatch, duplicates in in-batch-negative batches, too little data, test leakage),
each with a suggested fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import shapes
from ..config import RunConfig
from ..core.io import read_json
from ..core.statistics import mean_cosine_of_pairs
from ..core.tables import wrapped_text_table
from ..data import cross_split_overlap, load_split, read_report, split_shape
from ..data.augment import measured_gain
from ..rundir import RunDir
from ..scoring.tasks import TaskSet, load_task
from .embeddings import load_embeddings
from .evaluate import Evaluation


@dataclass
class Finding:
    check: str
    fired: bool
    message: str
    fix: str = ""


COLLAPSE_COSINE = 0.9  # mean pairwise cosine of distinct test texts above this: the space has collapsed
OVERFIT_DROP = 0.01  # the validation metric fell this far below its best while the training loss fell
MIN_TRAIN_ROWS = 500
MIN_IN_BATCH_BATCHES = 20  # in-batch-negative losses need many distinct batches to learn from


def _mean_pairwise_cosine(embeddings: np.ndarray, sample: int, seed: int) -> tuple[float, int]:
    if len(embeddings) > sample:
        embeddings = embeddings[np.random.default_rng(seed).choice(len(embeddings), sample, replace=False)]
    return mean_cosine_of_pairs(embeddings), len(embeddings)


def check_collapse(embeddings: np.ndarray, base_embeddings: np.ndarray | None = None,
                   threshold: float = COLLAPSE_COSINE, sample: int = 500, seed: int = 0) -> Finding:
    """Fires when the fine-tuned texts crowd together (high mean pairwise cosine) more than the
    base model's did: a space that was already that tight was not collapsed by the training."""
    mean, n = _mean_pairwise_cosine(embeddings, sample, seed)
    base = _mean_pairwise_cosine(base_embeddings, sample, seed)[0] if base_embeddings is not None else None
    fired = mean > threshold and (base is None or mean > base + 0.02)
    message = f"mean pairwise cosine of {n} test texts is {mean:.3f}"
    if base is not None:
        message += f" (base model: {base:.3f})"
    return Finding("collapsed embeddings", fired, message,
                   "lower the learning rate, check the loss fits the data (labels on the right scale), keep "
                   "train.collapse_threshold on to stop such runs early" if fired else "")


def check_overfitting(summary: dict[str, Any] | None, drop: float = OVERFIT_DROP) -> Finding:
    if not summary:
        return Finding("overfitting", False, "no training summary (training.json) to read")
    key, greater = summary["metric_for_best_model"], summary.get("greater_is_better", True)
    curve = [(e["step"], e[key]) for e in summary.get("log_history", []) if key in e]
    losses = [(e["step"], e["loss"]) for e in summary.get("log_history", []) if "loss" in e]
    if len(curve) < 2 or len(losses) < 2:
        return Finding("overfitting", False, f"too few validation points ({len(curve)}) to judge")
    values = np.array([v for _, v in curve], dtype=float)
    best_at = int(np.argmax(values) if greater else np.argmin(values))
    worsened = (values[best_at] - values[-1]) if greater else (values[-1] - values[best_at])
    best_step = curve[best_at][0]
    loss_at_best = [loss for s, loss in losses if s <= best_step] or [losses[0][1]]
    loss_fell = losses[-1][1] < loss_at_best[-1]
    fired = worsened > drop and loss_fell and best_at < len(values) - 1
    name = key.removeprefix("eval_")
    message = (f"{name} peaked at step {best_step} ({values[best_at]:.4f}) and ended at {values[-1]:.4f} while the "
               f"training loss kept falling" if fired else f"{name} ended within {drop} of its best")
    kept_best = summary.get("kept_checkpoint", summary.get("best_checkpoint")) == summary.get("best_checkpoint")
    kept = ("the best checkpoint was restored" if kept_best else
            "the last model was kept: on the validation split the best checkpoint was not better beyond the noise "
            "(train.restore_best)")
    return Finding("overfitting", fired, message,
                   f"{kept}; to spend less time past it, set train.early_stopping_patience, fewer train.epochs, "
                   "a lower train.learning_rate or more train.weight_decay" if fired else "")


def check_score_scale(task: TaskSet, similarity: np.ndarray | None = None) -> Finding:
    """Gold scores must be on the 0..1 scale the similarity losses compare cosines against."""
    gold_kind = shapes.get(task.shape).gold
    if gold_kind == "score":
        gold = task.items["score"].to_numpy(dtype=float)
        if gold.min() < 0 or gold.max() > 1:
            return Finding("score scale", True, f"gold scores span {gold.min():g}..{gold.max():g}, not 0..1",
                           "set data.score_scale to the data's range (e.g. [0, 5]) so scores are normalised")
        if similarity is not None and len(similarity) > 2 and np.ptp(gold) > 0:
            spread_ratio = float(np.ptp(similarity) / np.ptp(gold))
            if spread_ratio < 0.2:
                return Finding("score scale", True, f"cosines span only {np.ptp(similarity):.3f} of the gold scores' "
                               f"{np.ptp(gold):.3f}", "check the score scale and that the loss is a similarity loss")
        return Finding("score scale", False, f"gold scores within 0..1 ({gold.min():g}..{gold.max():g})")
    if gold_kind == "binary":
        labels = set(task.items["label"].astype(int))
        fired = not labels <= {0, 1}
        return Finding("score scale", fired, f"labels {sorted(labels)}" + (" are not 0/1" if fired else " are 0/1"),
                       "map the labels to 0 (different) and 1 (same)" if fired else "")
    return Finding("score scale", False, f"{task.shape} has no scores to scale")


def check_batch_duplicates(train, plan: dict[str, Any], batch_sampler: str) -> Finding:
    """In-batch-negative losses score every other row of a batch as a negative: a duplicate text in
    the same batch is then a false negative."""
    from ..training.samplers import NO_DUPLICATE_SAMPLERS

    if not plan.get("in_batch_negatives"):
        return Finding("duplicates in in-batch-negative batches", False, "the loss does not use in-batch negatives")
    if batch_sampler in NO_DUPLICATE_SAMPLERS or batch_sampler in ("length_grouped", "topic_grouped"):  # config names
        return Finding("duplicates in in-batch-negative batches", False,
                       f"the {batch_sampler} batch sampler keeps duplicate texts out of a batch")
    columns = [c for c in ("anchor", "positive", "sentence1", "sentence2") if c in train.columns]
    duplicated = {c: int(train[c].duplicated().sum()) for c in columns}
    total = sum(duplicated.values())
    fired = total > 0
    counts = ", ".join(f"{c}: {n}" for c, n in duplicated.items() if n)
    return Finding("duplicates in in-batch-negative batches", fired,
                   f"{total} repeated texts ({counts}) can share a batch under the {batch_sampler} sampler"
                   if fired else "no repeated texts in the train split",
                   "set train.batch_sampler=no_duplicates (or auto)" if fired else "")


def check_data_size(n_train: int, loss_name: str, batch_size: int, in_batch_negatives: bool,
                    shape: str | None = None) -> Finding:
    """Fires below MIN_TRAIN_ROWS (or too few in-batch-negative batches); the fix names the
    augmentation that fits the shape, each with its measured gain (data/augment/measured_gains.tsv)."""
    needed = max(MIN_TRAIN_ROWS, MIN_IN_BATCH_BATCHES * batch_size if in_batch_negatives else 0)
    fired = n_train < needed
    fix = ""
    if fired:
        fix = "add rows: data.augment (synonyms, back-translation), synthetic pairs, or unsupervised SimCSE on " \
              "unlabeled text; or a smaller train.batch_size"
        if shape is not None and shapes.get(shape).silver_labels is not None:
            silver, synonyms = measured_gain("augmented_sbert", shape), measured_gain("synonyms", shape)
            fix += (f". For {shape} data: data.augment.augmented_sbert=true (a cross-encoder trained on your pairs "
                    f"labels recombined pairs of your sentences; it helps on some data and hurts on other, so "
                    f"compare a run with it to one without on validation; measured: {silver}), "
                    f"data.augment.synonyms=true (measured: {synonyms})")
    return Finding("too little data for the loss", fired,
                   f"{n_train} train rows for {loss_name}" + (f"; it needs about {needed}" if fired else ""), fix)


def check_test_overlap(splits: dict[str, Any], shape: str) -> Finding:
    """Test items (or their texts) that also occur in train or validation inflate the test score."""
    overlap = cross_split_overlap(splits, shape)
    # A shared sentence between two different pairs is common (STS-B) and mild; a shared item, or a
    # shared query or text where the text is the whole item, is leakage.
    whole_item = shapes.get(shape).shared_text_is_leak
    shared = {pair: info for pair, info in overlap.items()
              if pair.endswith("test") and (info["items"] or (whole_item and info["texts"]))}
    detail = "; ".join(f"{pair}: {info['items']} items and {info['texts']} texts shared"
                       + (f", e.g. {info['examples'][0]}" if info["examples"] else "") for pair, info in shared.items())
    texts = sum(info["texts"] for pair, info in overlap.items() if pair.endswith("test"))
    return Finding("test set overlaps training", bool(shared),
                   detail or f"no test item appears in train or validation ({texts} single texts are shared)",
                   "set data.remove_cross_split_overlap=true and re-run the data stage (or split by group)"
                   if shared else "")


def run_doctor(run: RunDir, config: RunConfig, evaluation: Evaluation | None = None) -> list[Finding]:
    """Every doctor check on a finished run."""
    report = read_report(run)
    plan = read_json(run.plan_path) if run.plan_path.is_file() else {}
    summary = read_json(run.training_summary_path) if run.training_summary_path.is_file() else None
    frames = {split: load_split(run, split).to_pandas() for split in ("train", "validation", "test")
              if run.split_path(split).is_file()}
    task = evaluation.task if evaluation else load_task(run, config)
    stored = load_embeddings(run) if (run.eval_dir / "embeddings.npz").is_file() else {}
    findings = []
    if "embeddings_fine_tuned" in stored:
        findings.append(check_collapse(stored["embeddings_fine_tuned"], stored.get("embeddings_base"),
                                       seed=config.seed))
    findings.append(check_overfitting(summary))
    similarity = (evaluation.scores["fine_tuned"].pair_similarity
                  if evaluation and shapes.get(task.shape).gold == "score" else None)
    findings.append(check_score_scale(task, similarity))
    sampler = (summary or {}).get("batch_sampler") or config.train.batch_sampler
    if "train" in frames:
        findings.append(check_batch_duplicates(frames["train"], plan, sampler))
    loss_name = (plan.get("loss") or {}).get("name", config.loss.name)
    shape = split_shape(report, "test")
    findings.append(check_data_size(len(frames.get("train", [])), loss_name, config.train.batch_size,
                                    bool(plan.get("in_batch_negatives")), shape))
    findings.append(check_test_overlap({s: f for s, f in frames.items() if s != "train" or
                                        split_shape(report, "train") == shape}, shape))
    return findings


# A fired check's row: amber with dark text, readable on JupyterLab's light and dark themes.
SEVERITY_STYLES = {"WARN": "background-color: #fff3c4; color: #4d3800", "ok": ""}


def doctor_table(findings: list[Finding]):
    """The findings as a styled table (a pandas Styler; its DataFrame is ``.data``): the full text of
    each finding and fix, wrapped, and each fired check's row highlighted."""
    import pandas as pd

    frame = pd.DataFrame([{"check": f.check, "status": "WARN" if f.fired else "ok", "finding": f.message,
                           "suggested fix": f.fix} for f in findings],
                         columns=["check", "status", "finding", "suggested fix"])
    return (wrapped_text_table(frame, ["finding", "suggested fix"])
            .apply(lambda row: [SEVERITY_STYLES[row["status"]]] * len(row), axis=1))
