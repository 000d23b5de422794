"""Benchmark the main job: `sttune run --preset default` on this machine.

Records the wall time of each stage and in total, and STS-B test Spearman of the base and the
fine-tuned model with 95% bootstrap intervals, into bench/RESULTS.md (appended, with the machine).

    .venv/bin/python bench/default_run.py [--preset default] [extra sttune run arguments]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), cpu)
        # Whether sttune trains in bf16 here depends on these units (modeling.cpu_fast_bf16): say which ran.
        from sttune_helpers.core.hardware import cpu_features

        flags = cpu_features()[1]
        cpu += (" (AMX bf16)" if "amx_bf16" in flags else " (AVX512-BF16, no AMX)" if "avx512_bf16" in flags
                else " (no bf16 units)")
    except OSError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            cpu += f"; GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def append_results(path: Path, text: str) -> None:
    """Append a section to the Markdown results log (bench/RESULTS.md unless --results says otherwise)."""
    if not path.exists():
        path.write_text("# Benchmark results\n\n", encoding="utf-8")
    with path.open("a", encoding="utf-8") as log:
        log.write(text.rstrip("\n") + "\n\n")


def publish_section(lines: list[str], total_s: float, path: Path, append: bool = True) -> None:
    """Print a bench's section with its total time, and append it to the results log where ``append``."""
    text = "\n".join([*lines, "", f"Total {total_s:.0f} s."]) + "\n"
    print(text)
    if append:
        append_results(path, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--name", default=None)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args, extra = parser.parse_known_args()
    name = args.name or f"bench-{args.preset}"
    runs_dir = HERE / "out"
    command = [sys.executable, "-m", "sttune_helpers.cli", "run", "--preset", args.preset, "--name", name,
               "--runs-dir", str(runs_dir), "--overwrite", *extra]
    started = time.perf_counter()
    completed = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    total = time.perf_counter() - started
    if completed.returncode != 0:
        print("benchmark run failed", file=sys.stderr)
        return completed.returncode
    run = runs_dir / name
    manifest = json.loads((run / "manifest.json").read_text())
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    training = json.loads((run / "training.json").read_text())
    metric = metrics["primary_metric"]

    def cell(model: str) -> str:
        m = metrics["models"][model]["metrics"][metric]
        return f"{m['value']:.4f} [{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]"

    comparison = next(c for c in metrics["comparisons"] if c["metric"] == metric)
    stages = manifest["stages"]
    lines = [
        f"### `sttune run --preset {args.preset}` ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- machine: {machine()}",
        f"- command: `python bench/default_run.py --preset {args.preset} {' '.join(extra)}`".rstrip() ,
        f"- training: {training['loss']}, {training['global_step']}/{training['max_steps']} steps"
        + (" (early stop)" if training["stopped_early"] else "")
        + f", precision {training['precision']}, {training['train_samples_per_second']:.1f} samples/s, "
          f"best validation {training['metric_for_best_model'].removeprefix('eval_')} {training['best_metric']:.4f}"
        + (f"; {training['checkpoint_choice']['reason']}" if training.get("checkpoint_choice") else ""),
        f"- test {metric} (n={metrics['n_test']}, 95% bootstrap CI): base {cell('base')}, "
        f"fine-tuned {cell('fine_tuned')}; difference {comparison['difference']:+.4f} "
        f"[{comparison['ci95'][0]:+.4f}, {comparison['ci95'][1]:+.4f}], p={comparison['p_value']:.4f}",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {stage} | {entry.get('seconds', float('nan')):.1f} |" for stage, entry in stages.items()],
        f"| **total (wall, incl. papermill and kernel starts)** | **{total:.1f}** |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    append_results(args.results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
