"""Issue 17's accuracy benchmark: the base model, the plain sentence-transformers recipe and
sttune's default recipe side by side, same model, same data, same machine, several seeds, on STS-B
(embedded), MRPC, SciFact and a transfer case, SNLI recast as relatedness; for every model its test
metric and its general-ability reference.

For each data set and seed:

- **sttune's recipe** is a real `sttune run --preset default -p data.source=... -p seed=S`: the loss
  the pipeline recommends for the data (and, for retrieval, its train pairs with mined hard negatives,
  `data.negatives.enabled: auto`; for MRPC the pair_binary recipe, `train.shape_recipe`: the task prompt,
  the general anchor over 8 texts every second step, lr 8e-5 and batch 32; for SciFact the retrieval recipe,
  no attention dropout), early stopping on the validation metric,
  the best checkpoint restored, model selection where the package has it (training.json's "selection": the chosen
  candidate is recorded, and metrics.json's model ``before_selection``, the pure fine-tuned one, where
  it differs). Its evaluation stage scores the base model and sttune's on the test split and on the
  report half of the general reference (scoring/reference.py: an STS part and a SQuAD retrieval part,
  any part built from the run's own training source left out); every figure of both is read from
  the run's eval/metrics.json.
- **the plain recipe** is what a user copies from the sentence-transformers examples:
  SentenceTransformer + SentenceTransformerTrainer, batch 16, lr 2e-5, warmup 10%, the same number
  of epochs, no evaluation during training, the final model; CosineSimilarityLoss for STS-B and SNLI
  (scored pairs), OnlineContrastiveLoss for MRPC, MultipleNegativesRankingLoss on (query, positive)
  for SciFact (with the no-duplicates batch sampler, as the library's MNRL examples use). It trains on
  the sttune run's own data/train.jsonl (so the rows are identical; for SciFact its (query, positive)
  pairs, each once, without sttune's mined negatives) and is scored with
  sttune_helpers.scoring (load_task, Bootstrap, score_model: the code stage 04 uses) on the run's
  test split and on the same reference parts, built by general_reference from the same run directory
  (so the same parts and items are left out) with the same bootstrap seeds as stage 04 (seed + 1 + i
  for part i). Its mixed precision in training is the one sttune picks for the machine (bf16 on CPUs
  with native bf16), so precision is not a difference between the two.

Every reference figure is recorded with its drop from the base model (base - model: positive is
ability lost). The targets the Markdown section judges:

  (a) on every set but the transfer case, sttune's test metric beats the plain recipe's by more than
      the seed spread (the larger sd over seeds of the two);
  (b) on a transfer case (snli, snli_triplets), sttune's model loses at most 0.01 on every reference
      part (mean drop over seeds), the plain recipe loses more than 0.01 on at least one, and sttune's
      task cost (plain - sttune on the test metric) stays within the seed spread.
  (d) the wall times: sttune's training and evaluation stages against plain's training and scoring.

SNLI (the transfer case) is SNLI dev as training data and SNLI test as the test split, each pair
scored entailment 1.0, neutral 0.5, contradiction 0.0 (pair_score); 15% of dev, whole premises, is
carved out as the validation split. snli_triplets is the issue's other recast of the same splits:
(premise, entailment, contradiction) triplets, MultipleNegativesRankingLoss for both recipes (the
plain one on the triplets, as the library's NLI example trains), triplet accuracy on SNLI test.

MRPC has no dev split and SciFact's BEIR qrels have none either:
one is carved out of train once, with a fixed seed (``DATA_SEED``), into OUT/data/, so that every
seed and both recipes see the same train / validation / test rows (sttune's own split would carve it
again with each run's seed). SciFact runs with model.max_seq_length=256 for both recipes (its
abstracts are long).

Stage 05 (embedding maps) plays no part in the comparison: it runs on 100 points with numba's JIT off
(as in the tests), and the interpolation sweep is off.

    .venv/bin/python bench/accuracy.py                      # 4 sets x seeds 0 1 2, 4 epochs
    .venv/bin/python bench/accuracy.py --quick              # the same comparison on a short budget
    .venv/bin/python bench/accuracy.py --sets stsb --sttune-set train.learning_rate=8e-5
                                                            # sttune with a candidate default
    .venv/bin/python bench/accuracy.py --sets scifact --resume bench/out/accuracy/results.json
                                                            # reuse the seeds an earlier run finished
    .venv/bin/python bench/accuracy.py --sets stsb --seeds 0 --epochs 1 --max-train-rows 64 \\
        --max-eval-rows 200 --max-reference-pairs 100 --bootstrap-samples 100 \\
        --out /tmp/accuracy --results /tmp/RESULTS.md      # a smoke test of the script (4 steps: the drops move)
    .venv/bin/python bench/accuracy.py --sets snli --seeds 0 --epochs 1 --max-train-rows 64 \\
        --max-eval-rows 200 --max-reference-pairs 100 --bootstrap-samples 100 \\
        --out /tmp/accuracy --results /tmp/RESULTS.md      # a smoke test of the transfer case

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
SNLI_VALIDATION_FRACTION = 0.15
SNLI_SCORE = {"entailment": 1.0, "neutral": 0.5, "contradiction": 0.0}  # as the reference's snli part
MAX_REFERENCE_DROP = 0.01  # target (b): what sttune's model may lose on a reference part in the transfer case


@dataclass(frozen=True)
class DataSet:
    name: str
    plain_loss: str
    overrides: tuple[str, ...] = ()
    transfer: bool = False  # judged by target (b) (general ability kept) rather than (a)


SETS = {
    "stsb": DataSet("stsb", "CosineSimilarityLoss"),
    "mrpc": DataSet("mrpc", "OnlineContrastiveLoss"),
    "scifact": DataSet("scifact", "MultipleNegativesRankingLoss", ("model.max_seq_length=256",)),
    "snli": DataSet("snli", "CosineSimilarityLoss", transfer=True),
    # The other recast the issue names: (premise, entailment, contradiction) triplets for MNRL, the
    # classic SBERT NLI recipe; the task no longer asks contradictions to score as unrelated.
    "snli_triplets": DataSet("snli_triplets", "MultipleNegativesRankingLoss", transfer=True),
}

# --quick: one seed, one epoch, capped splits, a smaller SciFact corpus (every relevant document
# kept) and 300 pairs or queries per reference part, so that the whole comparison takes minutes.
QUICK = {"seeds": [0], "epochs": 1.0, "max_train_rows": 500, "max_validation_rows": 200, "max_test_rows": 300,
         "bootstrap_samples": 200, "scifact_train_queries": 300, "max_corpus_docs": 1000,
         "max_reference_pairs": 300, "sttune_settings": []}
FULL = {"seeds": [0, 1, 2], "epochs": 4.0, "max_train_rows": None, "max_validation_rows": None,
        "max_test_rows": None, "bootstrap_samples": 1000, "scifact_train_queries": None, "max_corpus_docs": None,
        "max_reference_pairs": None, "sttune_settings": []}

# Settings of every sttune run that do not touch the comparison, only its time. The reference
# (eval.reference) stays on: stage 04 scores base and sttune's model on its report half.
RUN_OVERRIDES = ["eval.interpolation_alphas=[]", "viz.max_points=100", "viz.n_epochs=50"]


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


def prepare_snli(shared: Path, target: Path) -> Path:
    """SNLI as pair_score (entailment 1.0, neutral 0.5, contradiction 0.0): SNLI dev as train less
    a validation split of whole premises (premise_id groups, about 15% of the rows, fixed seed),
    SNLI test as test; files snli-{train,dev,test}.tsv with columns sentence1, sentence2, score."""
    import pandas as pd

    from sttune_helpers.data import group_split

    if all((target / f"snli-{s}.tsv").is_file() for s in ("train", "dev", "test")):
        return target
    target.mkdir(parents=True, exist_ok=True)

    def read(split: str) -> pd.DataFrame:
        frame = pd.read_csv(shared / "snli" / f"snli-{split}.tsv", sep="\t", dtype=str, keep_default_na=False)
        unknown = sorted(set(frame["label"]) - set(SNLI_SCORE))
        if unknown:
            raise SystemExit(f"accuracy: snli-{split}.tsv has labels other than {', '.join(SNLI_SCORE)}: {unknown}")
        return frame.assign(score=frame["label"].map(SNLI_SCORE))

    dev = read("dev").rename(columns={"premise_id": "_group"})
    parts = group_split(dev, ("sentence1",), {"validation": SNLI_VALIDATION_FRACTION, "test": 0.0}, seed=DATA_SEED)
    columns = ["sentence1", "sentence2", "score"]
    parts["train"][columns].to_csv(target / "snli-train.tsv", sep="\t", index=False)
    parts["validation"][columns].to_csv(target / "snli-dev.tsv", sep="\t", index=False)
    read("test")[columns].to_csv(target / "snli-test.tsv", sep="\t", index=False)
    return target


def snli_triplets(frame):
    """Every (premise, entailment, contradiction) of a premise's hypotheses, in file order, less the
    few whose hypothesis repeats the premise or the other hypothesis (sttune refuses such rows)."""
    import pandas as pd

    rows = []
    for (_, premise), group in frame.groupby(["premise_id", "sentence1"], sort=False):
        entailed = group.loc[group["label"] == "entailment", "sentence2"]
        contradicted = group.loc[group["label"] == "contradiction", "sentence2"]
        rows += [(premise, e, c) for e in entailed for c in contradicted
                 if len({premise.strip(), e.strip(), c.strip()}) == 3]
    return pd.DataFrame(rows, columns=["anchor", "positive", "negative"])


def prepare_snli_triplets(shared: Path, target: Path) -> Path:
    """SNLI as triplets (premise, entailment, contradiction): SNLI dev as train less a validation
    split of whole premises (as prepare_snli's), SNLI test as test; files snli-{train,dev,test}.tsv
    with columns anchor, positive, negative. Premises without both labels give no triplet."""
    import pandas as pd

    from sttune_helpers.data import group_split

    if all((target / f"snli-{s}.tsv").is_file() for s in ("train", "dev", "test")):
        return target
    target.mkdir(parents=True, exist_ok=True)

    def read(split: str) -> pd.DataFrame:
        return pd.read_csv(shared / "snli" / f"snli-{split}.tsv", sep="\t", dtype=str, keep_default_na=False)

    dev = read("dev").assign(_group=lambda f: f["premise_id"])
    parts = group_split(dev, ("sentence1",), {"validation": SNLI_VALIDATION_FRACTION, "test": 0.0}, seed=DATA_SEED)
    snli_triplets(parts["train"]).to_csv(target / "snli-train.tsv", sep="\t", index=False)
    snli_triplets(parts["validation"]).to_csv(target / "snli-dev.tsv", sep="\t", index=False)
    snli_triplets(read("test")).to_csv(target / "snli-test.tsv", sep="\t", index=False)
    return target


def data_source(name: str, settings: dict) -> str:
    if name == "stsb":
        return "embedded:stsb"
    if name == "mrpc":
        return str(prepare_mrpc(SHARED_DATA, OUT / "data" / "mrpc"))
    if name == "snli":
        return str(prepare_snli(SHARED_DATA, OUT / "data" / "snli"))
    if name == "snli_triplets":
        return str(prepare_snli_triplets(SHARED_DATA, OUT / "data" / "snli-triplets"))
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
    return read_run(run, seconds, stages)


def read_run(run: Path, seconds: float, stages: dict) -> dict:
    """sttune's figures of a finished run: its model's, and under "base" and "before_selection" those
    models', test metric and reference parts; the loss, steps, model selection and stage times."""
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    training = json.loads((run / "training.json").read_text())
    primary = metrics["primary_metric"]
    reference = metrics.get("reference") or {}
    selection = training.get("selection")

    def figures(model: str) -> dict | None:
        """A model's test metric and its reference parts, from metrics.json (None: not compared)."""
        if model not in metrics["models"]:
            return None
        return {"metric": primary, **test_figure(metrics["models"][model]["metrics"][primary]),
                "reference": {part: {"metric": block["primary_metric"], "n": block["n_test"],
                                     **test_figure(block["models"][model]["metrics"][block["primary_metric"]])}
                              for part, block in reference.get("parts", {}).items() if model in block["models"]}}

    tuned = figures("fine_tuned")
    return {"run": str(run), **tuned, "base": figures("base"), "before_selection": figures("before_selection"),
            "n_test": metrics["n_test"], "reference_excluded": reference.get("excluded", []),
            "selection": selection, "chosen": chosen_candidate(selection),
            "loss": training["loss"], "steps": training["global_step"], "max_steps": training["max_steps"],
            "stopped_early": training.get("stopped_early"), "best_checkpoint": training.get("best_checkpoint"),
            "kept_checkpoint": training.get("kept_checkpoint"), "checkpoint_choice": training.get("checkpoint_choice"),
            "seconds": round(seconds, 1),
            "stage_seconds": {s: e.get("seconds") for s, e in stages.items()}}


def test_figure(entry: dict) -> dict:
    return {"value": entry["value"], "ci95": entry.get("ci95")}


def chosen_candidate(selection: dict | None) -> str | None:
    """The candidate that training.json's "selection" chose (None: no selection)."""
    return selection["chosen"] if selection else None

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
    # accelerate leaves a bf16 autocast wrapper on the model's forward after bf16 training; without
    # it, the plain model is scored in eval.precision (fp32) as stage 04 scores sttune's, which loads
    # its model from disk (before 2026-12-05 the plain model was scored in bf16: faster, and not exact).
    model.__dict__.pop("forward", None)
    return model, trainer.state.global_step, time.perf_counter() - started


def plain_pairs(train, negatives: dict | None, run_dir: Path):
    """The plain recipe's (query, positive) pairs: the train split without sttune's mined negatives
    (--sttune-set data.negatives.enabled=true), once per pair as before mining, so that both recipes
    start from the same pairs. A pair that mining left out cannot be restored: refused."""
    pairs = train.select_columns(["anchor", "positive"])
    if negatives is None:
        return pairs
    frame = pairs.to_pandas().drop_duplicates(ignore_index=True)
    if len(frame) != negatives["pairs_in"]:
        raise SystemExit(f"accuracy: {run_dir}: hard-negative mining left {negatives['pairs_in'] - len(frame)} of "
                         f"{negatives['pairs_in']} train pairs out of the run's train split, so the plain recipe "
                         "cannot train on the same pairs (keep data.negatives.fill_below_window=true)")
    from datasets import Dataset

    return Dataset.from_pandas(frame, preserve_index=False)


def plain_recipe(run_dir: Path, loss_name: str, epochs: float, sttune_reference: dict) -> dict:
    """Train the plain recipe on the sttune run's train split; score it as stage 04 scores models, on
    the test split and on the reference's report half built from the same run (same parts, same items,
    same bootstrap seeds)."""
    from sttune_helpers import shapes
    from sttune_helpers.core.statistics import Bootstrap
    from sttune_helpers.data import load_split, read_report
    from sttune_helpers.rundir import RunDir
    from sttune_helpers.scoring import general_reference, load_task, score_model
    from sttune_helpers.scoring.reference import part_name

    run = RunDir(run_dir)
    config = run.load_config()
    config.data.shape = read_report(run)["shape"]  # as the later stages see it (open_run)
    train = load_split(run, "train")
    if loss_name == "MultipleNegativesRankingLoss" and config.data.shape == "retrieval":
        train = plain_pairs(train, read_report(run).get("negatives"), run_dir)
    started = time.perf_counter()
    model, steps, train_seconds = train_plain(train, loss_name, epochs, config.seed, config.model.max_seq_length,
                                              OUT / "plain-trainer")
    ev = config.eval
    scored = time.perf_counter()
    task = load_task(run, config)
    boot = Bootstrap.draw(task.n, ev.bootstrap_samples, ev.confidence, config.seed)
    scores = score_model(task, model, boot, ev.batch_size, config.seed, ev.precision)
    primary = shapes.get(task.shape).primary_metric
    score_seconds = time.perf_counter() - scored
    reference = {}
    if sttune_reference:  # stage 04 scored the reference: the plain model on the same parts
        scored = time.perf_counter()
        parts = general_reference(run, config, "report").parts
        names = [part_name(part) for part in parts]
        ours = {name: part.n for name, part in zip(names, parts)}
        theirs = {name: figure["n"] for name, figure in sttune_reference.items()}
        if ours != theirs:
            raise SystemExit(f"accuracy: {run_dir}: the reference parts built for the plain model (items: {ours}) "
                             f"are not those stage 04 scored ({theirs})")
        for i, part in enumerate(parts):
            # stage 04's bootstrap of part i (evaluation/evaluate.py's _reference_boots): seed + 1 + i
            part_boot = Bootstrap.draw(part.n, ev.bootstrap_samples, ev.confidence, config.seed + 1 + i)
            metric = shapes.get(part.shape).primary_metric
            # at stage 04's reference precision, so that its drop compares with sttune's base alike
            result = score_model(part, model, part_boot, ev.batch_size, config.seed,
                                 ev.reference_precision).metrics[metric]
            reference[names[i]] = {"metric": metric, "n": part.n, **test_figure(result)}
        reference_seconds = time.perf_counter() - scored
    result = scores.metrics[primary]
    return {"metric": primary, **test_figure(result), "reference": reference, "loss": loss_name,
            "steps": steps, "n_train": len(train), "train_seconds": round(train_seconds, 1),
            "score_seconds": round(score_seconds, 1),
            "reference_seconds": round(reference_seconds, 1) if reference else None,
            "seconds": round(time.perf_counter() - started, 1)}


def with_drops(entry: dict | None, base: dict) -> dict | None:
    """A model's figures with, on the test metric, its gain over base and, on each reference part,
    its drop from base (base - model: positive is general ability lost)."""
    if entry is None:
        return None
    reference = {part: {**figure, "drop": base["reference"][part]["value"] - figure["value"]}
                 for part, figure in entry["reference"].items() if part in base["reference"]}
    return {**entry, "gain": entry["value"] - base["value"], "reference": reference}


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
    before = {"sttune_settings": [], **earlier.get("settings", {})}  # older runs had no sttune settings
    differ = {k: (before.get(k), v) for k, v in settings.items() if k != "seeds" and before.get(k) != v}
    if differ:
        raise SystemExit(f"accuracy: --resume {path} ran with other settings; its seeds would not compare: "
                         + "; ".join(f"{k} was {a!r}, now {b!r}" for k, (a, b) in differ.items()))
    reused: dict[str, dict[int, dict]] = {}
    for name in names:
        reused[name] = {}
        for entry in earlier.get("results", {}).get(name, {}).get("seeds", []):
            if isinstance(entry.get("base"), dict) and "reference" in entry.get("plain", {}):
                reused[name][entry["seed"]] = entry
            else:  # an earlier version of this script: no base model or reference figures
                print(f"accuracy: --resume {path}: {name} seed {entry.get('seed')} has no reference figures "
                      "(an earlier version of this script); it runs again", file=sys.stderr)
    return reused


# --- summary -------------------------------------------------------------------------------------

MODELS = ("base", "plain", "sttune", "before_selection")  # before_selection: where model selection changed the model


def spread(values: list[float]) -> tuple[float, float | None]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def stat(values: list[float]) -> dict:
    mean, sd = spread(values)
    return {"mean": mean, "sd": sd, "n": len(values)}


def verdict(sttune_values: list[float], plain_values: list[float]) -> dict:
    """Target (a) on one set: sttune 'beats by more than the seed spread' (difference of means > the
    larger sd over seeds); also whether it 'matches' (mean_sttune >= mean_plain - seed spread)."""
    mean_s, sd_s = spread(sttune_values)
    mean_p, sd_p = spread(plain_values)
    seed_spread = max(sd_s or 0.0, sd_p or 0.0)
    return {"sttune_mean": mean_s, "sttune_sd": sd_s, "plain_mean": mean_p, "plain_sd": sd_p,
            "difference": mean_s - mean_p, "seed_spread": seed_spread if len(sttune_values) > 1 else None,
            "matches": mean_s >= mean_p - seed_spread,
            "beats_by_more_than_spread": mean_s - mean_p > seed_spread}


def summarise(seeds: list[dict]) -> dict:
    """Per model, over the seeds that have it: the test metric and its gain over base, and per
    reference part the value and the drop from base (mean, sd)."""
    summary = {}
    for model in MODELS:
        entries = [s[model] for s in seeds if s.get(model)]
        if not entries:
            continue
        parts = [p for p in entries[0]["reference"] if all(p in e["reference"] for e in entries)]
        summary[model] = {
            "seeds": len(entries), "metric": entries[0]["metric"],
            "test": stat([e["value"] for e in entries]),
            "gain": stat([e.get("gain", 0.0) for e in entries]),
            "reference": {p: {"metric": entries[0]["reference"][p]["metric"], "n": entries[0]["reference"][p]["n"],
                              "value": stat([e["reference"][p]["value"] for e in entries]),
                              "drop": stat([e["reference"][p].get("drop", 0.0) for e in entries])}
                          for p in parts}}
    return summary


def transfer_verdict(summary: dict, task: dict) -> dict:
    """Target (b): sttune's model loses at most MAX_REFERENCE_DROP on every reference part (mean
    drop), the plain recipe loses more than that on at least one, and sttune's task cost (plain -
    sttune on the test metric) is within the seed spread."""
    sttune = {p: e["drop"]["mean"] for p, e in summary["sttune"]["reference"].items()}
    plain = {p: e["drop"]["mean"] for p, e in summary["plain"]["reference"].items()}
    keeps = bool(sttune) and all(d <= MAX_REFERENCE_DROP for d in sttune.values())
    plain_loses = any(d > MAX_REFERENCE_DROP and d > sttune.get(p, float("-inf")) for p, d in plain.items())
    cost = -task["difference"]
    within = cost <= (task["seed_spread"] or 0.0)
    return {"sttune_drops": sttune, "plain_drops": plain, "sttune_keeps_reference": keeps,
            "plain_loses_more": plain_loses, "task_cost": cost, "seed_spread": task["seed_spread"],
            "task_cost_within_spread": within, "met": keeps and plain_loses and within}


def set_result(source: str, seeds: list[dict], transfer: bool) -> dict:
    summary = summarise(seeds)
    task = verdict([s["sttune"]["value"] for s in seeds], [s["plain"]["value"] for s in seeds])
    return {"source": source, "transfer": transfer, "seeds": seeds, "summary": summary, "verdict": task,
            "transfer_verdict": transfer_verdict(summary, task) if transfer else None}


def fmt(mean: float, sd: float | None) -> str:
    return f"{mean:.4f} ± {sd:.4f}" if sd is not None else f"{mean:.4f}"


def fstat(entry: dict, signed: bool = False) -> str:
    mean, sd = entry["mean"], entry["sd"]
    text = f"{mean:+.4f}" if signed else f"{mean:.4f}"
    return text + (f" ± {sd:.4f}" if sd is not None else "")


def interval(entry: dict) -> str:
    low, high = entry.get("ci95") or (None, None)
    return f"{entry['value']:.4f} [{low:.4f}, {high:.4f}]" if low is not None else f"{entry['value']:.4f}"


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def drops(entry: dict) -> str:
    return ", ".join(f"{part} {figure['drop']:+.4f}" for part, figure in entry["reference"].items()) or "–"


def set_section(name: str, entry: dict) -> list[str]:
    """One set's table (base / plain / sttune, mean ± sd over seeds) and its verdicts."""
    seeds, summary, v = entry["seeds"], entry["summary"], entry["verdict"]
    first = seeds[0]
    parts = list(summary["base"]["reference"])
    label = f"{name} (seeds {' '.join(str(s['seed']) for s in seeds)} only)" if entry.get("partial") else name
    metric = first["sttune"]["metric"]
    lines = [f"### {label}{' (transfer case)' if entry['transfer'] else ''}", "",
             f"Test: {metric} on {first['sttune']['n_test']} items. Reference (report half): "
             + (", ".join(f"{p} ({summary['base']['reference'][p]['metric']}, {summary['base']['reference'][p]['n']} "
                          "items)" for p in parts) or "none")
             + "; drop = base − model (positive: ability lost). ± is the sd over seeds (the seed spread).", ""]
    header = f"| model | test {metric} | gain over base |" + "".join(f" {p} | {p} drop |" for p in parts)
    lines += [header, "|---" * (3 + 2 * len(parts)) + "|"]
    chosen = sorted({s["sttune"].get("chosen") for s in seeds if s["sttune"].get("chosen")})
    names = {"base": "base", "plain": f"plain ({first['plain']['loss']})",
             "sttune": f"sttune ({first['sttune']['loss']}" + (f"; chose {', '.join(chosen)}" if chosen else "") + ")",
             "before_selection": "sttune before selection"}
    for model in MODELS:
        row = summary.get(model)
        if row is None:
            continue
        who = names[model] + (f" ({row['seeds']} of {len(seeds)} seeds)" if row["seeds"] < len(seeds) else "")
        cells = [fstat(row["test"]), "" if model == "base" else fstat(row["gain"], signed=True)]
        for p in parts:
            ref = row["reference"].get(p)
            if ref is None:
                cells += ["–", "–"]
            else:
                cells += [fstat(ref["value"]), "" if model == "base" else fstat(ref["drop"], signed=True)]
        lines.append(f"| {who} | " + " | ".join(cells) + " |")
    excluded = first["sttune"].get("reference_excluded") or []
    if excluded:
        lines += ["", "Left out of the reference: " + "; ".join(
            f"{e.get('part') or e.get('kind')}: {e['reason']}" for e in excluded) + "."]
    spread_text = f"seed spread {v['seed_spread']:.4f}" if v["seed_spread"] is not None else "one seed, no spread"
    lines += ["", f"(a) sttune − plain on the test metric: {v['difference']:+.4f} ({spread_text}): beats by more "
                  f"than the seed spread: {yes(v['beats_by_more_than_spread'])}; matches: {yes(v['matches'])}."
                  + (" The transfer case is judged by (b)." if entry["transfer"] else "")]
    t = entry.get("transfer_verdict")
    if t:
        drops = lambda d: ", ".join(f"{p} {x:+.4f}" for p, x in d.items()) or "none"  # noqa: E731
        lines.append(f"(b) sttune's reference drops {drops(t['sttune_drops'])} (all ≤ {MAX_REFERENCE_DROP}: "
                     f"{yes(t['sttune_keeps_reference'])}); plain's {drops(t['plain_drops'])} (more than "
                     f"{MAX_REFERENCE_DROP} and than sttune's on one part: {yes(t['plain_loses_more'])}); task cost "
                     f"plain − sttune {t['task_cost']:+.4f}, within the {spread_text}: "
                     f"{yes(t['task_cost_within_spread'])}. Target (b): {'met' if t['met'] else 'NOT met'}.")
    return lines + [""]


def markdown(results: dict, command: str, total_seconds: float, settings: dict,
             stopped_during: str | None = None) -> str:
    lines = [f"\n## Accuracy (issue 17): base, the plain sentence-transformers recipe and sttune's default "
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
             + (f", reference parts at {settings['max_reference_pairs']} pairs or queries"
                if settings.get("max_reference_pairs") else "")
             + f"; {settings['bootstrap_samples']} bootstrap samples. all-MiniLM-L6-v2 (packaged); sttune = "
             "`sttune run --preset default` (its recommended loss, early stopping, best checkpoint, model "
             "selection where the package has it"
             + (f"; with {', '.join(f'`{o}`' for o in settings['sttune_settings'])}"
                if settings.get("sttune_settings") else "")
             + "); plain = SentenceTransformerTrainer, batch 16, lr 2e-5, warmup "
             "10%, final model, on the sttune run's train split, scored by sttune_helpers.scoring on the same test "
             "split and the same reference parts (general_reference's report half of the sttune run: an STS part "
             "and SQuAD retrieval, the run's own source left out). snli = SNLI dev (less a 15% validation split of "
             "whole premises) as pair_score, entailment 1 / neutral 0.5 / contradiction 0, tested on SNLI test; "
             "snli_triplets = the same splits as (premise, entailment, contradiction) triplets.", ""]
    for name, entry in results.items():
        lines += set_section(name, entry)
    lines += ["Per seed (test metric with its 95% bootstrap interval; steps trained; the candidate model selection "
              "chose, with the test metric before selection where it changed the model; reference drops from base; "
              "seconds of the whole sttune run / of the plain recipe's training and scoring):", "",
              "| set | seed | base | sttune | steps | chosen | sttune drops | plain | steps | plain drops "
              "| sttune s | plain s | ran on |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results.items():
        for s in entry["seeds"]:
            st, pl = s["sttune"], s["plain"]
            stop = f"{st['steps']}/{st['max_steps']}" + (" early stop" if st.get("stopped_early") else "")
            kept = st.get("kept_checkpoint")
            if kept and kept.rsplit("-", 1)[-1].isdigit() and int(kept.rsplit("-", 1)[-1]) != st["steps"]:
                stop += f", kept step {kept.rsplit('-', 1)[-1]}"
            chosen = st.get("chosen") or "–"
            if s.get("before_selection"):
                chosen += f" (before: {s['before_selection']['value']:.4f})"
            lines.append(f"| {name} | {s['seed']} | {s['base']['value']:.4f} | {interval(st)} | {stop} | {chosen} | "
                         f"{drops(st)} | {interval(pl)} | {pl['steps']} | {drops(pl)} | {st['seconds']:.0f} | "
                         f"{pl['seconds']:.0f} | {s.get('commit', '?')} |")
    lines += ["", "Wall time (d), mean seconds over seeds: sttune's training and evaluation stages (its evaluation "
              "also scores the base model, and the model before selection where there is one) against the plain "
              "recipe's training and its scoring (test split and reference):", "",
              "| set | sttune training | sttune evaluation | sttune train + score | sttune whole run "
              "| plain training | plain scoring | plain train + score |", "|---|---|---|---|---|---|---|---|"]
    for name, entry in results.items():
        seeds = entry["seeds"]

        def mean(values):
            values = [v for v in values if v is not None]
            return statistics.mean(values) if values else float("nan")

        train = mean([s["sttune"]["stage_seconds"].get("training") for s in seeds])
        evaluation = mean([s["sttune"]["stage_seconds"].get("evaluation") for s in seeds])
        plain_train = mean([s["plain"]["train_seconds"] for s in seeds])
        plain_total = mean([s["plain"]["seconds"] for s in seeds])
        lines.append(f"| {name} | {train:.0f} | {evaluation:.0f} | {train + evaluation:.0f} | "
                     f"{mean([s['sttune']['seconds'] for s in seeds]):.0f} | {plain_train:.0f} | "
                     f"{plain_total - plain_train:.0f} | {plain_total:.0f} |")
    judged = [n for n, e in results.items() if not e["transfer"]]
    beaten = [n for n in judged if results[n]["verdict"]["beats_by_more_than_spread"]]
    transfers = {n: e["transfer_verdict"]["met"] for n, e in results.items() if e["transfer"]}
    finished = " on the sets that finished" if stopped_during else ""
    lines += ["", (f"Target (a){finished} (sttune beats plain by more than the seed spread on every set but the "
                   f"transfer case): {'met' if judged and beaten == judged else 'NOT met'} (beats: "
                   f"{', '.join(beaten) or 'none'}; not: {', '.join(n for n in judged if n not in beaten) or 'none'})."
                   if judged else "Target (a): no set run."),
              ("Target (b) (transfer case): " + "; ".join(f"{n} {'met' if m else 'NOT met'}" for n, m in
                                                           transfers.items()) + "."
               if transfers else "Target (b): the transfer case (snli) was not run.")
              + (" With one seed there is no seed spread: the verdicts compare the means alone." if
                 len(settings["seeds"]) < 2 else ""),
              (f"Stopped by hand during {stopped_during}: only the sets above finished. " if stopped_during else "")
              + f"Total {total_seconds / 60:.1f} min.", ""]
    return "\n".join(lines)


def main() -> int:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one seed, one epoch, capped rows, smaller SciFact corpus and reference parts")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated: {', '.join(SETS)} (default all)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2 (--quick: 0)")
    parser.add_argument("--epochs", type=float, help="epochs of both recipes (default 4, --quick 1)")
    parser.add_argument("--max-train-rows", type=int, help="cap on the train split (data.max_train_rows)")
    parser.add_argument("--max-eval-rows", type=int, help="cap on the validation and test splits")
    parser.add_argument("--max-corpus-docs", type=int, help="SciFact: corpus size (every judged document kept)")
    parser.add_argument("--scifact-train-queries", type=int, help="SciFact: a seeded sample of the train queries")
    parser.add_argument("--max-reference-pairs", type=int,
                        help="a seeded sample of each reference part's pairs or queries (eval.reference_max_pairs; "
                             "default all, --quick 300)")
    parser.add_argument("--bootstrap-samples", type=int, help="bootstrap samples of every interval (default 1000, "
                                                              "--quick 200)")
    parser.add_argument("--sttune-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of sttune's runs only (a candidate default, e.g. train.learning_rate=8e-5); "
                             "repeatable")
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
                       ("scifact_train_queries", args.scifact_train_queries),
                       ("max_reference_pairs", args.max_reference_pairs),
                       ("bootstrap_samples", args.bootstrap_samples),
                       ("sttune_settings", args.sttune_set or None)):
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
    if settings["max_reference_pairs"] is not None:
        overrides.append(f"eval.reference_max_pairs={settings['max_reference_pairs']}")
    overrides += settings["sttune_settings"]  # after the rest: a candidate default wins
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
                base, before = sttune.pop("base"), sttune.pop("before_selection")
                plain = plain_recipe(Path(sttune["run"]), spec.plain_loss, settings["epochs"], sttune["reference"])
                seeds.append({"seed": seed, "base": base, "plain": with_drops(plain, base),
                              "sttune": with_drops(sttune, base), "before_selection": with_drops(before, base),
                              "commit": commit})
                # Every finished seed is on disk at once: a stopped run loses at most the seed under way.
                (OUT / "results.json").write_text(json.dumps(
                    {"command": command, "settings": settings,
                     "results": {**results, name: {**set_result(source, seeds, spec.transfer), "partial": True}}},
                    indent=2))
                print(f"{name} seed {seed}: {sttune['metric']} base {base['value']:.4f}, sttune ({sttune['loss']}) "
                      f"{sttune['value']:.4f}, plain ({plain['loss']}) {plain['value']:.4f}; reference drops "
                      + ", ".join(f"{part} sttune {seeds[-1]['sttune']['reference'][part]['drop']:+.4f} plain "
                                  f"{seeds[-1]['plain']['reference'][part]['drop']:+.4f}"
                                  for part in seeds[-1]["sttune"]["reference"]), flush=True)
            results[name] = set_result(source, seeds, spec.transfer)
            (OUT / "results.json").write_text(json.dumps({"command": command, "settings": settings,
                                                         "results": results}, indent=2))
        stopped_during = None
    except KeyboardInterrupt:
        if seeds and stopped_during not in results:  # the seeds of the unfinished set that did finish
            results[stopped_during] = {**set_result(source, seeds, SETS[stopped_during].transfer), "partial": True}
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
