"""Issue 6's accuracy benchmark: sttune's recommended recipe against the plain sentence-transformers
recipe, same model, same data, several seeds, on STS-B (embedded), MRPC and SciFact.

For each data set and seed:

- **sttune's recipe** is a real `sttune run --preset default -p data.source=... -p seed=S`: the loss
  the pipeline recommends for the data, early stopping on the validation metric, the best checkpoint
  restored. The test primary metric is read from the run's eval/metrics.json.
- **the plain recipe** is what a user copies from the sentence-transformers examples:
  SentenceTransformer + SentenceTransformerTrainer, batch 16, lr 2e-5, warmup 10%, the same number
  of epochs, no evaluation during training, the final model; CosineSimilarityLoss for STS-B,
  OnlineContrastiveLoss for MRPC, MultipleNegativesRankingLoss on (query, positive) for SciFact (with
  the no-duplicates batch sampler, as the library's MNRL examples use). It trains on the sttune
  run's own data/train.jsonl (so the rows are identical) and is scored on the run's test split with
  sttune_helpers.evaluation (load_task, Bootstrap, score_model: the code stage 04 uses, so the metric
  and its 95% interval are computed identically). Its mixed precision is the one sttune picks for
  the machine (bf16 on CPUs with native bf16), so precision is not a difference between the two.

MRPC has no dev split and SciFact's BEIR qrels have none either: one is carved out of train once,
with a fixed seed (``DATA_SEED``), into bench/out/data/, so that every seed and both recipes see the
same train / validation / test rows (sttune's own split would carve it again with each run's seed).
SciFact runs with model.max_seq_length=256 for both recipes (its abstracts are long).

Stage 05 (embedding maps) plays no part in the comparison: it runs on 100 points with numba's JIT off
(as in the tests), and the forgetting guard (reference set, interpolation sweep) is off.

    .venv/bin/python bench/accuracy.py                      # 3 sets x seeds 0 1 2, 4 epochs
    .venv/bin/python bench/accuracy.py --quick              # the same comparison on a short budget
    .venv/bin/python bench/accuracy.py --sets scifact --resume bench/accuracy-scifact.json
                                                            # reuse the seeds an earlier run finished
    .venv/bin/python bench/accuracy.py --sets stsb --seeds 0 --epochs 0.1 --max-train-rows 64 \\
        --out /tmp/accuracy --results /tmp/RESULTS.md       # a smoke test of the script

Runs go to bench/out/accuracy/ (git-ignored; --out elsewhere); every figure also goes to its results.json,
written after each seed, so that a run stopped part-way can be finished later with --resume.
A Markdown section with the machine and the command is appended to bench/RESULTS.md (--results).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
from default_run import append_results, machine  # noqa: E402

OUT = HERE / "out" / "accuracy"
SHARED_DATA = REPO.parent / "shared" / "data"
DATA_SEED = 0  # the fixed seed of the carved validation splits
VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class DataSet:
    name: str
    plain_loss: str
    overrides: tuple[str, ...] = ()


SETS = {
    "stsb": DataSet("stsb", "CosineSimilarityLoss"),
    "mrpc": DataSet("mrpc", "OnlineContrastiveLoss"),
    "scifact": DataSet("scifact", "MultipleNegativesRankingLoss", ("model.max_seq_length=256",)),
}

# --quick: one seed, one epoch, capped splits and a smaller SciFact corpus (every relevant document
# kept), so that the whole comparison takes minutes.
QUICK = {"seeds": [0], "epochs": 1.0, "max_train_rows": 500, "max_validation_rows": 200, "max_test_rows": 300,
         "bootstrap_samples": 200, "scifact_train_queries": 300, "max_corpus_docs": 1000}
FULL = {"seeds": [0, 1, 2], "epochs": 4.0, "max_train_rows": None, "max_validation_rows": None,
        "max_test_rows": None, "bootstrap_samples": 1000, "scifact_train_queries": None, "max_corpus_docs": None}

# Settings of every sttune run that do not touch the comparison, only its time.
RUN_OVERRIDES = ["eval.reference=false", "eval.interpolation_alphas=[]", "viz.max_points=100", "viz.n_epochs=50"]


# --- data ----------------------------------------------------------------------------------------


def prepare_mrpc(shared: Path, target: Path) -> Path:
    """MRPC train / dev / test, dev carved out of train with sttune's group split (no sentence in
    two splits) and a fixed seed; test as published."""
    import pandas as pd

    from sttune_helpers.data import group_split

    if all((target / f"mrpc-{s}.tsv").is_file() for s in ("train", "dev", "test")):
        return target
    target.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(shared / "mrpc" / "mrpc-train.tsv", sep="\t", dtype=str, keep_default_na=False)
    parts = group_split(train, ("sentence1", "sentence2"), {"validation": VALIDATION_FRACTION, "test": 0.0},
                        seed=DATA_SEED)
    parts["train"].to_csv(target / "mrpc-train.tsv", sep="\t", index=False)
    parts["validation"].to_csv(target / "mrpc-dev.tsv", sep="\t", index=False)
    shutil.copyfile(shared / "mrpc" / "mrpc-test.tsv", target / "mrpc-test.tsv")
    return target


def prepare_scifact(shared: Path, target: Path, max_train_queries: int | None, max_corpus_docs: int | None) -> Path:
    """SciFact in BEIR layout with qrels/dev.tsv: a seeded tenth of the train queries. For --quick,
    ``max_train_queries`` keeps a seeded sample of the train queries and ``max_corpus_docs`` shrinks
    the corpus to every judged document plus seeded random others up to that size (each retrieval
    evaluation encodes the whole corpus)."""
    import numpy as np
    import pandas as pd

    source = shared / "scifact"
    if (target / "qrels" / "dev.tsv").is_file() and (target / "corpus.jsonl").exists():
        return target
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    read = {"sep": "\t", "dtype": str, "keep_default_na": False}
    train = pd.read_csv(source / "qrels" / "train.tsv", **read)
    test = pd.read_csv(source / "qrels" / "test.tsv", **read)
    rng = np.random.default_rng(DATA_SEED)
    queries = sorted(train["query-id"].unique())
    if max_train_queries is not None and max_train_queries < len(queries):
        queries = sorted(rng.choice(queries, size=max_train_queries, replace=False))
        train = train[train["query-id"].isin(queries)]
    dev_queries = set(rng.choice(queries, size=round(VALIDATION_FRACTION * len(queries)), replace=False))
    is_dev = train["query-id"].isin(dev_queries)
    train[~is_dev].to_csv(target / "qrels" / "train.tsv", sep="\t", index=False)
    train[is_dev].to_csv(target / "qrels" / "dev.tsv", sep="\t", index=False)
    test.to_csv(target / "qrels" / "test.tsv", sep="\t", index=False)
    for name in ("queries.jsonl", "corpus.jsonl"):
        (target / name).unlink(missing_ok=True)
    (target / "queries.jsonl").symlink_to(source / "queries.jsonl")
    if max_corpus_docs is None:
        (target / "corpus.jsonl").symlink_to(source / "corpus.jsonl")
        return target
    lines = (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    ids = [json.loads(line)["_id"] for line in lines]
    judged = set(train["corpus-id"]) | set(test["corpus-id"])
    keep = {i for i, doc in enumerate(ids) if doc in judged}
    others = [i for i, doc in enumerate(ids) if doc not in judged]
    extra = min(len(others), max(0, max_corpus_docs - len(keep)))
    keep |= set(rng.choice(others, size=extra, replace=False).tolist())
    (target / "corpus.jsonl").write_text("".join(lines[i] for i in sorted(keep)), encoding="utf-8")
    return target


def data_source(name: str, settings: dict) -> str:
    if name == "stsb":
        return "embedded:stsb"
    if name == "mrpc":
        return str(prepare_mrpc(SHARED_DATA, OUT / "data" / "mrpc"))
    queries, docs = settings["scifact_train_queries"], settings["max_corpus_docs"]
    suffix = "".join(f"-{what}{n}" for what, n in (("queries", queries), ("corpus", docs)) if n is not None)
    return str(prepare_scifact(SHARED_DATA, OUT / "data" / f"scifact{suffix}", queries, docs))


# --- sttune's recipe -----------------------------------------------------------------------------


def sttune_recipe(name: str, source: str, seed: int, overrides: list[str]) -> dict:
    """A whole `sttune run` (data_prep -> embedding_viz); its test figures from eval/metrics.json."""
    run = OUT / "runs" / name
    command = [sys.executable, "-m", "sttune_helpers.cli", "run", "--preset", "default", "--name", name,
               "--runs-dir", str(OUT / "runs"), "--overwrite",
               *[a for o in [f"data.source={source}", f"seed={seed}", *overrides] for a in ("-p", o)]]
    print("$ " + shlex.join(command), flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.setdefault("NUMBA_DISABLE_JIT", "1")  # stage 05's UMAP on 100 points: interpreting beats compiling
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, env=env)
    seconds = time.perf_counter() - started
    manifest = json.loads((run / "manifest.json").read_text()) if (run / "manifest.json").is_file() else {}
    stages = manifest.get("stages", {})
    if stages.get("evaluation", {}).get("status") != "completed":
        failed = next((s for s, e in stages.items() if e.get("status") == "failed"), "?")
        raise SystemExit(f"accuracy: run {name} did not finish its evaluation (stage {failed} failed, exit "
                         f"{completed.returncode}); see {run}/notebooks and {run}/manifest.json")
    if completed.returncode != 0:
        print(f"accuracy: run {name} exited {completed.returncode} after its evaluation (stage 05?); "
              "its test figures are used", file=sys.stderr)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    training = json.loads((run / "training.json").read_text())
    primary = metrics["primary_metric"]
    tuned = metrics["models"]["fine_tuned"]["metrics"][primary]
    return {"run": str(run), "metric": primary, "value": tuned["value"], "ci95": tuned["ci95"],
            "base": metrics["models"]["base"]["metrics"][primary]["value"], "n_test": metrics["n_test"],
            "loss": training["loss"], "steps": training["global_step"], "max_steps": training["max_steps"],
            "stopped_early": training["stopped_early"], "best_checkpoint": training["best_checkpoint"],
            "kept_checkpoint": training.get("kept_checkpoint"), "checkpoint_choice": training.get("checkpoint_choice"),
            "seconds": round(seconds, 1),
            "stage_seconds": {s: e.get("seconds") for s, e in stages.items()}}


# --- the plain recipe ----------------------------------------------------------------------------


def train_plain(train_dataset, loss_name: str, epochs: float, seed: int, max_seq_length: int | None,
                output_dir: Path):
    """The script a user copies from the sentence-transformers examples."""
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    from sttune_helpers.core.hardware import pick_device, pick_precision
    from sttune_helpers.modeling import DEFAULT_MODEL, resolve_model_source

    device = pick_device("auto")
    precision, _ = pick_precision("auto", device)  # the same mixed precision as sttune's run
    model = SentenceTransformer(resolve_model_source(DEFAULT_MODEL).location, device=device)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    loss = getattr(losses, loss_name)(model)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        per_device_train_batch_size=16,
        learning_rate=2e-5,
        warmup_steps=0.1,  # a float below 1 is a ratio (transformers 5)
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        batch_sampler=BatchSamplers.NO_DUPLICATES if loss_name == "MultipleNegativesRankingLoss"
        else BatchSamplers.BATCH_SAMPLER,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        logging_steps=100,
        seed=seed,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset, loss=loss)
    started = time.perf_counter()
    trainer.train()
    return model, trainer.state.global_step, time.perf_counter() - started


def plain_recipe(run_dir: Path, loss_name: str, epochs: float) -> dict:
    """Train the plain recipe on the sttune run's train split; score it as stage 04 scores models."""
    from sttune_helpers import evaluation, shapes
    from sttune_helpers.data import load_split, read_report
    from sttune_helpers.rundir import RunDir

    run = RunDir(run_dir)
    config = run.load_config()
    config.data.shape = read_report(run)["shape"]  # as the later stages see it (open_run)
    train = load_split(run, "train")
    if loss_name == "MultipleNegativesRankingLoss":
        train = train.select_columns(["anchor", "positive"])
    started = time.perf_counter()
    model, steps, train_seconds = train_plain(train, loss_name, epochs, config.seed, config.model.max_seq_length,
                                              OUT / "plain-trainer")
    task = evaluation.load_task(run, config)
    boot = evaluation.Bootstrap.draw(task.n, config.eval.bootstrap_samples, config.eval.confidence, config.seed)
    scores = evaluation.score_model(task, model, boot, config.eval.batch_size, config.seed)
    primary = shapes.get(task.shape).primary_metric
    result = scores.metrics[primary]
    return {"metric": primary, "value": result["value"], "ci95": result["ci95"], "loss": loss_name,
            "steps": steps, "n_train": len(train), "train_seconds": round(train_seconds, 1),
            "seconds": round(time.perf_counter() - started, 1)}


# --- resuming -------------------------------------------------------------------------------------


def source_commit() -> str:
    """The checkout the seed ran on (a "-dirty" suffix: with uncommitted changes)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--", "sttune_helpers", "notebooks") else "")


def finished_seeds(path: Path, settings: dict, names: list[str]) -> dict[str, dict[int, dict]]:
    """The seeds of ``names`` that a results.json (an earlier, stopped run) finished with the same
    settings, by set and seed: --resume reuses them instead of training them again."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"accuracy: --resume {path}: cannot read it as a results.json ({exc})") from None
    differ = {k: (earlier.get("settings", {}).get(k), v) for k, v in settings.items()
              if k != "seeds" and earlier.get("settings", {}).get(k) != v}
    if differ:
        raise SystemExit(f"accuracy: --resume {path} ran with other settings; its seeds would not compare: "
                         + "; ".join(f"{k} was {a!r}, now {b!r}" for k, (a, b) in differ.items()))
    return {name: {entry["seed"]: entry for entry in earlier.get("results", {}).get(name, {}).get("seeds", [])}
            for name in names}


# --- summary -------------------------------------------------------------------------------------


def spread(values: list[float]) -> tuple[float, float | None]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def verdict(sttune_values: list[float], plain_values: list[float]) -> dict:
    """The issue's target on one set: sttune 'matches' (mean_sttune >= mean_plain - seed spread) and
    'beats by more than the seed spread' (difference of means > the larger sd)."""
    mean_s, sd_s = spread(sttune_values)
    mean_p, sd_p = spread(plain_values)
    seed_spread = max(sd_s or 0.0, sd_p or 0.0)
    return {"sttune_mean": mean_s, "sttune_sd": sd_s, "plain_mean": mean_p, "plain_sd": sd_p,
            "difference": mean_s - mean_p, "seed_spread": seed_spread if len(sttune_values) > 1 else None,
            "matches": mean_s >= mean_p - seed_spread,
            "beats_by_more_than_spread": mean_s - mean_p > seed_spread}


def set_result(source: str, seeds: list[dict]) -> dict:
    return {"source": source, "seeds": seeds,
            "verdict": verdict([s["sttune"]["value"] for s in seeds], [s["plain"]["value"] for s in seeds])}


def fmt(mean: float, sd: float | None) -> str:
    return f"{mean:.4f} ± {sd:.4f}" if sd is not None else f"{mean:.4f} (1 seed)"


def interval(entry: dict) -> str:
    low, high = entry["ci95"]
    return f"{entry['value']:.4f} [{low:.4f}, {high:.4f}]" if low is not None else f"{entry['value']:.4f}"


def markdown(results: dict, command: str, total_seconds: float, settings: dict,
             stopped_during: str | None = None) -> str:
    lines = [f"\n## Accuracy: sttune's recipe vs the plain sentence-transformers recipe "
             f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"Machine: {machine()}. Command: `{command}`. {settings['epochs']:g} epochs, seeds "
             f"{' '.join(map(str, settings['seeds']))}"
             + (f", train rows capped at {settings['max_train_rows']}" if settings["max_train_rows"] else "")
             + (f", validation at {settings['max_validation_rows']}" if settings["max_validation_rows"] else "")
             + (f", test at {settings['max_test_rows']}" if settings["max_test_rows"] else "")
             + (f", SciFact on {settings['scifact_train_queries']} train queries"
                if settings["scifact_train_queries"] and "scifact" in results else "")
             + (f", SciFact corpus at {settings['max_corpus_docs']} documents"
                if settings["max_corpus_docs"] and "scifact" in results else "")
             + f"; {settings['bootstrap_samples']} bootstrap samples. all-MiniLM-L6-v2 (packaged); sttune = "
             "`sttune run --preset default` (its recommended loss, early stopping, best checkpoint); plain = "
             "SentenceTransformerTrainer, batch 16, lr 2e-5, warmup 10%, final model, on the sttune run's train "
             "split, scored by sttune_helpers.evaluation on the same test split. Intervals: 95% bootstrap over "
             "test items; ± is the sd over seeds.", "",
             "| set | metric | base | sttune (loss) | plain (loss) | sttune − plain | matches "
             "| beats by > seed spread |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry in results.items():
        v, seeds = entry["verdict"], entry["seeds"]
        first = seeds[0]
        base = statistics.mean(s["sttune"]["base"] for s in seeds)
        label = f"{name} (seeds {' '.join(str(s['seed']) for s in seeds)} only)" if entry.get("partial") else name
        lines.append(f"| {label} | {first['sttune']['metric']} | {base:.4f} | {fmt(v['sttune_mean'], v['sttune_sd'])} "
                     f"({first['sttune']['loss']}) | {fmt(v['plain_mean'], v['plain_sd'])} ({first['plain']['loss']}) "
                     f"| {v['difference']:+.4f} | {'yes' if v['matches'] else 'NO'} | "
                     f"{'yes' if v['beats_by_more_than_spread'] else 'no'} |")
    lines += ["", "Per seed (95% bootstrap interval; steps trained; seconds of the whole sttune run / of the plain "
              "recipe's training and scoring):", "",
              "| set | seed | sttune | steps | plain | steps | sttune s | plain s | ran on |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results.items():
        for s in entry["seeds"]:
            st, pl = s["sttune"], s["plain"]
            stop = f"{st['steps']}/{st['max_steps']}" + (" early stop" if st["stopped_early"] else "")
            kept = st.get("kept_checkpoint")
            if kept and int(kept.rsplit("-", 1)[-1]) != st["steps"]:
                stop += f", kept step {kept.rsplit('-', 1)[-1]}"
            lines.append(f"| {name} | {s['seed']} | {interval(st)} | {stop} | {interval(pl)} | {pl['steps']} | "
                         f"{st['seconds']:.0f} | {pl['seconds']:.0f} | {s.get('commit', '?')} |")
    met = [n for n, e in results.items() if e["verdict"]["matches"]]
    beaten = [n for n, e in results.items() if e["verdict"]["beats_by_more_than_spread"]]
    target = len(met) == len(results) and bool(beaten)
    lines += ["", f"Target{' on the sets that finished' if stopped_during else ''} (matches on every set, "
              "beats by more than the seed spread on at least one): "
              f"{'met' if target else 'NOT met'} (matches: {', '.join(met) or 'none'}; beats: "
              f"{', '.join(beaten) or 'none'})."
              + (" With one seed there is no seed spread: the verdicts compare the means alone." if
                 len(settings["seeds"]) < 2 else ""),
              (f"Stopped by hand during {stopped_during}: only the sets above finished. " if stopped_during else "")
              + f"Total {total_seconds / 60:.1f} min.", ""]
    return "\n".join(lines)


def main() -> int:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, one epoch, capped rows, smaller SciFact corpus")
    parser.add_argument("--sets", default="stsb,mrpc,scifact", help="comma-separated: stsb, mrpc, scifact")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2 (--quick: 0)")
    parser.add_argument("--epochs", type=float, help="epochs of both recipes (default 4, --quick 1)")
    parser.add_argument("--max-train-rows", type=int, help="cap on the train split (data.max_train_rows)")
    parser.add_argument("--max-eval-rows", type=int, help="cap on the validation and test splits")
    parser.add_argument("--max-corpus-docs", type=int, help="SciFact: corpus size (every judged document kept)")
    parser.add_argument("--scifact-train-queries", type=int, help="SciFact: a seeded sample of the train queries")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="the Markdown log to append to")
    parser.add_argument("--out", type=Path, default=OUT,
                        help="where the runs, the prepared data and results.json go (default bench/out/accuracy)")
    parser.add_argument("--resume", type=Path, metavar="RESULTS_JSON",
                        help="reuse the seeds that this earlier run's results.json finished (same settings)")
    args = parser.parse_args()
    OUT = args.out.resolve()
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETS]
    if unknown or not names:
        parser.error(f"--sets: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SETS)}")
    settings = dict(QUICK if args.quick else FULL)
    for key, value in (("seeds", args.seeds), ("epochs", args.epochs), ("max_train_rows", args.max_train_rows),
                       ("max_validation_rows", args.max_eval_rows), ("max_test_rows", args.max_eval_rows),
                       ("max_corpus_docs", args.max_corpus_docs),
                       ("scifact_train_queries", args.scifact_train_queries)):
        if value is not None:
            settings[key] = value
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    command = shlex.join([".venv/bin/python", "bench/accuracy.py", *sys.argv[1:]])
    started = time.perf_counter()
    overrides = [*RUN_OVERRIDES, f"train.epochs={settings['epochs']}",
                 f"eval.bootstrap_samples={settings['bootstrap_samples']}"]
    for key in ("max_train_rows", "max_validation_rows", "max_test_rows"):
        if settings[key] is not None:
            overrides.append(f"data.{key}={settings[key]}")
    results: dict = {}
    reused = finished_seeds(args.resume, settings, names) if args.resume else {}
    commit = source_commit()
    OUT.mkdir(parents=True, exist_ok=True)
    # A full run takes hours on a CPU: Ctrl-C (or SIGTERM) stops it and still records the finished sets.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stopped_during, seeds = None, []
    try:
        for name in names:
            stopped_during = name
            spec = SETS[name]
            source = data_source(name, settings)
            seeds = []
            for seed in settings["seeds"]:
                if seed in reused.get(name, {}):
                    seeds.append(reused[name][seed])
                    print(f"{name} seed {seed}: reused from {args.resume} (ran on {seeds[-1].get('commit', '?')})",
                          flush=True)
                    continue
                run_name = f"{name}-{'quick-' if args.quick else ''}seed{seed}"
                sttune = sttune_recipe(run_name, source, seed, [*overrides, *spec.overrides])
                plain = plain_recipe(Path(sttune["run"]), spec.plain_loss, settings["epochs"])
                seeds.append({"seed": seed, "sttune": sttune, "plain": plain, "commit": commit})
                # Every finished seed is on disk at once: a stopped run loses at most the seed under way.
                (OUT / "results.json").write_text(json.dumps(
                    {"command": command, "settings": settings,
                     "results": {**results, name: {**set_result(source, seeds), "partial": True}}}, indent=2))
                print(f"{name} seed {seed}: sttune ({sttune['loss']}) {sttune['metric']} {sttune['value']:.4f}, "
                      f"plain ({plain['loss']}) {plain['value']:.4f}, base {sttune['base']:.4f}", flush=True)
            results[name] = set_result(source, seeds)
            (OUT / "results.json").write_text(json.dumps({"command": command, "settings": settings,
                                                         "results": results}, indent=2))
        stopped_during = None
    except KeyboardInterrupt:
        if seeds and stopped_during not in results:  # the seeds of the unfinished set that did finish
            results[stopped_during] = {**set_result(source, seeds), "partial": True}
        print(f"accuracy: stopped during {stopped_during}; recording what finished "
              f"({', '.join(results) or 'nothing'})", file=sys.stderr, flush=True)
        if not results:
            return 130
        (OUT / "results.json").write_text(json.dumps({"command": command, "settings": settings, "results": results,
                                                     "stopped_during": stopped_during}, indent=2))
    text = markdown(results, command, time.perf_counter() - started, settings, stopped_during)
    print(text)
    append_results(args.results, text)
    return 130 if stopped_during else 0


if __name__ == "__main__":
    sys.exit(main())
