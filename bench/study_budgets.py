"""Apply model selection's forgetting budget (eval.max_forgetting) to bench/recipe_study.py's records.

For each trained job with post-hoc candidates, and each budget, the rule of
sttune_helpers/training/selection.py::choose over the candidates sttune has (last, soup3 and the
WiSE-FT mixes at sttune's alphas 0.5, 0.7, 0.85): among those the study found within the
validation noise of the best ("eligible"), the most general (smallest mean drop on the SELECTION
halves) whose largest per-part selection drop is within the budget; else the best on validation
among all candidates within the budget; else the one that forgets least. Reports the chosen
candidate's test metric and REPORT-half drops, mean and sd over seeds, next to the last model.

    python bench/study_budgets.py OUT [--budgets none,0.05,0.03,0.01]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

SELECTION_PARTS = ("sts_sel", "squad_sel")
POOL = ("last", "soup3", "wise_0.5", "wise_0.7", "wise_0.85")


def largest_selection_drop(candidate: dict) -> float:
    return max(candidate["drop"][p] for p in SELECTION_PARTS if p in candidate["drop"])


def choose(candidates: dict, eligible: list[str], budget: float | None) -> str:
    pool = [c for c in POOL if c in candidates]
    near = [c for c in pool if c in eligible] or [max(pool, key=lambda c: candidates[c]["val"])]
    kept = [c for c in near if budget is None or largest_selection_drop(candidates[c]) <= budget]
    if kept:
        return min(kept, key=lambda c: (candidates[c]["drop"]["general_sel"], -candidates[c]["val"]))
    affordable = [c for c in pool if largest_selection_drop(candidates[c]) <= budget]
    if affordable:
        return max(affordable, key=lambda c: candidates[c]["val"])
    return min(pool, key=lambda c: largest_selection_drop(candidates[c]))


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the study's --out folder (all_jobs.jsonl)")
    parser.add_argument("--budgets", default="none,0.05,0.03,0.01")
    args = parser.parse_args()
    budgets = [None if b == "none" else float(b) for b in args.budgets.split(",")]
    records = [json.loads(line) for line in (Path(args.out) / "all_jobs.jsonl").read_text().splitlines() if line]
    jobs = [r for r in records if r.get("status") == "ok" and "select" in r.get("candidates", {})]
    groups: dict[tuple[str, str], list[dict]] = {}
    for job in jobs:
        groups.setdefault((job["set"], job["arm"]), []).append(job)
    print("| set | arm | budget | seeds | chosen | test | STS report drop | SQuAD report drop |")
    print("|---|---|---|---|---|---|---|---|")
    for (set_name, arm), group in sorted(groups.items()):
        rows = [("last model", {j["seed"]: "last" for j in group})]
        rows += [(f"{b}" if b is not None else "none",
                  {j["seed"]: choose(j["candidates"], j["candidates"]["select"]["eligible"], b) for j in group})
                 for b in budgets]
        for label, chosen in rows:
            picked = [j["candidates"][chosen[j["seed"]]] for j in group]
            print(f"| {set_name} | {arm} | {label} | {len(group)} | "
                  f"{', '.join(chosen[j['seed']] for j in group)} | {mean_sd([p['test'] for p in picked])} | "
                  f"{mean_sd([p['drop']['sts_rep'] for p in picked])} | "
                  f"{mean_sd([p['drop']['squad_rep'] for p in picked])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
