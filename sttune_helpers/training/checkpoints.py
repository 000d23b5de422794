"""Checkpoints: the newest complete one (to resume from), and train.restore_best's choice between
the best checkpoint and the last model after training (a paired bootstrap on the validation split
for "if_significant"), loaded into the model that is saved."""

from __future__ import annotations

import time
from typing import Any

from .. import shapes
from ..config import RunConfig
from ..core.io import read_json
from ..core.reporting import get_logger
from ..core.statistics import paired_comparison
from ..data import read_report
from ..rundir import RunDir
from .candidate_scoring import CandidateScorer
from .setup import TrainingSetup
from .weights import State, snapshot

log = get_logger(__name__)


def last_checkpoint(run: RunDir):
    """The newest complete checkpoint: the trainer writes trainer_state.json last, so a checkpoint
    that a kill cut short (no such file, or half of it) is skipped."""
    def complete(folder) -> bool:
        try:
            read_json(folder / "trainer_state.json")
            return True
        except (OSError, ValueError):
            return False

    checkpoints = sorted(run.checkpoints_dir.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    checkpoints = [c for c in checkpoints if complete(c)]
    return checkpoints[-1] if checkpoints else None


def checkpoint_step(path) -> int:
    return int(str(path).rsplit("-", 1)[-1])


def compare_checkpoints(run: RunDir, config: RunConfig, scorer: CandidateScorer, best_state: State,
                        last_state: State | None, metric_for_best_model: str, best_step: int,
                        last_step: int, evaluations: int = 2) -> dict[str, Any]:
    """The rule of train.restore_best: which of the best and the last model training keeps, and
    why. "if_significant" scores both weight states on the validation split with ``scorer`` (model
    selection reuses its scores) and keeps the best only where the paired bootstrap interval of
    best - last lies above 0 at the family-wise level over the ``evaluations`` - 1 earlier validation
    points the best was the highest of (Bonferroni): the best of several is better than the last on
    the same items more often than a single comparison's 95% allows (bench/RESULTS.md, session 19)."""
    rule = config.train.restore_best
    record = {"rule": rule, "best_step": best_step, "last_step": last_step, "metric": None, "best_value": None,
              "last_value": None, "difference": None, "ci95": [None, None], "p_value": None}
    if rule != "if_significant":
        kept = "best" if rule == "always" else "last"
        return {**record, "kept": kept, "reason": f"train.restore_best={rule}: the {kept} model is kept"}

    metric = metric_for_best_model.removeprefix("eval_").removeprefix("validation_")
    shape = shapes.get(read_report(run)["shape"])
    # A shape measured on the reference set has no labelled validation items of its own.
    if shape.measured_on_reference or metric not in shape.metrics:
        return {**record, "kept": "best", "reason": f"the validation {metric} has no per-item values to compare "
                f"checkpoints by: the best checkpoint (step {best_step}) is restored"}
    task = scorer.validation
    scores = {"best": scorer.validation_scores(best_state), "last": scorer.validation_scores(last_state)}
    values, dists = {n: s.metrics for n, s in scores.items()}, {n: s.resampled for n, s in scores.items()}
    comparison = paired_comparison("best", "last", metric, values, dists, scorer.boot)
    family = scorer.boot.family_wise(evaluations - 1)
    family_interval = paired_comparison("best", "last", metric, values, dists, family)["ci95"]
    low = family_interval[0]
    kept = "best" if low is not None and low > 0 else "last"
    interval = (f"[{family_interval[0]:+.4f}, {family_interval[1]:+.4f}]" if low is not None else "(no interval)")
    difference = comparison["difference"]
    earlier = max(1, evaluations - 1)
    reason = (f"on the {task.n} validation items, best (step {best_step}) - last (step {last_step}) {metric} = "
              f"{difference:+.4f}, {family.confidence:.1%} interval {interval} (family-wise over the "
              f"{earlier} earlier validation point{'s' if earlier > 1 else ''}): "
              + ("the best checkpoint is better beyond the noise and is restored" if kept == "best" else
                 "not better beyond the noise, so the last (more trained) model is kept"))
    return {**record, "metric": metric, "best_value": scores["best"].metrics[metric]["value"],
            "last_value": scores["last"].metrics[metric]["value"], "difference": difference,
            "ci95": comparison["ci95"], "p_value": comparison["p_value"], "n_validation": task.n,
            "evaluations": evaluations, "confidence": family.confidence, "ci_family": family_interval,
            "precision": scorer.precision,
            "kept": kept, "reason": reason}


def keep_checkpoint(run: RunDir, config: RunConfig, model, state, setup: TrainingSetup,
                    scorer: CandidateScorer) -> dict[str, Any] | None:
    """Apply train.restore_best after the trainer restored the best checkpoint into ``model``: load
    the last checkpoint's weights instead where the rule keeps the last model. None where the best
    checkpoint is the last one (nothing to choose)."""
    from sentence_transformers import SentenceTransformer

    last = last_checkpoint(run)
    if state.best_model_checkpoint is None or last is None:
        return None
    best_step, last_step = checkpoint_step(state.best_model_checkpoint), checkpoint_step(last)
    if best_step == last_step:
        return None
    last_state = None if config.train.restore_best == "always" else snapshot(
        SentenceTransformer(str(last), device=str(model.device)))
    started = time.perf_counter()
    evaluations = sum(setup.metric_for_best_model in entry for entry in state.log_history)
    choice = compare_checkpoints(run, config, scorer, snapshot(model), last_state, setup.metric_for_best_model,
                                 best_step, last_step, max(2, evaluations))
    choice["seconds"] = round(time.perf_counter() - started, 1)
    choice["kept_checkpoint"] = str(last) if choice["kept"] == "last" else state.best_model_checkpoint
    if choice["kept"] == "last":
        model.load_state_dict(last_state)
        try:  # the model card names the step of the weights it ships
            model.model_card_data.set_best_model_step(last_step)
        except AttributeError:
            pass
    log.info(f"checkpoint: {choice['reason']}")
    return choice
