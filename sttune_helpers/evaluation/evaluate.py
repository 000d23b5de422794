"""The evaluation stage's main step: which models are compared, scoring each on the test split and
on every part of the general reference's report half, and writing eval/metrics.json,
embeddings.npz, similarities.npz and errors.csv."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import shapes
from ..config import RunConfig
from ..core.hardware import resolve_encoding_precision
from ..core.io import atomic_write_csv, atomic_write_json
from ..core.progress import Progress, number
from ..core.statistics import Bootstrap, paired_comparison
from ..modeling import load_model, resolve_model_source
from ..rundir import RunDir
from ..scoring import embedding_cache
from ..scoring.embedding_cache import cache_directory, for_model
from ..scoring.errors import EvaluationError
from ..scoring.models import ModelScores, score_model
from ..scoring.reference import KIND, GeneralReference, general_reference, part_name
from ..scoring.tasks import TaskSet, load_task
from .embeddings import save_embeddings
from .error_analysis import error_table

BEFORE_SELECTION = "before_selection"


def model_location(path: str) -> str:
    """A run directory stands for its fine-tuned model."""
    candidate = Path(path) / "model"
    if Path(path).is_dir() and (Path(path) / "manifest.json").is_file() and candidate.is_dir():
        return str(candidate)
    return path


def compared_models(run: RunDir, config: RunConfig, extra: dict[str, str] | None = None) -> dict[str, str]:
    """base, fine_tuned (model/, the selection's choice), before_selection (the pure fine-tuned model,
    where selection chose another), then config.eval.extra_models and ``extra`` (name -> path, hub
    name or run)."""
    models = {"base": config.model.name, "fine_tuned": str(run.model_dir)}
    if run.fine_tuned_dir.is_dir():
        models[BEFORE_SELECTION] = str(run.fine_tuned_dir)
    for name, path in {**config.eval.extra_models, **(extra or {})}.items():
        if name in ("base", "fine_tuned", BEFORE_SELECTION):
            raise EvaluationError(f"extra model name {name!r} is taken: base, fine_tuned and {BEFORE_SELECTION} "
                                  "are compared already")
        models[name] = model_location(path)
    return models


def _report_block(task: TaskSet, scores: dict[str, ModelScores], paths: dict[str, str], boot: Bootstrap) -> dict:
    def location(path):
        try:
            return resolve_model_source(path).location
        except Exception:  # an in-memory model (interpolation) has no source to resolve
            return path

    shape = shapes.get(task.shape)
    models = {name: {"path": location(paths[name]), "metrics": s.metrics} for name, s in scores.items()}
    values = {name: s.metrics for name, s in scores.items()}
    dists = {name: s.resampled for name, s in scores.items()}
    comparisons = [paired_comparison(name, "base", metric, values, dists, boot)
                   for name in scores if name != "base" for metric in shape.metrics]
    return {"primary_metric": shape.primary_metric, "n_test": task.n, "models": models,
            "comparisons": comparisons}


@dataclass
class Evaluation:
    """What evaluate_models computed: the report (metrics.json) and the per-item scores."""

    report: dict[str, Any]
    task: TaskSet
    scores: dict[str, ModelScores]
    reference: GeneralReference | None = None  # the report half; None when eval.reference is off
    reference_scores: dict[str, dict[str, ModelScores]] = field(default_factory=dict)  # part -> model -> scores
    loaded: dict[str, Any] = field(default_factory=dict)  # base and fine_tuned in memory, for interpolation


def _reference_boots(reference: GeneralReference, config: RunConfig) -> dict[str, Bootstrap]:
    """One bootstrap per part, seeded apart from the test split's."""
    return {part_name(task): Bootstrap.draw(task.n, config.eval.bootstrap_samples, config.eval.confidence,
                                            config.seed + 1 + i)
            for i, task in enumerate(reference.parts)}


def reference_report(reference: GeneralReference | None, scores: dict[str, dict[str, ModelScores]],
                     paths: dict[str, str], boots: dict[str, Bootstrap]) -> dict:
    """metrics.json's "reference" block: each part's models and comparisons, and what was left out."""
    if reference is None:
        return {}
    parts = {}
    for task in reference.parts:
        name = part_name(task)
        parts[name] = {"name": task.name, "kind": KIND[name], **_report_block(task, scores[name], paths, boots[name])}
        if task.corpus is not None:
            parts[name]["corpus_size"] = len(task.corpus)  # eval.reference_corpus_size may have cut it
    return {"half": reference.half, "parts": parts, "excluded": reference.excluded}


def evaluate_models(run: RunDir, config: RunConfig, models: dict[str, str] | None = None,
                    loaded: dict[str, Any] | None = None) -> Evaluation:
    """Evaluate each named model on the test split and, when config.eval.reference is on, on every
    part of the general reference's report half; write eval/metrics.json, embeddings.npz,
    similarities.npz and errors.csv. ``loaded`` maps names to models already in memory (skips
    loading them again)."""
    models = models or compared_models(run, config)
    loaded = dict(loaded or {})
    task = load_task(run, config)
    boot = Bootstrap.draw(task.n, config.eval.bootstrap_samples, config.eval.confidence, config.seed)
    reference = None
    if config.eval.reference and not shapes.get(task.shape).measured_on_reference:
        reference = general_reference(run, config, "report")
    reference_boots = _reference_boots(reference, config) if reference else {}
    scores: dict[str, ModelScores] = {}
    reference_scores: dict[str, dict[str, ModelScores]] = {part: {} for part in reference_boots}
    precision = config.eval.precision
    reference_precision = config.eval.reference_precision
    cache_dir = cache_directory(run.root.parent) if config.eval.cache_embeddings else None
    task_metric = shapes.get(task.shape).primary_metric
    # The pure fine-tuned model's general ability repeats what selection weighed: one more pass over the
    # reference, paid only where asked for or where the interpolation sweep starts from it.
    skips_reference = {BEFORE_SELECTION} & set(models) if not (
        config.eval.reference_before_selection or config.eval.interpolation_alphas) else set()
    progress = Progress("evaluation", total=len(models) * (1 + len(reference_boots))
                        - len(skips_reference) * len(reference_boots), unit="scorings")
    for name, path in models.items():
        model = loaded.get(name) or load_model(path, device=config.model.device,
                                               max_seq_length=config.model.max_seq_length)
        if name in ("base", "fine_tuned", BEFORE_SELECTION):
            loaded[name] = model  # kept for the interpolation sweep
        # The weights' digest once per model, not once per split or precision.
        weights = embedding_cache.weights_digest(model) if cache_dir is not None else None
        test_precision = resolve_encoding_precision(model, config.eval.precision)
        disk = for_model(cache_dir, model, test_precision, config.eval.batch_size, weights)
        scores[name] = score_model(task, model, boot, config.eval.batch_size, config.seed, config.eval.precision,
                                   cache=disk)
        progress.milestone(progress.done + 1, f"{name} on test: {task_metric} "
                                              f"{number(scores[name].metrics[task_metric]['value'])}")
        reference_precision = resolve_encoding_precision(model, config.eval.reference_precision)
        reference_disk = disk if reference_precision == test_precision else for_model(
            cache_dir, model, reference_precision, config.eval.batch_size, weights)
        for part in reference.parts if reference and name not in skips_reference else []:
            reference_scores[part_name(part)][name] = score_model(part, model, reference_boots[part_name(part)],
                                                                  config.eval.batch_size, config.seed,
                                                                  reference_precision, cache=reference_disk)
            part_metric = shapes.get(part.shape).primary_metric
            value = reference_scores[part_name(part)][name].metrics[part_metric]["value"]
            progress.milestone(progress.done + 1,
                               f"{name} on reference {part_name(part)}: {part_metric} {number(value)}")
        precision = test_precision
    report = {"task": task.shape, "test_set": task.name, "confidence": config.eval.confidence,
              # the fine-tuned models encode the test split with it (their default prompt), the base model
              # and every model on the reference without it
              "task_prompt": config.train.task_prompt,
              "bootstrap_samples": config.eval.bootstrap_samples, "precision": precision,
              **_report_block(task, scores, models, boot)}
    report["reference"] = reference_report(reference, reference_scores, models, reference_boots)
    if reference:
        report["reference"]["precision"] = reference_precision
    if reference and skips_reference:
        report["reference"]["not_scored"] = {name: "eval.reference_before_selection is off" for name in skips_reference}
    if shapes.get(task.shape).thresholds_from_validation:
        report["thresholds"] = {name: s.thresholds for name, s in scores.items()}
    report["interpolation"] = []
    report["final_model"] = None
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    save_embeddings(run, task, scores)
    atomic_write_csv(run.eval_dir / "errors.csv", error_table(task, scores))  # texts: formula-safe
    atomic_write_json(run.metrics_path, report)
    return Evaluation(report, task, scores, reference, reference_scores, loaded)
