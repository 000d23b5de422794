"""Apply model selection's forgetting budget (eval.max_forgetting) to bench/recipe_study.py's records.

For each trained job with post-hoc candidates, and each budget, the rule of
sttune_helpers/training/selection.py::choose over the candidates sttune has (last, soup3 and the
WiSE-FT mixes at sttune's alphas 0.5, 0.7, 0.85): among those the study found within the
validation noise of the best ("eligible"), the most general (smallest mean drop on the SELECTION
halves) whose largest per-part selection drop is within the budget; else the best on validation
among all candidates within the budget; else the one that forgets least. Reports the chosen
candidate's test metric and REPORT-half drops, mean and sd over seeds, next to the last model.

--rule best_validation replaces the first step: the best validation metric among the candidates
within the budget, wherever the rest sit in the noise (the fallback is the same). --plain ARM adds
each choice's per-seed test difference to that arm's last model (the plain recipe), from the same
records (the same rows and seeds), or from --plain-from OTHER_OUT (a study of the same rows and seeds).

    python bench/study_budgets.py OUT [--budgets none,0.05,0.03,0.01] [--rule most_general|best_validation]
        [--plain plain_cos_lg [--plain-from OTHER_OUT]]
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


def choose(candidates: dict, eligible: list[str], budget: float | None, rule: str = "most_general") -> str:
    pool = [c for c in POOL if c in candidates]
    if rule == "best_validation":
        eligible = [max((c for c in pool if budget is None or largest_selection_drop(candidates[c]) <= budget),
                        key=lambda c: candidates[c]["val"], default=None)]
    near = [c for c in pool if c in eligible] or [max(pool, key=lambda c: candidates[c]["val"])]
    kept = [c for c in near if budget is None or largest_selection_drop(candidates[c]) <= budget]
    if kept:
        return min(kept, key=lambda c: (candidates[c]["drop"]["general_sel"], -candidates[c]["val"]))
    affordable = [c for c in pool if largest_selection_drop(candidates[c]) <= budget]
    if affordable:
        return max(affordable, key=lambda c: candidates[c]["val"])
    return min(pool, key=lambda c: largest_selection_drop(candidates[c]))


def read_ok(out: Path) -> list[dict]:
    lines = (out / "all_jobs.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, filter(None, lines)) if r.get("status") == "ok"]


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the study's --out folder (all_jobs.jsonl)")
    parser.add_argument("--budgets", default="none,0.05,0.03,0.01")
    parser.add_argument("--rule", choices=("most_general", "best_validation"), default="most_general")
    parser.add_argument("--plain", help="an arm whose last model each choice is compared with, seed by seed")
    parser.add_argument("--plain-from", help="the study folder that holds the --plain arm (default: OUT)")
    args = parser.parse_args()
    budgets = [None if b == "none" else float(b) for b in args.budgets.split(",")]
    ok = read_ok(Path(args.out))
    jobs = [r for r in ok if "select" in r.get("candidates", {})]
    plain = {(r["set"], r["seed"]): r["candidates"]["last"]["test"]
             for r in read_ok(Path(args.plain_from or args.out)) if r["arm"] == args.plain}
    groups: dict[tuple[str, str], list[dict]] = {}
    for job in jobs:
        groups.setdefault((job["set"], job["arm"]), []).append(job)
    against = f"; minus plain: test minus {args.plain}'s last model, per seed" if args.plain else ""
    print(f"rule: {args.rule}{against}")
    print("| set | arm | budget | seeds | chosen | test | minus plain | STS report drop | SQuAD report drop |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (set_name, arm), group in sorted(groups.items()):
        rows = [("last model", {j["seed"]: "last" for j in group})]
        rows += [(f"{b}" if b is not None else "none",
                  {j["seed"]: choose(j["candidates"], j["candidates"]["select"]["eligible"], b, args.rule)
                   for j in group})
                 for b in budgets]
        for label, chosen in rows:
            picked = [j["candidates"][chosen[j["seed"]]] for j in group]
            gains = [f"{p['test'] - plain[(set_name, j['seed'])]:+.4f}" if (set_name, j["seed"]) in plain else "-"
                     for p, j in zip(picked, group)]
            sts = [p["drop"]["sts_rep"] for p in picked if "sts_rep" in p["drop"]]
            print(f"| {set_name} | {arm} | {label} | {len(group)} | "
                  f"{', '.join(chosen[j['seed']] for j in group)} | {mean_sd([p['test'] for p in picked])} | "
                  f"{', '.join(gains)} | {mean_sd(sts) if sts else '(own source)'} | "
                  f"{mean_sd([p['drop']['squad_rep'] for p in picked])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
