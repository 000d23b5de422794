"""Where a run's time went: each stage's seconds from the manifest, training split by training.json
into steps, validation, checkpoint saving and what follows training, and papermill's and the
kernel's overhead; with the settings that cut the largest parts (`sttune time`, time_report.json)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass
from typing import Any

from ..core.io import atomic_write_json, read_json
from ..rundir import STAGES, RunDir, RunDirError

REPORT_FILE = "time_report.json"
OVERHEAD = "papermill and kernel"
TIMED = ("completed", "failed", "interrupted")  # statuses whose manifest entry has the stage's seconds

# The part of the report for a stage that the report does not split.
STAGE_PARTS = {"data_prep": "data", "loss_selection": "loss selection", "training": "training",
               "evaluation": "evaluation", "embedding_viz": "viz"}

# part -> (settings that cut it, what the time is). Every setting must exist in config/schema.py
# (a unit test checks); each is shown with the run's value.
HINTS: dict[str, tuple[tuple[str, ...], str]] = {
    "data": (("data.negatives.enabled", "data.augment.synonyms", "data.augment.back_translation",
              "data.augment.augmented_sbert", "data.max_train_rows", "train.validation_corpus_size"),
             "hard-negative mining and augmentation encode, translate or label the data (Augmented SBERT trains a "
             "cross-encoder); for retrieval the base model encodes the corpus once to mine the validation "
             "sub-corpus (the evaluation stage reuses those vectors)"),
    "loss selection": (("loss.bake_off", "loss.bake_off_steps", "loss.name"),
                       "the bake-off trains each candidate loss briefly; naming a loss skips it"),
    "training steps": (("train.epochs", "train.max_steps", "data.max_train_rows", "train.batch_size",
                        "train.precision", "data.negatives.enabled", "train.max_seq_length",
                        "model.attention_dropout"),
                       "the forward and backward passes: fewer epochs, steps or rows (mined hard negatives, where "
                       "data.negatives mines them, add a third text to every row), long texts cut shorter, or on a "
                       "CPU no attention dropout (PyTorch's fused attention kernel takes none)"),
    "validation": (("train.evaluations_per_epoch", "train.max_validation_share", "data.max_validation_rows",
                    "train.validation_corpus_size"),
                   "each validation during training scores the whole validation split (retrieval: against "
                   "train.validation_corpus_size documents)"),
    "checkpoint saving": (("train.evaluations_per_epoch",), "a checkpoint is saved at every validation"),
    "best vs last checkpoint": (("train.restore_best", "eval.bootstrap_samples"),
                                "the if_significant rule scores both on validation; always or never skips that"),
    "model selection": (("eval.select_model", "eval.selection_alphas", "eval.soup_size", "eval.selection_plot_all",
                         "eval.reference_corpus_size", "train.validation_corpus_size"),
                        "each candidate is scored on validation and on the reference sets"),
    "training setup and saving": ((), "loading the model and data, building the trainer, saving model/"),
    "evaluation": (("eval.reference", "eval.reference_max_pairs", "eval.reference_corpus_size",
                    "eval.reference_before_selection", "eval.reference_precision",
                    "eval.bootstrap_samples", "eval.extra_models", "eval.interpolation_alphas", "data.max_test_rows"),
                   "every model on the test split and the reference sets, with bootstrap intervals"),
    "viz": (("viz.max_points", "viz.n_epochs"), "encoding the sentences and the UMAP projection"),
    OVERHEAD: ((), "starting the kernel, importing torch and sentence-transformers, and the notebooks' cells "
                   "around each stage's work (--kernel-per-stage pays the imports in every stage)"),
}
# Under train.budget (the auto recipe) stage 02's time is the proxy search, not the bake-off.
AUTO_SEARCH_HINT = (("train.budget", "loss.name"),
                    "the auto recipe's proxy runs take about a third of train.budget; naming loss.name leaves "
                    "only the learning rate and batch size to search")
# Hints go to the largest part and to any other of the largest few that takes this share or more.
HINTED_PARTS, HINT_SHARE = 3, 0.10
HINT_WIDTH = 100  # the hints' lines, wrapped


@dataclass
class TimePart:
    """One line of the report: ``seconds`` of ``stage`` (None: several stages), ``share`` of the run."""

    part: str
    stage: str | None
    seconds: float
    status: str = "completed"
    share: float = 0.0
    hint: str | None = None


def record_stage_wall(run: RunDir, stage: str, seconds: float, kernel_start_seconds: float = 0.0) -> None:
    """Add to ``stage``'s manifest entry its wall time as the runner saw it (the notebook, papermill,
    the kernel) and, for the first stage of a shared kernel, the time to start that kernel."""
    manifest = run.manifest()
    entry = manifest["stages"].setdefault(stage, {"status": "pending"})
    entry["wall_seconds"] = round(seconds, 2)
    if kernel_start_seconds:
        entry["kernel_start_seconds"] = round(kernel_start_seconds, 2)
    run.record(stages=manifest["stages"])


def training_parts(summary: dict[str, Any], stage_seconds: float) -> list[TimePart]:
    """The training stage's seconds split by training.json: the trainer's time into steps, validation
    (the evaluations' eval_runtime) and checkpoint saving; then the choice of checkpoint, the model
    selection and the rest (loading, saving the model)."""
    trained = float(summary.get("train_seconds") or 0.0)
    resumed = summary.get("resumed_from_step")  # the history before a resume is not in train_seconds
    validation = sum(float(e["eval_runtime"]) for e in summary.get("log_history") or []
                     if "eval_runtime" in e and (resumed is None or e.get("step", 0) > resumed))
    saving = (summary.get("timing") or {}).get("checkpoint_save_seconds")
    choice = (summary.get("checkpoint_choice") or {}).get("seconds")
    selection = (summary.get("selection") or {}).get("seconds")
    parts = [TimePart("training steps", "training", max(0.0, trained - validation - (saving or 0.0))),
             TimePart("validation", "training", validation)]
    if saving is not None:  # a run trained before the timing was recorded: within the steps
        parts.append(TimePart("checkpoint saving", "training", float(saving)))
    if choice is not None:
        parts.append(TimePart("best vs last checkpoint", "training", float(choice)))
    if selection is not None:
        parts.append(TimePart("model selection", "training", float(selection)))
    rest = stage_seconds - trained - float(choice or 0.0) - float(selection or 0.0)
    parts.append(TimePart("training setup and saving", "training", max(0.0, rest)))
    return parts


def untimed_stages(run: RunDir) -> dict[str, str]:
    """The stages that are not in the report, with their status (pending, running)."""
    stages = _manifest(run)["stages"]
    return {stage: stages.get(stage, {}).get("status", "pending") for stage in STAGES
            if stages.get(stage, {}).get("status", "pending") not in TIMED}


def time_report(run: RunDir) -> list[TimePart]:
    """The run's time by part, in the order of the pipeline; the parts add up to the run's time.

    A stage counts with its latest attempt (pending and running stages are left out). Where the
    runner recorded a stage's wall time, what it spent outside the stage's own work is the
    papermill-and-kernel part."""
    stages = _manifest(run)["stages"]
    parts: list[TimePart] = []
    overhead, walled = 0.0, False
    for stage in STAGES:
        entry = stages.get(stage, {})
        status = entry.get("status", "pending")
        if status not in TIMED:
            continue
        work = float(entry.get("seconds") or 0.0)  # None where the notebook failed before opening the run
        if entry.get("wall_seconds") is not None:
            walled = True
            overhead += max(0.0, float(entry["wall_seconds"]) - work)
        overhead += float(entry.get("kernel_start_seconds") or 0.0)
        if stage == "training" and status == "completed" and run.training_summary_path.is_file():
            parts += training_parts(read_json(run.training_summary_path), work)
        elif entry.get("seconds") is not None:
            parts.append(TimePart(STAGE_PARTS[stage], stage, work, status=status))
    if walled:
        parts.append(TimePart(OVERHEAD, None, overhead))
    for part in parts:
        part.seconds = round(part.seconds, 2)
    total = sum(p.seconds for p in parts)
    for part in parts:
        part.share = part.seconds / total if total > 0 else 0.0
    config = _config(run)
    hinted = sorted((p for p in parts if p.seconds > 0), key=lambda p: p.seconds, reverse=True)[:HINTED_PARTS]
    for rank, part in enumerate(hinted):
        if part.part in HINTS and (rank == 0 or part.share >= HINT_SHARE):
            part.hint = hint(part.part, config, _shape(run))
    return parts


def hint(part: str, config: dict[str, Any] | None, shape: str | None = None) -> str:
    """What ``part`` is and the settings that cut it, with the run's values."""
    settings, what = HINTS[part]
    if part == "loss selection" and config is not None and _value(config, "train.budget") not in ("null", "?"):
        settings, what = AUTO_SEARCH_HINT
    if part == "validation" and shape == "retrieval":
        what += " (for retrieval, its queries against the validation corpus)"
    shown = [f"{key}={_value(config, key)}" if config is not None else key for key in settings]
    return f"{what}" + (f"; the settings that cut it{', now' if config is not None else ''}: {', '.join(shown)}"
                        if shown else "")


def format_time_report(rows: list[TimePart], untimed: dict[str, str] | None = None) -> str:
    """An aligned table, largest part first, with the hints under their parts."""
    total = sum(r.seconds for r in rows)
    if not rows:
        return "where the time went: no stage has run yet"
    labels = [r.part + ("" if r.status == "completed" else f" ({r.status})") for r in rows]
    width = max(len("part"), *(len(label) for label in labels))
    lines = [f"where the time went ({format_duration(total)}):", f"  {'part':<{width}}  {'seconds':>9}  {'share':>6}"]
    for row, label in sorted(zip(rows, labels), key=lambda pair: pair[0].seconds, reverse=True):
        lines.append(f"  {label:<{width}}  {row.seconds:>9.1f}  {row.share:>6.1%}")
        if row.hint:
            lines += textwrap.wrap(row.hint, width=HINT_WIDTH, initial_indent="      -> ", subsequent_indent=" " * 9,
                                   break_on_hyphens=False)
    lines.append(f"  {'total':<{width}}  {total:>9.1f}  {1 if total else 0:>6.1%}")
    if untimed:
        lines.append("not timed: " + ", ".join(f"{stage} ({status})" for stage, status in untimed.items()))
    return "\n".join(lines)


def report_dict(run: RunDir, rows: list[TimePart]) -> dict[str, Any]:
    return {"total_seconds": round(sum(r.seconds for r in rows), 2), "parts": [asdict(r) for r in rows],
            "untimed_stages": untimed_stages(run)}


def write_time_report(run: RunDir) -> str:
    """Write RUN/time_report.json; returns the table to print."""
    rows = time_report(run)
    atomic_write_json(run.root / REPORT_FILE, report_dict(run, rows))
    return format_time_report(rows, untimed_stages(run))


def _manifest(run: RunDir) -> dict[str, Any]:
    if not run.manifest_path.is_file():
        raise RunDirError(f"{run.root} has no manifest.json: it is not a run directory, or no stage has started")
    return run.manifest()


def _config(run: RunDir) -> dict[str, Any] | None:
    """The run's settings as a dict, for the hints' values (None where config.yaml cannot be read)."""
    try:
        return run.load_config().to_dict()
    except Exception:  # an old or hand-edited config must not stop a report about time
        return None


def _shape(run: RunDir) -> str | None:
    try:
        return read_json(run.data_report_path).get("shape")
    except (OSError, ValueError):
        return None


def _value(config: dict[str, Any], key: str) -> str:
    node: Any = config
    for name in key.split("."):
        if not isinstance(node, dict) or name not in node:
            return "?"
        node = node[name]
    return json.dumps(node, separators=(",", ":"))  # no spaces: the wrapped hint keeps each value whole


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
