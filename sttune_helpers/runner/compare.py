"""Runs side by side (`sttune compare`): the settings that differ (every setting with ``all``), the
test metrics of each model with their intervals, the fine-tuned model's difference from the base,
the general reference's parts, and where the time went; as text or as JSON."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..rundir import RunDir, RunDirError
from .runs import (
    MISSING,
    RunSummary,
    differing_settings,
    is_run_dir,
    left_aligned,
    metric_text,
    setting_text,
    summarise_run,
)
from .time_report import time_report

SETTING_WIDTH = 40  # a setting's value in the text table; JSON has it whole
TEST_PART = "test"
DIFFERENCE = "fine_tuned - base"


@dataclass
class RunComparison:
    """``runs`` in the order given, labelled by ``labels``; each table maps a row to one cell per run."""

    runs: list[RunSummary]
    labels: list[str]
    settings: dict[str, list[Any]]  # dotted key -> each run's value (MISSING where a run lacks it)
    settings_total: int  # how many settings the runs have in all
    metrics: dict[tuple[str, str, str], list[dict[str, Any] | None]]  # (part, model, metric) -> each run's result
    time: dict[str, list[float | None]]  # time part -> each run's seconds, "total" last

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": [{"label": label, **{k: v for k, v in run.as_dict().items() if k != "settings"}}
                     for label, run in zip(self.labels, self.runs)],
            "settings": {key: dict(zip(self.labels, values)) for key, values in self.settings.items()},
            "metrics": [{"part": part, "model": model, "metric": metric, "runs": dict(zip(self.labels, cells))}
                        for (part, model, metric), cells in self.metrics.items()],
            "time_seconds": {part: dict(zip(self.labels, values)) for part, values in self.time.items()},
        }


def resolve_run(run: str, runs_dir: Path) -> Path:
    """A run's folder from a path to it, or from its name in ``runs_dir`` (SWEEP/trial-NNN too)."""
    for folder in (Path(run), Path(runs_dir) / run):
        if folder.is_dir() and is_run_dir(folder):
            return folder
    raise RunDirError(f"no run {run!r}: neither a run directory nor a run in {runs_dir} "
                      f"(`sttune runs --runs-dir {runs_dir}` lists them)")


def run_labels(folders: list[Path]) -> list[str]:
    """Each run's folder name; a name that several runs share gets as many of its parents as it
    takes to tell them apart (two runs folders' smoke), else a number."""
    parts = [folder.resolve().parts for folder in folders]
    labels = [p[-1] for p in parts]
    for depth in range(2, max(len(p) for p in parts) + 1):
        clashing = [i for i, label in enumerate(labels) if labels.count(label) > 1]
        if not clashing:
            return labels
        for i in clashing:
            labels[i] = "/".join(parts[i][-depth:])
    return labels if len(set(labels)) == len(labels) else [f"{p[-1]}#{i}" for i, p in enumerate(parts, start=1)]


def compare_runs(runs: list[str], runs_dir: Path, all_settings: bool = False) -> RunComparison:
    folders = [resolve_run(run, runs_dir) for run in runs]
    seen: dict[Path, str] = {}
    for run, folder in zip(runs, folders):
        if folder.resolve() in seen:
            raise RunDirError(f"{run!r} and {seen[folder.resolve()]!r} are the same run: name each run once")
        seen[folder.resolve()] = run
    if len(folders) < 2:
        raise RunDirError("compare needs two runs or more, e.g. `sttune compare RUN_A RUN_B`")
    labels = run_labels(folders)
    summaries = [summarise_run(folder, name=label) for folder, label in zip(folders, labels)]
    configs = [s.settings for s in summaries if s.settings is not None]
    every_key = list(dict.fromkeys(key for config in configs for key in config))
    keys = every_key if all_settings else differing_settings(summaries)
    settings = {key: [MISSING if s.settings is None else s.settings.get(key, MISSING) for s in summaries]
                for key in keys}
    return RunComparison(summaries, labels, settings, len(every_key), metrics_side_by_side(summaries),
                         time_side_by_side(summaries))


def metrics_side_by_side(summaries: list[RunSummary]) -> dict[tuple[str, str, str], list[dict[str, Any] | None]]:
    """(part, model, metric) -> each run's {"value", "ci95"} (a comparison adds "p_value"): every
    metric of every model on the test split, primary first, the fine-tuned model's difference from
    the base, the model kept after interpolation, then each reference part's primary metric."""
    rows: dict[tuple[str, str, str], list[dict[str, Any] | None]] = {}

    def put(row: tuple[str, str, str], index: int, cell: dict[str, Any]) -> None:
        rows.setdefault(row, [None] * len(summaries))[index] = cell

    for index, summary in enumerate(summaries):
        report = summary.report or {}
        for part, block in _blocks(report):
            primary = block.get("primary_metric")
            for model, entry in (block.get("models") or {}).items():
                results = entry.get("metrics") or {}
                metrics = [primary] if part != TEST_PART else [primary, *(m for m in results if m != primary)]
                for metric in metrics:
                    if metric in results:
                        put((part, model, metric), index, {"value": results[metric].get("value"),
                                                           "ci95": results[metric].get("ci95")})
            for comparison in block.get("comparisons") or []:
                if (comparison.get("a"), comparison.get("b"), comparison.get("metric")) == ("fine_tuned", "base",
                                                                                            primary):
                    put((part, DIFFERENCE, primary), index,
                        {key: comparison.get(key) for key in ("difference", "ci95", "p_value")})
            final = report.get("final_model") if part == TEST_PART else None
            if final and (final.get("scores") or {}).get("task") is not None:
                put((part, f"final (alpha={final.get('alpha')})", primary), index,
                    {"value": final["scores"]["task"], "ci95": None})
    return dict(sorted(rows.items(), key=_row_order(rows, summaries)))


def time_side_by_side(summaries: list[RunSummary]) -> dict[str, list[float | None]]:
    """Time part (as `sttune time` names them) -> each run's seconds; "total" last."""
    rows: dict[str, list[float | None]] = {}
    for index, summary in enumerate(summaries):
        try:
            parts = time_report(RunDir(Path(summary.path).resolve()))
        except Exception:  # no manifest (or a damaged one): the run's column stays empty
            continue
        for part in parts:
            rows.setdefault(part.part, [None] * len(summaries))[index] = part.seconds
    if rows:
        rows["total"] = [summary.seconds for summary in summaries]
    return rows


def format_comparison(comparison: RunComparison) -> str:
    import pandas as pd

    labels = comparison.labels
    lines = ["runs:"] + [f"  {label}: {run.path} ({run.status}, {run.task or 'task not known yet'}, "
                         f"{run.loss or 'loss not chosen yet'})" for label, run in zip(labels, comparison.runs)]
    for label, run in zip(labels, comparison.runs):
        lines += [f"  {label}: {problem}" for problem in run.problems]
        if run.report is not None and not run.metrics_current:
            lines.append(f"  {label}: its eval/metrics.json is stale (from before an earlier stage was run again)")

    shown = "every setting" if len(comparison.settings) == comparison.settings_total else (
        f"the settings that differ ({len(comparison.settings)} of {comparison.settings_total}; --all shows "
        "every one)")
    lines += ["", f"{shown}:"]
    if comparison.settings:
        frame = pd.DataFrame([{"setting": key, **{label: setting_text(value, SETTING_WIDTH)
                                                  for label, value in zip(labels, values)}}
                              for key, values in comparison.settings.items()])
        lines.append(_indent(left_aligned(frame)))
    else:
        lines.append("  none: the runs have the same config")

    lines += ["", "test metrics (95% CI):"]
    if comparison.metrics:
        frame = pd.DataFrame([{"part": part, "model": model, "metric": metric,
                               **{label: _cell_text(cell) for label, cell in zip(labels, cells)}}
                              for (part, model, metric), cells in comparison.metrics.items()])
        lines.append(_indent(left_aligned(frame)))
    else:
        lines.append("  none: no run has finished its evaluation")

    lines += ["", "time (seconds):"]
    if comparison.time:
        frame = pd.DataFrame([{"part": part, **{label: MISSING if s is None else f"{s:.1f}"
                                                for label, s in zip(labels, seconds)}}
                              for part, seconds in comparison.time.items()])
        lines.append(_indent(left_aligned(frame)))
    else:
        lines.append("  none: no stage has run")
    return "\n".join(lines)


def default_plot_path(labels: list[str]) -> Path:
    """compare-A-vs-B.png in the current folder (compare-N-runs.png where the names are long)."""
    name = "compare-" + "-vs-".join(re.sub(r"[^A-Za-z0-9._-]", "_", label) for label in labels) + ".png"
    return Path(name if len(name) <= 100 else f"compare-{len(labels)}-runs.png")


def _blocks(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(part, block with models and comparisons): the test split, then the reference's parts (an
    older metrics.json has one reference block without parts)."""
    blocks = [(TEST_PART, report)] if report.get("models") else []
    reference = report.get("reference") or {}
    if "parts" in reference:
        blocks += [(f"reference {part}", block) for part, block in (reference.get("parts") or {}).items()]
    elif reference.get("models"):
        blocks.append((f"reference {reference.get('name', '')}".rstrip(), reference))
    return blocks


def _row_order(rows: dict[tuple[str, str, str], Any], summaries: list[RunSummary]):
    """Sort key: the test split, then the reference parts; within a part the runs' primary metrics
    first; within a metric base, fine_tuned and their difference, then the other models."""
    parts = list(dict.fromkeys([TEST_PART, *(part for part, _, _ in rows)]))
    primaries = [s.metric for s in summaries if s.metric]
    metrics = list(dict.fromkeys([*primaries, *(metric for _, _, metric in rows)]))
    models = list(dict.fromkeys(["base", "fine_tuned", DIFFERENCE, *(model for _, model, _ in rows)]))
    return lambda item: (parts.index(item[0][0]), metrics.index(item[0][2]), models.index(item[0][1]))


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return MISSING
    if "difference" in cell:
        difference, (low, high), p_value = cell["difference"], cell.get("ci95") or (None, None), cell.get("p_value")
        if difference is None:
            return MISSING
        text = f"{difference:+.4f}" + (f" [{low:+.4f}, {high:+.4f}]" if low is not None and high is not None else "")
        return text + (f" p={p_value:.3f}" if p_value is not None else "")
    return metric_text(cell["value"], cell.get("ci95"))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())

