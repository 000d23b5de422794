"""The automatic recipe for a wall-clock budget (``train.budget``): short proxy runs on a seeded
subset choose the loss, the learning rate and the batch size (Optuna: TPE seeded with the run's seed,
median pruning on the validation metric), and the final training length is set from their measured
speed so that training and model selection fit what is left of the budget.

The budget counts the search (stage 02), training and model selection (stage 03); not data
preparation, evaluation or notebook start-up. Arithmetic:

    search    <= SEARCH_SHARE x budget (no trial starts that would likely overrun it)
    training  = overhead + max_steps x step time + evaluations x (validation + checkpoint save)
    selection = max(SELECTION_SHARE x budget, SELECTION_EVALUATIONS x one validation pass)
    max_steps = the most steps whose training fits SAFETY x (budget - search - selection),
                never more than train.epochs gives

The proxies train in ``RUN/auto-search/`` (removed afterwards), with model selection and
train.restore_best off and one process; the winner goes into plan.json (the loss, and the whole search
under ``"auto"``) and into the run's config.yaml (learning_rate, batch_size, max_steps), which the
training stage reads. :func:`record_budget` then writes the actual against the budget into
training.json.

It lives in ``training/`` because it trains (like bake_off.py)."""

from __future__ import annotations

import copy
import math
import random
import shutil
import time
from typing import Any, Sequence

from .. import shapes
from ..config import RunConfig, parse_budget
from ..core.hardware import pick_device
from ..core.io import atomic_write_json, read_json
from ..core.reporting import get_logger
from ..data import read_report
from ..losses import choose_loss, loss_choices, write_plan
from ..rundir import RunDir
from ..scoring import validation_metric
from .errors import EmbeddingCollapseError, TrainingDivergedError, TrainingError
from .ranks import in_worker
from .setup import plan_training
from .train import train_model

log = get_logger(__name__)

SEARCH_SHARE = 0.35  # of the budget, for the proxy runs
SELECTION_SHARE = 0.10  # of the budget, the least kept for model selection
SELECTION_EVALUATIONS = 14  # ~7 candidates (and the base), each on validation and the reference
SAFETY = 0.9  # training is planned to this fraction of what is left: the speed is an estimate
PROXY_TRAIN_ROWS = 2000
PROXY_VALIDATION_ROWS = 500  # pair data only: retrieval validation costs its corpus (train.validation_corpus_size)
PROXY_STEPS = 40
PROXY_EVALUATIONS = 4  # validation points per proxy run, where the pruner judges it
BATCH_SIZES = (16, 32, 64)
LEARNING_RATES = (5e-6, 1e-4)  # log-uniform
MAX_TRIALS = 40
PRUNER_STARTUP_TRIALS = 2  # complete trials before the median pruner judges one
SEARCH_DIR = "auto-search"
# The settings the search chooses besides the loss (max_steps follows from the budget): a shape's
# recipe leaves them to it (shape_recipe.py).
SEARCHED_KEYS = ("train.learning_rate", "train.batch_size")
# A trial that ends with these is a result (recorded as failed), not a bug.
TRIAL_ERRORS = (TrainingDivergedError, EmbeddingCollapseError)


def _proxy_reporter(trial, metric: str, at_steps: set[int]):
    """A TrainerCallback that has the trainer validate at ``at_steps`` only (the same steps in every
    trial, whatever its batch size) and save once, at the last of them; it reports each value to the
    Optuna trial, stops the trial when the pruner says so, and times each validation and save."""
    import optuna
    from transformers import TrainerCallback

    class ProxyReporter(TrainerCallback):
        def __init__(self):
            self.values: list[tuple[int, float]] = []
            self.eval_seconds: list[float] = []
            self.save_seconds: list[float] = []
            self._mark = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            # After the trainer's own schedule (every eval_steps, which a small epoch makes frequent):
            # validation at the fixed steps only, and one checkpoint save, at the end, to time it.
            control.should_evaluate = state.global_step in at_steps
            control.should_save = state.global_step == max(at_steps)
            self._mark = time.perf_counter()

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            now = time.perf_counter()
            self.eval_seconds.append(now - self._mark)
            self._mark = now
            value = (metrics or {}).get(metric)
            if state.global_step not in at_steps or value is None or not math.isfinite(value):
                return
            self.values.append((state.global_step, float(value)))
            trial.report(float(value), step=state.global_step)
            if trial.should_prune():
                trial.set_user_attr("pruned_at", state.global_step)
                raise optuna.TrialPruned(f"pruned at step {state.global_step}: {metric.removeprefix('eval_')} = "
                                         f"{value:.4f} is behind the median of earlier trials there")

        def on_save(self, args, state, control, **kwargs):
            now = time.perf_counter()
            self.save_seconds.append(now - self._mark)
            self._mark = now

    return ProxyReporter()


def _sample_lines(path, rows: int | None, seed: int) -> tuple[int, int]:
    """Keep a seeded sample of ``rows`` lines of a JSONL file in their order; (kept, total)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if rows is None or len(lines) <= rows:
        return len(lines), len(lines)
    keep = sorted(random.Random(seed).sample(range(len(lines)), rows))
    path.write_text("".join(lines[i] for i in keep), encoding="utf-8")
    return rows, len(lines)


def batch_sizes(n_rows: int, configured: int) -> list[int]:
    """The batch sizes of BATCH_SIZES the proxy subset holds a full batch of (the configured one
    where none fits)."""
    fitting = [b for b in BATCH_SIZES if b <= n_rows]
    return fitting or [max(1, min(configured, n_rows))]


def _trial_estimate(records: list[dict[str, Any]], batch: int, steps: int) -> float | None:
    """Seconds a proxy run of ``batch`` will likely take: the slowest rate (seconds per step, start-up
    included) of earlier runs at that batch, else of the others scaled up by the batch ratio."""
    rates = [(r["batch_size"], r["seconds"] / max(1, r["steps"])) for r in records if r["steps"]]
    same = [rate for b, rate in rates if b == batch]
    if same:
        return steps * max(same)
    if rates:
        return steps * max(rate * max(1.0, batch / b) for b, rate in rates)
    return None


def final_length(config: RunConfig, n_train: int, device: str, shape: str, loss_name: str, timing: dict[str, float],
                 available_s: float) -> dict[str, Any]:
    """The most steps (at most what train.epochs gives) whose predicted training time fits
    ``available_s``, from the winner's measured ``timing`` (step_s, eval_s, save_s, overhead_s)."""
    trial = copy.deepcopy(config)
    trial.train.max_steps = None
    setup = plan_training(trial, n_train, device, shape=shape, loss_name=loss_name, world_size=1)
    default_steps = max(1, math.ceil(setup.steps_per_epoch * config.train.epochs))
    restore_evaluations = 2 if config.train.restore_best == "if_significant" else 0

    def predicted(steps: int) -> tuple[float, int]:
        trial.train.max_steps = steps
        eval_steps = plan_training(trial, n_train, device, shape=shape, loss_name=loss_name, world_size=1).eval_steps
        evaluations = steps // eval_steps
        seconds = (timing["overhead_s"] + steps * timing["step_s"] + evaluations * (timing["eval_s"] + timing["save_s"])
                   + restore_evaluations * timing["eval_s"])
        return seconds, evaluations

    low, high = 0, default_steps  # the most steps that fit, by bisection (the prediction grows with steps)
    while low < high:
        middle = (low + high + 1) // 2
        if predicted(middle)[0] <= available_s:
            low = middle
        else:
            high = middle - 1
    fits = low
    max_steps = max(1, fits)
    seconds, evaluations = predicted(max_steps)
    return {"default_steps": default_steps, "fits_steps": fits, "max_steps": max_steps,
            "steps_per_epoch": setup.steps_per_epoch, "evaluations": evaluations, "train_s": round(seconds, 1)}


def auto_recipe(run: RunDir, config: RunConfig, *, search_share: float = SEARCH_SHARE,
                selection_share: float = SELECTION_SHARE, proxy_steps: int = PROXY_STEPS,
                proxy_evaluations: int = PROXY_EVALUATIONS, proxy_train_rows: int | None = PROXY_TRAIN_ROWS,
                proxy_validation_rows: int | None = PROXY_VALIDATION_ROWS, max_trials: int = MAX_TRIALS,
                enqueue: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Search with proxy runs within ``search_share`` of train.budget, write the winner into
    plan.json and the run's config.yaml (and ``config``, in place), and return the new plan.

    ``enqueue``: the first trials' parameters ({"loss", "learning_rate", "batch_size"}, all or
    some); by default one trial of the plan's loss at the configured learning rate and batch size."""
    import optuna
    import torch
    from optuna.trial import TrialState

    trial_errors = (*TRIAL_ERRORS, torch.OutOfMemoryError)  # a batch too large for the GPU is a result too
    budget_s = parse_budget(config.train.budget)
    search_budget_s = search_share * budget_s
    plan = read_json(run.plan_path)
    shape = plan.get("train_shape", config.data.shape)
    report = read_report(run)
    data_shape = report["shape"]
    metric, greater_is_better = validation_metric(data_shape, config.train.early_stopping_metric)
    short_metric = metric.removeprefix("eval_")
    if config.loss.name:
        losses, why_losses = [config.loss.name], "loss.name is set"
    elif metric == "eval_loss":
        losses, why_losses = [plan["loss"]["name"]], (f"{data_shape} data is judged by each loss's own validation "
                                                      "loss, which differs from loss to loss")
    else:
        losses, why_losses = [c.name for c in loss_choices(shape)], f"the {shape} candidates"
    if config.train.nproc > 1:
        log.warning(f"the auto recipe measures speed in one process; training uses train.nproc={config.train.nproc}, "
                    "so its time is a rougher estimate")

    search = RunDir(run.root / SEARCH_DIR)
    if search.root.exists():
        shutil.rmtree(search.root)
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    timings: dict[int, dict[str, float]] = {}
    optuna_level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the recipe prints its own lines
    try:
        shutil.copytree(run.data_dir, search.data_dir)
        n_proxy, n_train = _sample_lines(search.split_path("train"), proxy_train_rows, config.seed)
        n_proxy_validation, n_validation = None, None  # retrieval: its cost is the corpus, not the queries
        if not shapes.get(data_shape).uses_corpus:
            n_proxy_validation, n_validation = _sample_lines(search.split_path("validation"), proxy_validation_rows,
                                                             config.seed)
        validation_scale = (n_validation / n_proxy_validation) if n_proxy_validation else 1.0
        batches = batch_sizes(n_proxy, config.train.batch_size)
        at_steps = {max(1, round(proxy_steps * k / proxy_evaluations)) for k in range(1, proxy_evaluations + 1)}
        log.info(f"auto recipe: budget {config.train.budget} ({budget_s:.0f} s); {search_share:.0%} "
                 f"({search_budget_s:.0f} s) for proxy runs of {proxy_steps} steps on {n_proxy:,} of {n_train:,} "
                 f"training rows over losses {losses} ({why_losses}), learning rate {LEARNING_RATES[0]:g}.."
                 f"{LEARNING_RATES[1]:g} and batch {batches}, judged by validation {short_metric}")
        study = optuna.create_study(
            direction="maximize" if greater_is_better else "minimize",
            sampler=optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=5),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=0))
        first = enqueue if enqueue is not None else [{
            "loss": plan["loss"]["name"] if plan["loss"]["name"] in losses else losses[0],
            "learning_rate": min(max(config.train.learning_rate, LEARNING_RATES[0]), LEARNING_RATES[1]),
            "batch_size": min(batches, key=lambda b: abs(b - config.train.batch_size))}]
        for params in first:
            study.enqueue_trial(dict(params))
        for _ in range(max_trials):
            trial = study.ask()
            loss = trial.suggest_categorical("loss", losses)
            learning_rate = trial.suggest_float("learning_rate", *LEARNING_RATES, log=True)
            batch = trial.suggest_categorical("batch_size", batches)
            elapsed = time.perf_counter() - started
            estimate = _trial_estimate(records, batch, proxy_steps)
            if estimate is not None and elapsed + estimate > search_budget_s:
                study.tell(trial, state=TrialState.FAIL)
                log.info(f"auto recipe: search stops after {len(records)} proxy runs and {elapsed:.0f} s: the next "
                         f"(batch {batch}, ~{estimate:.0f} s) would overrun the search's {search_budget_s:.0f} s")
                break
            record = {"trial": trial.number, "loss": loss, "learning_rate": learning_rate, "batch_size": batch,
                      "steps": 0, short_metric: None, "state": "complete", "seconds": None}
            trial_started = time.perf_counter()
            reporter = _proxy_reporter(trial, metric, at_steps)
            trial_config = _proxy_config(config, loss, learning_rate, batch, proxy_steps)
            try:
                _clear(search)
                write_plan(search, trial_config, n_train=n_proxy, shape=shape)
                summary = train_model(search, trial_config, callbacks=[reporter])
            except optuna.TrialPruned:
                record["state"] = "pruned"
            except trial_errors as exc:
                record["state"], record["error"] = "failed", str(exc).split(". ")[0]
            record["seconds"] = round(time.perf_counter() - trial_started, 2)
            record["steps"] = reporter.values[-1][0] if reporter.values else 0
            if reporter.values:
                record[short_metric] = reporter.values[-1][1]
            record["values"] = [list(point) for point in reporter.values]  # [step, value] per validation point
            if record["state"] == "complete" and record["steps"] == proxy_steps:
                study.tell(trial, record[short_metric])
                timings[trial.number] = _timing(summary, reporter, record["seconds"], validation_scale)
                record["steps"] = summary["global_step"]
            elif record["state"] == "pruned":
                study.tell(trial, state=TrialState.PRUNED)
            else:
                record["state"] = "failed" if record["state"] != "complete" else "incomplete"
                study.tell(trial, state=TrialState.FAIL)
            records.append(record)
            log.info(_trial_line(record, short_metric))
        search_s = round(time.perf_counter() - started, 2)
    finally:
        optuna.logging.set_verbosity(optuna_level)
        shutil.rmtree(search.root, ignore_errors=True)

    complete = [r for r in records if r["trial"] in timings]
    if not complete:
        raise TrainingError(f"auto recipe: none of {len(records)} proxy runs completed "
                            f"({', '.join(r['state'] for r in records) or 'no time for one'}); "
                            f"try a larger train.budget or set train.learning_rate and train.batch_size yourself")
    best = study.best_trial
    winner = next(r for r in complete if r["trial"] == best.number)
    timing = _merge_timings([timings[r["trial"]] for r in complete if r["batch_size"] == winner["batch_size"]])

    selection_s = 0.0
    if config.eval.select_model:
        selection_s = max(selection_share * budget_s, SELECTION_EVALUATIONS * timing["eval_s"])
    available_s = SAFETY * (budget_s - search_s - selection_s)
    final_config = copy.deepcopy(config)
    final_config.train.learning_rate = winner["learning_rate"]
    final_config.train.batch_size = winner["batch_size"]
    length = final_length(final_config, plan["n_train"], pick_device(config.model.device), data_shape, winner["loss"],
                          timing, available_s)
    if length["fits_steps"] < 1:
        log.warning(f"auto recipe: the budget leaves {available_s:.0f} s for training, less than one step's start-up "
                    f"({timing['overhead_s']:.0f} s); training takes a single step")
    choice = {"trial": winner["trial"], "loss": winner["loss"], "learning_rate": winner["learning_rate"],
              "batch_size": winner["batch_size"], "max_steps": length["max_steps"]}
    planned_s = round(search_s + length["train_s"] + selection_s, 1)
    capped = length["max_steps"] == length["default_steps"]
    reason = (f"chose {winner['loss']}, learning rate {winner['learning_rate']:.2g}, batch {winner['batch_size']}: "
              f"best {short_metric} {winner[short_metric]:.4f} of {len(complete)} complete proxy runs "
              f"({len(records)} tried); max_steps {length['max_steps']} "
              + (f"(train.epochs={config.train.epochs:g} gives {length['default_steps']}, which fits) " if capped else
                 f"(of {length['default_steps']} for train.epochs={config.train.epochs:g}) ")
              + f"at {timing['step_s']:.3f} s/step: search {search_s:.0f} s + training ~{length['train_s']:.0f} s + "
              f"selection ~{selection_s:.0f} s = {planned_s:.0f} s of {budget_s:.0f} s")

    # The winner: the loss through the plan, the hyperparameters through config.yaml (what stage 03 reads).
    for target in (config, final_config):
        target.train.learning_rate, target.train.batch_size = winner["learning_rate"], winner["batch_size"]
        target.train.max_steps = length["max_steps"]
    final_config.loss.name = winner["loss"]
    choose_loss(final_config, shape)  # validates before the plan is rewritten
    saved = run.load_config()  # as written (data.shape may be "auto"), not as this stage sees it
    saved.train.learning_rate, saved.train.batch_size = winner["learning_rate"], winner["batch_size"]
    saved.train.max_steps = length["max_steps"]
    run.save_config(saved)
    new_plan = write_plan(run, final_config, n_train=plan["n_train"], shape=shape, recipe=plan.get("recipe"))
    new_plan["loss"]["chosen_by"] = (f"auto recipe: best validation {short_metric.removeprefix('validation_')} "
                                     f"({winner[short_metric]:.4f}) of {len(complete)} proxy runs of {proxy_steps} "
                                     f"steps within train.budget={config.train.budget}")
    new_plan["auto"] = {
        "budget": config.train.budget, "budget_s": budget_s, "search_share": search_share,
        "search_budget_s": round(search_budget_s, 1), "search_s": search_s,
        "proxy": {"train_rows": n_proxy, "validation_rows": n_proxy_validation, "steps": proxy_steps,
                  "evaluated_at": sorted(at_steps), "losses": losses, "learning_rates": list(LEARNING_RATES),
                  "batch_sizes": batches},
        "metric": short_metric, "greater_is_better": greater_is_better,
        "trials": records, "choice": choice,
        "estimate": {**{k: round(v, 3) for k, v in timing.items()}, **length, "selection_s": round(selection_s, 1),
                     "available_s": round(available_s, 1), "safety": SAFETY},
        "planned_s": planned_s, "reason": reason}
    atomic_write_json(run.plan_path, new_plan)
    log.info("auto recipe, the proxy runs:\n" + trials_table(new_plan).to_string(index=False))
    log.info(f"auto recipe: {reason}")
    return new_plan


def _proxy_config(config: RunConfig, loss: str, learning_rate: float, batch: int, steps: int) -> RunConfig:
    """The in-memory config of one proxy run: ``steps`` steps, no early stopping, no selection."""
    trial = copy.deepcopy(config)
    if loss != config.loss.name:
        trial.loss.params = {}
    trial.loss.name = loss
    trial.train.learning_rate = learning_rate
    trial.train.batch_size = batch
    trial.train.max_steps = steps
    trial.train.budget = None
    trial.train.nproc = 1
    trial.train.nnodes = 1
    trial.train.early_stopping_patience = None
    trial.train.evaluations_per_epoch = 1  # the reporter asks for the validation points
    trial.train.restore_best = "never"
    trial.train.save_total_limit = 1
    trial.eval.select_model = False
    return trial


def _clear(search: RunDir) -> None:
    """The last proxy run's outputs away (the data stays)."""
    for folder in (search.checkpoints_dir, search.model_dir, search.tensorboard_dir):
        shutil.rmtree(folder, ignore_errors=True)


def _timing(summary: dict[str, Any], reporter, wall_s: float, validation_scale: float) -> dict[str, float]:
    """Seconds per training step, per full validation pass and per checkpoint save, and the start-up
    (model loading, data) of one run, from a complete proxy run."""
    evals, saves = sum(reporter.eval_seconds), sum(reporter.save_seconds)
    steps = max(1, summary["global_step"])
    return {"step_s": max(0.0, summary["train_seconds"] - evals - saves) / steps,
            "eval_s": validation_scale * evals / max(1, len(reporter.eval_seconds)),
            "save_s": saves / max(1, len(reporter.save_seconds)),
            "overhead_s": max(0.0, wall_s - summary["train_seconds"])}


def _merge_timings(timings: list[dict[str, float]]) -> dict[str, float]:
    """The slowest of each figure (the conservative estimate)."""
    return {key: max(t[key] for t in timings) for key in timings[0]}


def _trial_line(record: dict[str, Any], metric: str) -> str:
    value = record[metric]
    shown = f"{value:.4f}" if value is not None else "-"
    state = {"complete": "", "pruned": f" pruned at step {record['steps']}"}.get(
        record["state"], f" {record['state']}" + (f": {record['error']}" if record.get("error") else ""))
    return (f"proxy {record['trial']}: {record['loss']}, lr {record['learning_rate']:.2g}, batch {record['batch_size']}"
            f" -> {metric} {shown}{state} ({record['seconds']:.1f} s)")


def trials_table(plan: dict[str, Any]):
    """The auto recipe's proxy runs as a table (loss, lr, batch, steps, validation value, pruned,
    seconds, chosen), in the order they ran; None where the plan has no search."""
    import pandas as pd

    auto = plan.get("auto")
    if not auto:
        return None
    metric, choice = auto["metric"], auto["choice"]
    rows = [{"trial": r["trial"], "loss": r["loss"], "learning_rate": r["learning_rate"], "batch_size": r["batch_size"],
             "steps": r["steps"], metric: r[metric], "pruned": r["state"] == "pruned", "state": r["state"],
             "seconds": r["seconds"],
             "chosen": r["trial"] == choice["trial"]}
            for r in auto["trials"]]
    return pd.DataFrame(rows)


def record_budget(run: RunDir, summary: dict[str, Any], stage_s: float) -> dict[str, Any] | None:
    """After training: the actual seconds against the budget, written into training.json under
    ``"budget"`` (and into ``summary``); None where plan.json has no auto search."""
    if in_worker():  # each rank of a data-parallel run: the launching process records it
        return None
    auto = read_json(run.plan_path).get("auto") if run.plan_path.is_file() else None
    if not auto:
        return None
    selection_s = (summary.get("selection") or {}).get("seconds") or 0.0
    total_s = round(auto["search_s"] + stage_s, 1)
    budget = {"budget": auto["budget"], "budget_s": auto["budget_s"], "search_s": auto["search_s"],
              "train_s": summary["train_seconds"], "selection_s": selection_s, "stage_s": round(stage_s, 1),
              "total_s": total_s, "planned_s": auto["planned_s"], "within": total_s <= auto["budget_s"]}
    summary["budget"] = budget
    if run.training_summary_path.is_file():
        written = read_json(run.training_summary_path)
        written["budget"] = budget
        atomic_write_json(run.training_summary_path, written)
    (log.info if budget["within"] else log.warning)(
        f"budget {auto['budget']}: search {auto['search_s']:.0f} s + training stage {stage_s:.0f} s (training "
        f"{summary['train_seconds']:.0f} s, selection {selection_s:.0f} s) = {total_s:.0f} s "
        f"of {auto['budget_s']:.0f} s"
        + ("" if budget["within"] else ": over budget"))
    return budget
