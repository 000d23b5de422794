"""Issue 18, item 2, on a CPU with bf16: how far bf16 autocast encoding moves the scores that model
selection reads (the validation split and the reference's selection half), how much faster it is,
and whether selection would choose another model.

For each finished run given, the candidates are those selection builds from what the run kept: the
best and the last checkpoint, and the better of them on validation mixed with the base weights at
0.5, 0.7 and 0.85 (WiSE-FT), plus the base model. Each is scored in fp32 and in bf16; the rule
(training/selection.py's choose, the run's eval.max_forgetting) then chooses once
on the fp32 scores and once on the bf16 ones, under the rules fine_tuned_unless_beaten and
best_validation.

    .venv/bin/python bench/encoding_precision.py RUN_DIR [RUN_DIR ...] --out OUT.json

A run directory needs its checkpoints/ (two are kept by default).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

PRECISIONS = ("fp32", "bf16")
ALPHAS = (0.85, 0.7, 0.5)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def checkpoint_states(run) -> dict[str, dict]:
    """best and last from the run's checkpoints/ (training.json names the best)."""
    from sentence_transformers import SentenceTransformer

    from sttune_helpers.training.weights import snapshot

    training = json.loads(run.training_summary_path.read_text())
    folders = sorted(run.checkpoints_dir.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    if not folders:
        raise SystemExit(f"encoding_precision: {run.root} has no checkpoints/checkpoint-* to score")
    best = Path(training["best_checkpoint"]).name if training.get("best_checkpoint") else folders[-1].name
    states = {"last": snapshot(SentenceTransformer(str(folders[-1]), device="cpu"))}
    if best != folders[-1].name:
        states["best"] = snapshot(SentenceTransformer(str(run.checkpoints_dir / best), device="cpu"))
    return states


def score_all(scorer, state, cache: dict, name: str, precision: str) -> dict:
    """Validation and every reference part, in ``precision``; seconds spent encoding."""
    from sttune_helpers.core.statistics import Bootstrap
    from sttune_helpers.scoring import score_model

    model, ev, seed = scorer.load(state), scorer.config.eval, scorer.config.seed
    started = time.perf_counter()
    validation = score_model(scorer.validation, model, scorer.boot, ev.batch_size, seed, precision)
    reference = {}
    for part in scorer.parts:
        from sttune_helpers import shapes

        boot = Bootstrap.draw(part.n, 1, ev.confidence, seed)
        scores = score_model(part, model, boot, ev.batch_size, seed, precision)
        reference[part.name] = scores.metrics[shapes.get(part.shape).primary_metric]["value"]
    cache[(name, precision)] = validation
    return {"validation": validation.metrics[scorer.metric]["value"], "reference": reference,
            "seconds": round(time.perf_counter() - started, 2)}


def choose_on(scorer, rows: dict, item_scores: dict, precision: str, budget, fine_tuned: str) -> dict:
    """training/selection.py's candidates and rules on one precision's scores: rule -> (chosen, reason),
    and the paired 95% intervals of best - candidate."""
    from sttune_helpers.training.selection import Candidate, choose, mark_noise

    base_reference = rows["base"][precision]["reference"]
    candidates = []
    for name, by_precision in rows.items():
        if name == "base":
            continue
        row = by_precision[precision]
        forgetting = max(base_reference[p] - v for p, v in row["reference"].items()) if row["reference"] else None
        candidates.append(Candidate(name, name.split("@")[0], 1.0, validation=row["validation"],
                                    reference=row["reference"], forgetting=forgetting))
    mark_noise(candidates, {c.name: item_scores[(c.name, precision)] for c in candidates}, scorer.metric,
               scorer.boot, fine_tuned)
    rules = {rule: choose(candidates, budget, rule, fine_tuned)
             for rule in ("fine_tuned_unless_beaten", "best_validation")}
    return {"rules": {rule: [c.name, reason] for rule, (c, reason) in rules.items()},
            "gaps": {c.name: c.gap_ci95 for c in candidates}}


def measure_run(run_dir: Path) -> dict:
    from sttune_helpers.data import read_report
    from sttune_helpers.rundir import RunDir
    from sttune_helpers.training.candidate_scoring import CandidateScorer
    from sttune_helpers.training.weights import mix_states, snapshot

    run = RunDir(run_dir)
    config = run.load_config()
    config.data.shape = read_report(run)["shape"]
    scorer = CandidateScorer(run, config, device="cpu")
    base_state = snapshot(scorer.model)
    states = checkpoint_states(run)
    item_scores: dict = {}
    rows: dict = {"base": {}}
    score_all(scorer, base_state, {}, "warm-up", "fp32")  # first-call costs out of the timings
    for precision in PRECISIONS:
        rows["base"][precision] = score_all(scorer, base_state, item_scores, "base", precision)
    for name, state in states.items():
        rows[name] = {p: score_all(scorer, state, item_scores, name, p) for p in PRECISIONS}
    anchor = max(states, key=lambda n: rows[n]["fp32"]["validation"])
    for alpha in ALPHAS:
        mixed = mix_states(base_state, states[anchor], alpha)
        rows[f"{anchor}@{alpha:g}"] = {p: score_all(scorer, mixed, item_scores, f"{anchor}@{alpha:g}", p)
                                       for p in PRECISIONS}
    training = json.loads(run.training_summary_path.read_text())
    fine_tuned = "best" if "best" in states and training["kept_checkpoint"] == training["best_checkpoint"] else "last"
    budget = config.eval.max_forgetting
    choices = {p: choose_on(scorer, rows, item_scores, p, budget, fine_tuned) for p in PRECISIONS}
    widths = [hi - lo for lo, hi in choices["fp32"]["gaps"].values() if lo is not None]
    return {"run": str(run_dir), "metric": scorer.metric, "n_validation": scorer.validation.n,
            "parts": [p.name for p in scorer.parts], "rows": rows, "fine_tuned": fine_tuned,
            "chosen": {p: {rule: choice[0] for rule, choice in choices[p]["rules"].items()} for p in PRECISIONS},
            "reasons": {p: choices[p]["rules"] for p in PRECISIONS}, "paired_interval_widths": widths}


def markdown(results: list[dict], command: str) -> str:
    lines = [f"Machine: {cpu_name()}, {__import__('os').cpu_count()} cores. Command: `{command}`.", "",
             "| run | model | validation fp32 | bf16 - fp32 | reference parts fp32 | bf16 - fp32 | "
             "seconds fp32 | seconds bf16 |", "|---|---|---|---|---|---|---|---|"]
    for result in results:
        name = Path(result["run"]).name
        for model, row in result["rows"].items():
            fp32, bf16 = row["fp32"], row["bf16"]
            parts = ", ".join(f"{p} {v:.4f}" for p, v in fp32["reference"].items())
            moved = ", ".join(f"{bf16['reference'][p] - v:+.4f}" for p, v in fp32["reference"].items())
            shift = bf16["validation"] - fp32["validation"]
            lines.append(f"| {name} | {model} | {fp32['validation']:.4f} | {shift:+.4f} | {parts} | {moved} | "
                         f"{fp32['seconds']:.1f} | {bf16['seconds']:.1f} |")
    lines += ["", "| run | fine-tuned | rule | chosen on fp32 | chosen on bf16 | paired 95% interval widths "
              "(best - candidate, fp32) |", "|---|---|---|---|---|---|"]
    for result in results:
        widths = ", ".join(f"{w:.4f}" for w in result["paired_interval_widths"])
        for rule in result["chosen"]["fp32"]:
            lines.append(f"| {Path(result['run']).name} | {result['fine_tuned']} | {rule} | "
                         f"{result['chosen']['fp32'][rule]} | {result['chosen']['bf16'][rule]} | {widths} |")
    return "\n".join(lines)


def main() -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run directories with checkpoints/")
    parser.add_argument("--out", type=Path, required=True, help="JSON of every figure; the table goes next to it")
    args = parser.parse_args()
    results = [measure_run(run) for run in args.runs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_name(), "results": results}, indent=1, default=str))
    table = markdown(results, "python " + " ".join(sys.argv))
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
