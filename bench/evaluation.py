"""Issue 5's benchmark: the whole pipeline end to end on SciFact (retrieval) and MRPC (pair_binary),
base vs fine-tuned with 95% intervals; forgetting (each general reference part's primary metric
before and after fine-tuning, and their mean at the interpolation alpha the guard suggests); UMAP of
2,000 embeddings, timed with numba's first compile separate. Appends the figures to bench/RESULTS.md.

    .venv/bin/python bench/evaluation.py [--data ../shared/data] [--epochs 1] [--only scifact,mrpc,umap]

Each pipeline runs through `sttune run` into bench/out/runs/, as a user would run it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"


def run_pipeline(name: str, overrides: list[str]) -> dict:
    command = [sys.executable, "-m", "sttune_helpers.cli", "run", "--preset", "default", "--name", name,
               "--runs-dir", str(OUT / "runs"), "--overwrite", *[a for o in overrides for a in ("-p", o)]]
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    report = json.loads((OUT / "runs" / name / "eval" / "metrics.json").read_text())
    return {"report": report, "seconds": seconds}


def describe(name: str, result: dict) -> list[str]:
    report = result["report"]
    metric = report["primary_metric"]
    lines = [f"- **{name}** ({report['task']}, n_test={report['n_test']}, "
             f"{result['seconds'] / 60:.1f} min end to end):"]
    for model, entry in report["models"].items():
        value = entry["metrics"][metric]
        lines.append(f"  - {model}: {metric} {value['value']:.4f} [{value['ci95'][0]:.4f}, {value['ci95'][1]:.4f}]")
    for c in report["comparisons"]:
        if c["metric"] == metric:
            lines.append(f"  - {c['a']} - {c['b']}: {c['difference']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}], "
                         f"p={c['p_value']:.3f}")
    reference = report.get("reference") or {}
    for part in reference.get("parts", {}).values():
        primary = part["primary_metric"]
        base = part["models"]["base"]["metrics"][primary]["value"]
        tuned = part["models"]["fine_tuned"]["metrics"][primary]["value"]
        lines.append(f"  - forgetting: {part['name']} {primary} base {base:.4f} -> fine-tuned {tuned:.4f}")
    for left_out in reference.get("excluded", []):
        lines.append(f"  - reference left out: {left_out['reason']}")
    rows = report.get("interpolation") or []
    if rows:
        from sttune_helpers.evaluation import suggest_alpha

        alpha = suggest_alpha(rows)
        chosen = next((r for r in rows if r["alpha"] == alpha), None)
        lines.append("  - interpolation: " + "; ".join(
            f"alpha {r['alpha']}: test {r['task']:.4f}, reference {r['reference']:.4f}" for r in rows
            if r["task"] is not None and r["reference"] is not None))
        if chosen:
            lines.append(f"  - suggested alpha {alpha}: test {chosen['task']:.4f}, reference {chosen['reference']:.4f}")
    return lines


def umap_timing(points: int = 2000) -> list[str]:
    import numpy as np

    started = time.perf_counter()
    import umap  # noqa: F401  (numba compiles pynndescent's kernels on first import)

    imported = time.perf_counter() - started
    from sttune_helpers.viz import umap_project

    embeddings = np.random.default_rng(0).normal(size=(points, 384)).astype(np.float32)
    first_started = time.perf_counter()
    umap_project(embeddings, n_neighbors=15, min_dist=0.1, seed=42)
    first = time.perf_counter() - first_started
    second_started = time.perf_counter()
    umap_project(embeddings, n_neighbors=15, min_dist=0.1, seed=42)
    second = time.perf_counter() - second_started
    return [f"- UMAP of {points} x 384 embeddings: `import umap` {imported:.1f} s, first projection {first:.1f} s "
            f"(numba compiles UMAP's own kernels), second {second:.1f} s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--only", default="scifact,mrpc,umap")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    sys.path.insert(0, str(REPO / "bench"))
    from default_run import append_results, machine

    lines = [f"\n### Evaluation benchmark ({datetime.date.today()}, {machine()}; "
             f"`python bench/evaluation.py --epochs {args.epochs:g}`)"]
    common = [f"train.epochs={args.epochs}", "eval.interpolation_alphas=[0, 0.25, 0.5, 0.75, 1]"]
    if "scifact" in wanted:
        result = run_pipeline("bench-scifact", [f"data.source={args.data / 'scifact'}", "data.shape=auto",
                                                "train.batch_size=32", *common])
        lines += describe("SciFact", result)
    if "mrpc" in wanted:
        result = run_pipeline("bench-mrpc", [f"data.source={args.data / 'mrpc' / 'mrpc-train.tsv'}",
                                             "data.shape=auto", *common])
        lines += describe("MRPC", result)
    if "umap" in wanted:
        lines += umap_timing()
    text = "\n".join(lines) + "\n"
    print(text)
    append_results(REPO / "bench" / "RESULTS.md", text)


if __name__ == "__main__":
    main()
