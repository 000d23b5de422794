"""What each run directory in a runs folder holds, in one line per run (`sttune runs`): its date,
status, task shape, loss, primary test metric with its interval and time, read from manifest.json,
config.yaml, data/report.json, plan.json and eval/metrics.json. A damaged or half-written run is
listed with what is wrong, never with a traceback; the settings that differ between the runs are
worked out from their config.yaml."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from ..config import load_config
from ..core.io import read_json
from ..rundir import STAGES, RunDir, RunDirError, process_state
from .time_report import format_duration, time_report

MISSING = "-"  # a value a run does not have (an unfinished stage, a setting its config lacks)
VALUE_WIDTH = 28  # a setting's value in the table; longer ones keep their end (a path's file name)


@dataclass
class RunSummary:
    """One run directory as `sttune runs` lists it; None where the run does not (yet) say."""

    name: str
    path: str
    created: str | None = None  # ISO time the run was created (manifest), else the folder's mtime
    status: str = "completed"
    task: str | None = None
    loss: str | None = None
    metric: str | None = None  # the task's primary metric, of the fine-tuned model on the test split
    value: float | None = None
    ci95: list[float | None] | None = None
    base_value: float | None = None  # the base model's, on the same items
    base_ci95: list[float | None] | None = None
    metrics_current: bool = True  # False: eval/metrics.json predates a re-run of an earlier stage
    seconds: float | None = None  # every timed stage, papermill and the kernel included (as `sttune time`)
    problems: list[str] = field(default_factory=list)  # files that could not be read, and why
    settings: dict[str, Any] | None = field(default=None, repr=False)  # config.yaml, flattened to dotted keys
    report: dict[str, Any] | None = field(default=None, repr=False)  # eval/metrics.json

    def as_dict(self, settings: Iterable[str] = ()) -> dict[str, Any]:
        """The summary without the whole config and metrics.json: only the named ``settings``."""
        listed = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("settings", "report")}
        return {**listed, "settings": None if self.settings is None
                else {key: self.settings.get(key, MISSING) for key in settings}}


def is_run_dir(folder: Path) -> bool:
    return (folder / "manifest.json").is_file() or (folder / "config.yaml").is_file()


def find_run_dirs(runs_dir: Path) -> list[Path]:
    """The folders of ``runs_dir`` that look like runs, and the runs one level down in a folder that
    holds runs itself (a sweep's trials); any other folder is listed too, as not a run. Hidden
    folders (.ipynb_checkpoints) are left out."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RunDirError(f"runs folder {runs_dir} does not exist (give another with --runs-dir)")
    found = []
    for folder in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            inner = [] if is_run_dir(folder) else [p for p in sorted(folder.iterdir()) if p.is_dir() and is_run_dir(p)]
        except OSError:  # unreadable: summarise_run says so
            inner = []
        found += inner or [folder]
    return found


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run in ``runs_dir`` (sweep trials as SWEEP/trial-NNN), oldest first."""
    runs_dir = Path(runs_dir)
    summaries = []
    for folder in find_run_dirs(runs_dir):
        name = folder.relative_to(runs_dir).as_posix()
        try:
            summaries.append(summarise_run(folder, name=name))
        except OSError as exc:  # a folder this user may not read: listed, the others still are
            summaries.append(RunSummary(name, str(folder), status=f"unreadable: {exc.strerror or exc}"))
    return sorted(summaries, key=lambda s: (s.created or "", s.name))


def summarise_run(folder: Path, name: str | None = None) -> RunSummary:
    """What ``folder`` holds; each file that cannot be read adds a line to ``problems``."""
    folder = Path(folder)
    summary = RunSummary(name=name or folder.name, path=str(folder))
    run = RunDir(folder.resolve())
    manifest = _read(summary, run.manifest_path, read_json)
    summary.settings = _settings(summary, run)
    if manifest is None and summary.settings is None and not summary.problems:
        summary.status = "not a run: no manifest.json or config.yaml"
        summary.created = _mtime(folder)
        return summary
    summary.created = (manifest or {}).get("created") or _mtime(folder)
    stages = (manifest or {}).get("stages") or {}
    summary.status = run_status(stages) if manifest is not None else (
        "unreadable manifest.json" if run.manifest_path.exists() else "not started")
    _read_task_and_loss(summary, run, stages)
    _read_metrics(summary, run, stages)
    if manifest is not None:
        try:
            parts = time_report(run)
            summary.seconds = round(sum(part.seconds for part in parts), 2) if parts else None
        except Exception as exc:  # a hand-edited manifest or training.json: the time is left out
            summary.problems.append(f"time: {type(exc).__name__}: {exc}")
    return summary


def run_status(stages: dict[str, Any]) -> str:
    """completed, failed at STAGE, interrupted at STAGE, running STAGE, or incomplete (the next stage)."""
    statuses = {stage: (stages.get(stage) or {}).get("status", "pending") for stage in STAGES}
    for stage in STAGES:
        if statuses[stage] in ("failed", "interrupted"):
            return f"{statuses[stage]} at {stage}"
        if statuses[stage] == "running":
            state = process_state(stages[stage])
            if state == "gone":  # killed without a chance to say so; `sttune run --resume` recovers it
                return f"interrupted at {stage}"
            return f"running {stage}" + (f" (on {stages[stage].get('host')})" if state == "elsewhere" else "")
    if all(status == "completed" for status in statuses.values()):
        return "completed"
    pending = next(stage for stage in STAGES if statuses[stage] != "completed")
    return f"incomplete: {pending} {statuses[pending]}"


def differing_settings(summaries: Iterable[RunSummary]) -> list[str]:
    """The dotted config keys whose values are not the same in every run that has a readable config
    (a key one run lacks differs), in the config's order."""
    configs = [s.settings for s in summaries if s.settings is not None]
    keys = list(dict.fromkeys(key for config in configs for key in config))
    return [key for key in keys
            if len({json.dumps(c.get(key, MISSING), sort_keys=True, default=str) for c in configs}) > 1]


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"learning_rate": 2e-5}} -> {"train.learning_rate": 2e-5}; lists and empty dicts stay values."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def setting_text(value: Any, width: int | None = None) -> str:
    """A setting as a -p override writes it (null, true, [0, 1]); cut to ``width`` keeping its end."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if width and len(text) > width:
        text = "…" + text[-(width - 1):]
    return text


def metric_text(value: float | None, ci95: list[float | None] | None = None) -> str:
    if value is None:
        return MISSING
    low, high = ci95 or (None, None)
    return f"{value:.4f}" + (f" [{low:.4f}, {high:.4f}]" if low is not None and high is not None else "")


def runs_table(summaries: list[RunSummary]):
    """The table `sttune runs` prints: one row per run; its settings that differ between the runs
    last, as -p KEY=VALUE overrides write them."""
    import pandas as pd

    keys = differing_settings(summaries)
    rows = []
    for s in summaries:
        metric = metric_text(s.value, s.ci95) + ("" if s.metrics_current else " (stale)")
        settings = {} if not keys else {"settings that differ": MISSING if s.settings is None else " ".join(
            f"{key}={setting_text(s.settings.get(key, MISSING), VALUE_WIDTH)}" for key in keys)}
        rows.append({"run": s.name, "date": _date_text(s.created), "status": s.status, "task": s.task or MISSING,
                     "loss": s.loss or MISSING, "metric": s.metric or MISSING, "test (95% CI)": metric,
                     "time": format_duration(s.seconds) if s.seconds is not None else MISSING,
                     **settings})
    return pd.DataFrame(rows)


def left_aligned(frame) -> str:
    """A frame of text as a table with every column aligned left (pandas aligns text right)."""
    rows = [[str(column) for column in frame.columns],
            *([str(v) for v in row] for row in frame.itertuples(index=False))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(frame.columns))]
    return "\n".join("  ".join(f"{v:<{w}}" for v, w in zip(row, widths)).rstrip() for row in rows)


def runs_json(summaries: list[RunSummary]) -> list[dict[str, Any]]:
    """`sttune runs --json`: each run's summary with the settings that differ between the runs."""
    keys = differing_settings(summaries)
    return [s.as_dict(keys) for s in summaries]


def format_runs(summaries: list[RunSummary], runs_dir: Path) -> str:
    if not summaries:
        return f"no runs in {runs_dir}"
    lines = [left_aligned(runs_table(summaries))]
    for s in summaries:
        lines += [f"{s.name}: {problem}" for problem in s.problems]
    if any(not s.metrics_current for s in summaries):
        lines.append("(stale): eval/metrics.json is from before an earlier stage was run again; "
                     "run the stages left with `sttune run --name NAME --resume`")
    return "\n".join(lines)


# --- reading the run's files -----------------------------------------------------------------


def _read(summary: RunSummary, path: Path, reader) -> Any:
    """``reader(path)``, or None where the file is missing; a file that cannot be read is a problem."""
    if not path.is_file():
        return None
    try:
        return reader(path)
    except Exception as exc:  # any damage (bad JSON/YAML, a stale schema): reported, the listing goes on
        summary.problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
        return None


def _settings(summary: RunSummary, run: RunDir) -> dict[str, Any] | None:
    """config.yaml with every default filled in; as written where it no longer loads (an older
    schema), so that its settings still compare."""
    known_problems = len(summary.problems)
    config = _read(summary, run.config_path, lambda path: load_config(path).to_dict())
    if config is None and len(summary.problems) > known_problems:
        import yaml

        try:
            config = yaml.safe_load(run.config_path.read_text())
        except Exception:
            config = None
    return flatten(config) if isinstance(config, dict) else None


def _read_task_and_loss(summary: RunSummary, run: RunDir, stages: dict[str, Any]) -> None:
    data_report = _read(summary, run.data_report_path, read_json) or {}
    plan = _read(summary, run.plan_path, read_json) or {}
    configured_shape = (summary.settings or {}).get("data.shape")
    summary.task = data_report.get("shape") or plan.get("task_shape") or (
        configured_shape if configured_shape not in (None, "auto") else None)
    summary.loss = ((plan.get("loss") or {}).get("name") or (stages.get("loss_selection") or {}).get("loss")
                    or (summary.settings or {}).get("loss.name"))


def _read_metrics(summary: RunSummary, run: RunDir, stages: dict[str, Any]) -> None:
    report = _read(summary, run.metrics_path, read_json)
    if not isinstance(report, dict):
        return
    summary.report = report
    summary.metrics_current = (stages.get("evaluation") or {}).get("status") == "completed"
    summary.task = report.get("task") or summary.task
    summary.metric = report.get("primary_metric")
    models = report.get("models") or {}
    fine_tuned = ((models.get("fine_tuned") or {}).get("metrics") or {}).get(summary.metric) or {}
    base = ((models.get("base") or {}).get("metrics") or {}).get(summary.metric) or {}
    summary.value, summary.ci95 = fine_tuned.get("value"), fine_tuned.get("ci95")
    summary.base_value, summary.base_ci95 = base.get("value"), base.get("ci95")


def _mtime(folder: Path) -> str | None:
    try:
        return datetime.fromtimestamp(os.stat(folder).st_mtime, timezone.utc).isoformat(timespec="seconds")
    except OSError:
        return None


def _date_text(created: str | None) -> str:
    """2026-12-04T19:49:01+00:00 -> 2026-12-04 19:49 (UTC, as the manifest records it)."""
    return created[:16].replace("T", " ") if created else MISSING
