"""Issue 17, item 5: does augmentation earn its place? The sttune default run against the same run
plus one augmentation, on small pair_score data and on MRPC (pair_binary), several seeds, side by side.

Sets (train / validation / test, nothing chosen on test):
  stsb  a fixed sample of --pairs STS-B train pairs (the embedded copy; seed DATA_SEED, the same for
        every training seed and arm, so that seeds vary the training only), STS-B dev, STS-B test.
  snli  the transfer case of bench/accuracy.py: SNLI dev recast as pair_score (entailment 1, neutral
        0.5, contradiction 0) less 15% of its premises for validation, a fixed sample of --pairs of
        the rest as train, SNLI test as test (needs ../shared/data/snli).
  mrpc  pair_binary: bench/accuracy.py's MRPC (validation carved out of train by sentence groups; the
        whole train split with --pairs 0), MRPC test (needs ../shared/data/mrpc).

Arms (each a whole `sttune run --preset default` with these settings added):
  default           nothing added
  synonyms          data.augment.synonyms=true (neighbours in the model's token embeddings)
  augmented_sbert   data.augment.augmented_sbert=true (a cross-encoder trained on the train pairs
                    labels recombined pairs of the train sentences)
  back_translation  data.augment.back_translation=true, only with --translators FORWARD BACKWARD
  hard_negatives    data.negatives.enabled=true, only where the shape can be mined (pair_binary,
                    triplet, retrieval); pair_score has no positive pairs, so it is listed as not
                    applicable rather than run

Each run's test metric and its general-ability reference (the report half of scoring/reference.py,
the run's own source left out) are read from its eval/metrics.json by bench/accuracy.py's read_run;
what the augmentation added (rows, silver label distribution) from its data/report.json. Per arm:
the test metric mean ± sd over seeds, its gain over the default run (mean ± sd of the per-seed
differences), whether the gain is beyond the seed spread (the larger sd over seeds of the two arms,
as accuracy.py's verdict), and per reference part the value and the drop from the base model.

    # the measurement (hours on a CPU; minutes on a GPU)
    .venv/bin/python bench/augmentation.py --pairs 1000 --seeds 0 1 2
    # a smoke test of the script with the tiny test model
    # (both sets, 6 runs: 9.5 min on 2 shared Xeon cores)
    OMP_NUM_THREADS=1 .venv/bin/python bench/augmentation.py --sets stsb,snli --seeds 0 --pairs 48 --epochs 1 \\
        --model /tmp/tiny --tiny-model --max-eval-rows 40 --max-reference-pairs 40 --bootstrap-samples 50 \\
        --threads 1 --out /tmp/augmentation

Outputs in --out (default bench/out/augmentation, git-ignored): results.json (rewritten after every
run), summary.md, and gains.tsv in the format of sttune_helpers/data/augment/measured_gains.tsv (the
recommender's table: copy the rows of a real measurement there). --results appends summary.md to a
Markdown log such as bench/RESULTS.md; it is off by default, and refused with --tiny-model.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
import accuracy  # noqa: E402
from default_run import append_results, machine  # noqa: E402

OUT = HERE / "out" / "augmentation"
DATA_SEED = 0  # the fixed sample of train pairs
ARMS = {
    "default": (),
    "synonyms": ("data.augment.synonyms=true",),
    "augmented_sbert": ("data.augment.augmented_sbert=true",),
    "back_translation": ("data.augment.back_translation=true",),
    "hard_negatives": ("data.negatives.enabled=true",),
}
SHAPES = {"stsb": "pair_score", "snli": "pair_score", "mrpc": "pair_binary"}
SETS = tuple(SHAPES)


# --- data ----------------------------------------------------------------------------------------


def write_split(frame, path: Path) -> None:
    label = "label" if "label" in frame.columns else "score"
    frame[["sentence1", "sentence2", label]].to_csv(path, sep="\t", index=False)


def prepare_set(name: str, pairs: int | None, out: Path) -> Path:
    """A folder with NAME-train/dev/test.tsv (sentence1, sentence2, score or label): train a fixed sample
    of ``pairs`` rows (all where None), dev and test whole (the run caps them with data.max_*_rows)."""
    import pandas as pd

    target = out / "data" / f"{name}-{pairs or 'all'}"
    if all((target / f"{name}-{s}.tsv").is_file() for s in ("train", "dev", "test")):
        return target
    if name == "stsb":
        folder = REPO / "sttune_helpers" / "datasets" / "stsb"
        splits = {s: pd.read_csv(folder / f"sts-{s}.tsv", sep="\t", dtype=str, keep_default_na=False)
                  for s in ("train", "dev", "test")}
    else:
        accuracy.OUT = out
        prepare = accuracy.prepare_snli if name == "snli" else accuracy.prepare_mrpc  # as bench/accuracy.py's
        folder = prepare(accuracy.SHARED_DATA, out / "data" / f"{name}-whole")
        splits = {s: pd.read_csv(folder / f"{name}-{s}.tsv", sep="\t", dtype=str, keep_default_na=False)
                  for s in ("train", "dev", "test")}
    if pairs is not None and pairs < len(splits["train"]):
        splits["train"] = splits["train"].sample(n=pairs, random_state=DATA_SEED).sort_index()
    target.mkdir(parents=True, exist_ok=True)
    for split, frame in splits.items():
        write_split(frame, target / f"{name}-{split}.tsv")
    return target


def applicable(arm: str, shape: str, translators: list[str] | None) -> str | None:
    """Why ``arm`` does not run on data of ``shape`` (None: it runs)."""
    from sttune_helpers import shapes

    if arm == "hard_negatives" and shapes.get(shape).mining_columns is None:
        return f"not applicable: {shape} data has no positive pairs to mine negatives for"
    if arm == "back_translation" and not translators:
        return "not run: needs --translators FORWARD BACKWARD (translation models)"
    return None


# --- one run -------------------------------------------------------------------------------------


def augmentation_counts(run: Path) -> dict:
    """What the data stage added: per augmentation step its rows and label distribution; the mined
    negatives' row count."""
    report = json.loads((run / "data" / "report.json").read_text())
    steps = {r["method"]: {"rows_in": r["rows_in"], "rows_added": r["rows_added"],
                           **({"silver_labels": r["silver_labels"]} if "silver_labels" in r else {}),
                           **({"cross_encoder_validation": r["cross_encoder"].get("validation")}
                              if "cross_encoder" in r else {})}
             for r in report.get("augmentation", [])}
    counts = report.get("counts", {}).get("train", {})
    mined = {"pairs_in": report["negatives"].get("pairs_in"), "rows": counts.get("rows_after_negatives")} \
        if report.get("negatives") else None
    return {"steps": steps, "negatives": mined,
            "train_rows": counts.get("rows_after_negatives") or counts.get("rows_after_augmentation")
            or counts.get("rows")}


def run_arm(set_name: str, source: str, arm: str, seed: int, overrides: list[str]) -> dict:
    run_name = f"{set_name}-{arm}-seed{seed}"
    result = accuracy.sttune_recipe(run_name, source, seed, [*overrides, *ARMS[arm]])
    base = result.pop("base")
    result.pop("before_selection", None)
    return {"seed": seed, "base": base, "model": accuracy.with_drops(result, base),
            "added": augmentation_counts(Path(result["run"]))}


# --- summary -------------------------------------------------------------------------------------


def summarise_arm(seeds: list[dict], default: list[dict] | None) -> dict:
    """Test metric and reference over seeds; the gain over the default run, paired by seed."""
    values = [s["model"]["value"] for s in seeds]
    parts = [p for p in seeds[0]["model"]["reference"] if all(p in s["model"]["reference"] for s in seeds)]
    summary = {"seeds": [s["seed"] for s in seeds], "metric": seeds[0]["model"]["metric"],
               "test": accuracy.stat(values),
               "reference": {p: {"value": accuracy.stat([s["model"]["reference"][p]["value"] for s in seeds]),
                                 "drop": accuracy.stat([s["model"]["reference"][p]["drop"] for s in seeds])}
                             for p in parts},
               "rows_added": accuracy.stat([sum(step["rows_added"] for step in s["added"]["steps"].values())
                                            for s in seeds])}
    if default:
        by_seed = {s["seed"]: s["model"]["value"] for s in default}
        paired = [s["model"]["value"] - by_seed[s["seed"]] for s in seeds if s["seed"] in by_seed]
        if paired:
            default_sd = accuracy.spread([by_seed[s["seed"]] for s in seeds if s["seed"] in by_seed])[1]
            seed_spread = max(summary["test"]["sd"] or 0.0, default_sd or 0.0) if len(paired) > 1 else None
            gain = accuracy.stat(paired)
            summary["gain"] = {**gain, "seed_spread": seed_spread,
                               "beyond_spread": seed_spread is not None and gain["mean"] > seed_spread}
    return summary


def set_result(entries: dict[str, list[dict]], skipped: dict[str, str], source: str) -> dict:
    default = entries.get("default")
    base = [s["base"] for s in (default or next(iter(entries.values()), []))]
    summary = {arm: summarise_arm(seeds, default if arm != "default" else None)
               for arm, seeds in entries.items() if seeds}
    base_summary = {"test": accuracy.stat([b["value"] for b in base]),
                    "reference": {p: accuracy.stat([b["reference"][p]["value"] for b in base])
                                  for p in (base[0]["reference"] if base else {})}} if base else None
    return {"source": source, "arms": entries, "skipped": skipped, "summary": summary, "base": base_summary}


def verdict(row: dict) -> str:
    gain = row.get("gain")
    if gain is None:
        return ""
    if gain["seed_spread"] is None:
        return "one seed: no spread to judge by"
    if gain["beyond_spread"]:
        return "helps beyond the seed spread"
    return "hurts beyond the seed spread" if -gain["mean"] > gain["seed_spread"] else "within the seed spread"


def added_text(seeds: list[dict]) -> str:
    steps = seeds[0]["added"]["steps"]
    mined = seeds[0]["added"].get("negatives")
    if not steps and not mined:
        return "–"
    texts = [f"mined negatives: {mined['pairs_in']} positive pairs -> {mined['rows']} train rows"] if mined else []
    for method, step in steps.items():
        text = f"{method}: +{step['rows_added']} rows"
        labels = step.get("silver_labels") or {}
        if "mean" in labels:
            text += f" (silver mean {labels['mean']:.3f})"
        fit = step.get("cross_encoder_validation") or {}
        if fit.get("value") is not None:
            text += f", cross-encoder validation {fit['metric']} {fit['value']:.3f}"
        texts.append(text)
    return "; ".join(texts) + (" (seed " + str(seeds[0]["seed"]) + ")" if len(seeds) > 1 else "")


def set_section(name: str, result: dict, settings: dict) -> list[str]:
    summary, base = result["summary"], result["base"]
    parts = list(base["reference"]) if base else []
    metric = next(iter(summary.values()))["metric"] if summary else "?"
    lines = [f"### {name}: {settings['pairs'] or 'all'} train pairs", "",
             f"Test {metric}; reference parts (report half): {', '.join(parts) or 'none'}; drop = base − model. "
             "± is the sd over seeds; gain is the mean ± sd of the per-seed differences to the default run.", "",
             f"| arm | test {metric} | gain over default | verdict |" + "".join(f" {p} | {p} drop |" for p in parts)
             + " added (first seed) |",
             "|---" * (5 + 2 * len(parts)) + "|"]
    if base:
        lines.append(f"| base model | {accuracy.fstat(base['test'])} | | |"
                     + "".join(f" {accuracy.fstat(base['reference'][p])} | |" for p in parts) + " |")
    for arm, row in summary.items():
        gain = row.get("gain")
        cells = [accuracy.fstat(row["test"]), accuracy.fstat(gain, signed=True) if gain else "", verdict(row)]
        for p in parts:
            ref = row["reference"].get(p)
            cells += [accuracy.fstat(ref["value"]), accuracy.fstat(ref["drop"], signed=True)] if ref else ["–", "–"]
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {added_text(result['arms'][arm])} |")
    for arm, why in result["skipped"].items():
        lines.append(f"| {arm} | {why} |" + " |" * (3 + 2 * len(parts)))
    return lines + [""]


def markdown(results: dict, settings: dict, command: str, seconds: float, footer: str | None = None) -> str:
    lines = [f"\n## Augmentation (issue 17, item 5) ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"Machine: {machine()}. Command: `{command}`. Model {settings['model']}; `sttune run --preset default` "
             f"with train.epochs={settings['epochs']:g}; seeds {' '.join(map(str, settings['seeds']))}"
             + (f"; validation and test capped at {settings['max_eval_rows']} rows" if settings["max_eval_rows"]
                else "")
             + (f"; reference parts at {settings['max_reference_pairs']} items" if settings["max_reference_pairs"]
                else "")
             + f"; {settings['bootstrap_samples']} bootstrap samples.", ""]
    for name, result in results.items():
        lines += set_section(name, result, settings)
    lines.append(footer or f"Total {seconds / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def gains_rows(results: dict, settings: dict) -> list[str]:
    """Rows for sttune_helpers/data/augment/measured_gains.tsv: per arm and set, the mean gain and
    the seed spread (columns method, shape, gain, seed_spread, measured_on)."""
    from sttune_helpers.data.augment.gains import COLUMNS

    method = {"hard_negatives": "hard_negatives"}
    rows = ["\t".join(COLUMNS)]
    for name, result in results.items():
        for arm, row in result["summary"].items():
            gain = row.get("gain")
            if arm == "default" or gain is None:
                continue
            spread = "" if gain["seed_spread"] is None else f"{gain['seed_spread']:.4f}"
            seeds = len(row["seeds"])
            where = (f"{name} {settings['pairs'] or 'all'} pairs, {seeds} seed{'s' if seeds > 1 else ''}, "
                     f"{settings['model']}, bench/augmentation.py")
            rows.append("\t".join([method.get(arm, arm), SHAPES[name], f"{gain['mean']:.4f}", spread, where]))
    return rows


def merged_results(paths: list[Path]) -> tuple[dict, dict, str]:
    """The runs of several results.json files of the same settings, seeds in order; the settings
    (their seeds the union) and the commands."""
    loaded = [json.loads(path.read_text()) for path in paths]
    strip = [{k: v for k, v in d["settings"].items() if k != "seeds"} for d in loaded]
    if any(s != strip[0] for s in strip[1:]):
        raise SystemExit(f"augmentation: --summarise: {', '.join(map(str, paths))} ran with other settings")
    results = {}
    for name in dict.fromkeys(n for d in loaded for n in d["results"]):
        entries: dict[str, list[dict]] = {}
        skipped: dict[str, str] = {}
        source = None
        for d in loaded:
            result = d["results"].get(name)
            if result is None:
                continue
            source = source or result["source"]
            skipped.update(result["skipped"])
            for arm, seeds in result["arms"].items():
                entries.setdefault(arm, []).extend(seeds)
        entries = {arm: sorted(seeds, key=lambda s: s["seed"]) for arm, seeds in entries.items()}
        results[name] = set_result(entries, skipped, source)
    seeds = sorted({s for d in loaded for s in d["settings"]["seeds"]})
    return results, {**loaded[0]["settings"], "seeds": seeds}, " + ".join(d["command"] for d in loaded)


def summarise_only(paths: list[Path], out: Path, log: Path | None) -> int:
    results, settings, commands = merged_results(paths)
    text = markdown(results, settings, commands, 0.0, footer=f"Summarised from {len(paths)} runs of this script.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "gains.tsv").write_text("\n".join(gains_rows(results, settings)) + "\n", encoding="utf-8")
    print(text)
    if log:
        append_results(log, text)
    return 0


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated: {', '.join(SETS)}")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated: {', '.join(ARMS)}")
    parser.add_argument("--pairs", type=int, default=1000, help="train pairs of each set (a fixed sample; 0: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="default", help="model.name of every run (default: the packaged model)")
    parser.add_argument("--epochs", type=float, default=4.0, help="train.epochs of every run")
    parser.add_argument("--threads", type=int, help="OMP/MKL threads of every run (default: torch's choice)")
    parser.add_argument("--max-eval-rows", type=int, help="cap on the validation and test splits")
    parser.add_argument("--max-reference-pairs", type=int, help="eval.reference_max_pairs (default all)")
    parser.add_argument("--bootstrap-samples", type=int, default=1000)
    parser.add_argument("--cross-encoder-epochs", type=float, help="data.augment.cross_encoder_epochs")
    parser.add_argument("--translators", nargs=2, metavar=("FORWARD", "BACKWARD"),
                        help="translation models for the back_translation arm (e.g. opus-mt-en-de, -de-en)")
    parser.add_argument("--tiny-model", action="store_true",
                        help="--model is the tiny test model: build it there if missing; --results is refused")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--results", type=Path, help="a Markdown log to append the summary to (e.g. bench/RESULTS.md)")
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="RESULTS_JSON",
                        help="run nothing: summarise earlier results.json files of the same settings (e.g. seeds "
                             "run in parallel processes) into --out")
    args = parser.parse_args()
    if args.summarise:
        return summarise_only(args.summarise, args.out.resolve(), args.results)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [s for s in sets if s not in SETS] + [a for a in arms if a not in ARMS]
    if unknown or not sets or not arms:
        parser.error(f"unknown sets or arms: {', '.join(unknown) or '(none given)'}")
    if "default" not in arms:
        arms.insert(0, "default")  # every gain is over the default run
    if args.tiny_model and args.results:
        parser.error("--results with --tiny-model: the tiny model's figures say nothing about augmentation")
    if args.tiny_model:
        sys.path.insert(0, str(REPO / "tests"))
        from helpers.tiny_model import build_tiny_model_folder

        args.model = str(build_tiny_model_folder(Path(args.model).resolve()))
    out = args.out.resolve()
    accuracy.OUT = out  # its sttune_recipe writes runs under OUT/runs
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    settings = {"pairs": args.pairs or None, "seeds": args.seeds, "model": args.model, "epochs": args.epochs,
                "max_eval_rows": args.max_eval_rows, "max_reference_pairs": args.max_reference_pairs,
                "bootstrap_samples": args.bootstrap_samples, "cross_encoder_epochs": args.cross_encoder_epochs,
                "translators": args.translators}
    overrides = [*accuracy.RUN_OVERRIDES, f"model.name={args.model}", f"train.epochs={args.epochs}",
                 f"eval.bootstrap_samples={args.bootstrap_samples}"]
    if args.max_eval_rows:
        overrides += [f"data.max_validation_rows={args.max_eval_rows}", f"data.max_test_rows={args.max_eval_rows}"]
    if args.max_reference_pairs:
        overrides.append(f"eval.reference_max_pairs={args.max_reference_pairs}")
    if args.cross_encoder_epochs:
        overrides.append(f"data.augment.cross_encoder_epochs={args.cross_encoder_epochs}")
    if args.translators:
        overrides += [f"data.augment.translator_forward={args.translators[0]}",
                      f"data.augment.translator_backward={args.translators[1]}"]
    command = shlex.join([".venv/bin/python", "bench/augmentation.py", *sys.argv[1:]])
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {}
    commit = accuracy.source_commit()
    for name in sets:
        source = str(prepare_set(name, settings["pairs"], out))
        skipped = {arm: why for arm in arms if (why := applicable(arm, SHAPES[name], args.translators))}
        entries: dict[str, list[dict]] = {arm: [] for arm in arms if arm not in skipped}
        for seed in args.seeds:  # seed-major: a run cut short still has every arm at the first seed
            for arm in entries:
                try:
                    entry = run_arm(name, source, arm, seed, overrides)
                except SystemExit as failure:  # a failed run is recorded, the others go on
                    print(f"augmentation: {name} {arm} seed {seed} failed: {failure}", file=sys.stderr, flush=True)
                    skipped[f"{arm} (seed {seed})"] = f"failed: {failure}"
                    continue
                entries[arm].append({**entry, "commit": commit})
                print(f"{name} {arm} seed {seed}: {entry['model']['metric']} {entry['model']['value']:.4f} "
                      f"(base {entry['base']['value']:.4f}); added {added_text([entry])}", flush=True)
                results[name] = set_result({a: s for a, s in entries.items() if s}, skipped, source)
                (out / "results.json").write_text(json.dumps({"command": command, "settings": settings,
                                                              "results": results}, indent=2))
    text = markdown(results, settings, command, time.perf_counter() - started)
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "gains.tsv").write_text("\n".join(gains_rows(results, settings)) + "\n", encoding="utf-8")
    print(text)
    print(f"results: {out / 'results.json'}, {out / 'summary.md'}, {out / 'gains.tsv'}")
    if args.results:
        append_results(args.results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
