"""Hyperparameter sweeps with Optuna over the space the config declares (``sweep.space``).

``run_sweep`` creates (or joins) an Optuna study in a storage (SQLite in the sweep's folder by
default; a journal file, ``journal:PATH``, or any SQLAlchemy URL, so that several machines given one
storage and one study name share the study: trial numbers, and so trial folders, are the storage's
to hand out) and runs trials. Each trial is a run directory ``RUNS_DIR/<sweep>/trial-NNN/`` under the
run-directory contract: its config.yaml is the base config with the trial's sampled values, so
``sttune run --config RUNS_DIR/<sweep>/trial-NNN/config.yaml`` replays it, and
``sttune run --runs-dir RUNS_DIR/<sweep> --name trial-NNN --from evaluation`` evaluates it.

A trial runs the data, loss-selection and training stages in this process, through the same
calls notebooks 01-03 make, rather than executing the notebooks with papermill: the pruning
callback has to sit inside the training loop to stop a trial between two evaluations, and the
model libraries are imported once per sweep instead of once per trial. The objective is the best
validation metric of the trial's training (training.json's ``best_metric``). When the space holds
no data, model or seed key, the data is prepared once per sweep and hard-linked into each trial.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState
from transformers import TrainerCallback

from .. import data, training
from ..config import SWEEP_SPACE_EXAMPLE, ConfigError, RunConfig, SearchParam, load_config
from ..core.errors import SettingError, SttuneError
from ..core.io import atomic_write_json
from ..core.reporting import get_logger
from ..rundir import RunDir, check_run_name
from ..scoring import validation_metric
from ..stages import data_prep, loss_selection
from ..stages import training as training_stage
from .pipeline import default_run_name, prepare_run_dir

log = get_logger(__name__)
SUMMARY_FILE = "sweep.json"
# A journal storage: "journal:PATH", or a path with one of these endings.
JOURNAL_PREFIX = "journal:"
JOURNAL_SUFFIXES = (".log", ".journal")
SHARED_DATA_RUN = "data-prep"  # the sweep's own run directory holding the data that every trial links to
# The median pruner judges a trial only once this many trials have completed.
PRUNER_STARTUP_TRIALS = 3
# Trials that end with these errors are recorded as failed and the sweep goes on (a learning rate
# that makes training diverge is a result, not a bug); any other error stops the sweep.
TRIAL_ERRORS = (training.TrainingDivergedError, training.EmbeddingCollapseError)


class SweepTrialError(SttuneError, RuntimeError):
    """A trial ended without a validation metric to optimise."""


@dataclass
class SweepResult:
    study: optuna.Study
    root: Path  # RUNS_DIR/<sweep>/: trial-NNN/, sweep.json and, by default, study.db
    summary: dict[str, Any]  # what sweep.json holds

    @property
    def summary_path(self) -> Path:
        return self.root / SUMMARY_FILE


def default_storage(root: Path) -> str:
    return f"sqlite:///{(Path(root) / 'study.db').resolve()}"


def shown_storage(url: str) -> str:
    """The storage URL without its password, for printing and for sweep.json."""
    with contextlib.suppress(Exception):
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    return url


def shown_path(path: str | Path) -> str:
    """A path relative to the working directory when it lies inside it (shorter commands)."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def data_is_shared(params: list[SearchParam]) -> bool:
    """True when no trial's data can differ: the data stage reads data.*, the seed, and model.* (the
    base model mines negatives and finds embedding synonyms)."""
    return not any(p.key == "seed" or p.key.split(".")[0] in ("data", "model") for p in params)


# --- the stages of a trial ----------------------------------------------------------------------


def link_data_stage(run: RunDir, source: RunDir) -> None:
    """The data stage of ``run`` as the files of ``source``'s completed data stage, hard-linked where
    the file system allows (safe: every data file is written by an atomic rename, never in place)."""
    source.require_completed("loss_selection")  # i.e. its data_prep has completed
    with run.stage(data_prep.NAME) as recorded:
        if run.data_dir.exists():
            shutil.rmtree(run.data_dir)

        def link_or_copy(src: str, dst: str) -> None:
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)

        shutil.copytree(source.data_dir, run.data_dir, copy_function=link_or_copy)
        recorded.update(rows=source.manifest()["stages"]["data_prep"].get("rows"), linked_from=str(source.data_dir))


class PruningReporter(TrainerCallback):
    """Reports the validation metric to the Optuna trial at each evaluation and stops the trial
    (optuna.TrialPruned) when the pruner says so.

    The step reported is the evaluation's number (1, 2, ...), not the optimiser step: evaluations
    come at the same share of an epoch (train.evaluations_per_epoch) whatever the batch size, so
    trials with different batch sizes are compared after the same amount of data."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial = trial
        self.metric = metric
        self.evaluations = 0

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(self.metric)
        if value is None or not math.isfinite(value):
            return
        self.evaluations += 1
        self.trial.report(float(value), step=self.evaluations)
        if self.trial.should_prune():
            where = {"evaluation": self.evaluations, "step": state.global_step, "value": float(value)}
            self.trial.set_user_attr("pruned_at", where)
            raise optuna.TrialPruned(f"pruned at evaluation {self.evaluations} (step {state.global_step}): "
                                     f"{self.metric.removeprefix('eval_')} = {value:.4f} is worse than the "
                                     "pruner's threshold (the median of earlier trials at that evaluation)")


def train_stage(run: RunDir, trial: optuna.Trial, metric: str, keep_checkpoints: bool = False) -> dict[str, Any]:
    """The training stage with the pruning reporter; a pruned trial's training stage is marked
    failed with the reason. Model selection is skipped: the objective is the validation metric of
    training, which selection does not change; the best trial's replay selects."""
    try:
        run, config, _ = training_stage.start(run.root)
        config.eval.select_model = False  # in memory only: the trial's config.yaml, which the replay uses, keeps it
        with run.stage(training_stage.NAME) as recorded:
            summary = training_stage.train(run, config, callbacks=[PruningReporter(trial, metric)])
            recorded.update(training_stage.outcome(summary))
        return summary
    finally:
        if not keep_checkpoints:
            shutil.rmtree(run.checkpoints_dir, ignore_errors=True)  # model/ holds the kept weights


# --- the sweep ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_libraries(quiet: bool) -> Iterator[None]:
    """Optuna's own trial lines (sttune prints its own) and the trainer's progress bars off; the
    trainer then prints one line per logging step instead, into the trial's log."""
    import transformers

    optuna_level = optuna.logging.get_verbosity()
    transformers_level = transformers.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if quiet:
        transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        optuna.logging.set_verbosity(optuna_level)
        transformers.logging.set_verbosity(transformers_level)


@contextlib.contextmanager
def _trial_output(run: RunDir, quiet: bool) -> Iterator[None]:
    """With ``quiet``, what the stages print goes into the trial's trial.log instead of the screen."""
    if not quiet:
        yield
        return
    with open(run.root / "trial.log", "a", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


def journal_path(storage: str) -> Path | None:
    """The log file of a journal storage ("journal:PATH", or a path ending in .log or .journal); None
    for an SQLAlchemy URL."""
    if storage.startswith(JOURNAL_PREFIX):
        path = storage[len(JOURNAL_PREFIX):].strip()
        if not path:
            raise ConfigError(f"the sweep's storage {storage!r} names no file: use journal:/shared/path/study.log")
        return Path(path).expanduser().resolve()
    if "://" not in storage and storage.endswith(JOURNAL_SUFFIXES):
        return Path(storage).expanduser().resolve()
    return None


def study_storage(storage: str):
    """What optuna.create_study takes for ``storage``: a JournalStorage on its log file (safe for
    several processes and machines sharing a filesystem, NFS included, where SQLite is not), or the
    SQLAlchemy URL itself. Fails before any data is prepared when it is neither."""
    path = journal_path(storage)
    if path is not None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ConfigError(f"cannot open the sweep's journal storage {path}: {exc}") from None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(storage)
    except ArgumentError:
        raise ConfigError(f"the sweep's storage {storage!r} is not an SQLAlchemy URL nor a journal file: use e.g. "
                          "journal:/shared/path/study.log (several machines), sqlite:///path/to/study.db "
                          "(one machine) or postgresql://user@host/database") from None
    return storage


@contextlib.contextmanager
def _sweep_lock(root: Path) -> Iterator[None]:
    """Workers sharing the sweep's folder take turns to join the study and prepare the shared data."""
    import fcntl

    with open(root / ".sweep.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_study(storage, study_name: str, direction: str, pruner, shown: str) -> optuna.Study:
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction=direction, pruner=pruner,
                                    load_if_exists=True)
    except Exception as exc:
        # A URL SQLAlchemy cannot parse, a database driver not installed, a server not reachable...
        storage_error = (isinstance(exc, (ImportError, ValueError, OSError, optuna.exceptions.StorageInternalError))
                         or type(exc).__module__.startswith("sqlalchemy"))
        if not storage_error:
            raise
        raise ConfigError(f"cannot open the sweep's storage {shown}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    stored = study.direction.name.lower()
    if stored != direction:
        raise ConfigError(f"study {study_name!r} in {shown} already exists and {stored}s, but "
                          f"this sweep's validation metric is to {direction}: use another study name (--name)")
    return study


def _direction(config: RunConfig, shape: str) -> tuple[str, str]:
    metric, greater_is_better = validation_metric(shape, config.train.early_stopping_metric)
    direction = "maximize" if greater_is_better else "minimize"
    if config.sweep.direction not in ("auto", direction):
        raise ConfigError(f"sweep.direction is {config.sweep.direction!r}, but the validation metric "
                          f"{metric.removeprefix('eval_')} is better when it is "
                          f"{'higher' if greater_is_better else 'lower'}: set sweep.direction: auto")
    return metric, direction


def _shared_data(config: RunConfig, root: Path, data_from: RunDir | None) -> RunDir:
    """A run directory whose completed data stage every trial links to: ``data_from`` when given, else
    RUNS_DIR/<sweep>/data-prep/, prepared here unless it already holds this config's data."""
    if data_from is not None:
        data_from.require_completed("loss_selection")
        return data_from
    shared = RunDir(root / SHARED_DATA_RUN)
    if shared.config_path.is_file() and shared.stage_status("data_prep") == "completed":
        kept = load_config(shared.config_path).to_dict()
        wanted = config.to_dict()
        if all(kept[section] == wanted[section] for section in ("data", "model", "seed")):
            return shared
    log.info(f"preparing the data once for every trial in {shown_path(shared.root)}")
    shared = prepare_run_dir(root, SHARED_DATA_RUN, config, continuing=False, overwrite=True)
    data_prep.run(shared)
    return shared


def run_sweep(config: RunConfig, name: str | None = None, runs_dir: str | Path = "runs", trials: int | None = None,
              storage: str | None = None, *, data_from: RunDir | None = None, pruner=None, sampler=None,
              quiet: bool = True) -> SweepResult:
    """Run ``trials`` trials (default ``sweep.trials``) of the Optuna study over ``config.sweep.space``.

    ``name`` is the sweep's folder in ``runs_dir`` and, unless ``sweep.study_name`` is set, the
    study's name; ``storage`` (default ``sweep.storage``, else SQLite in the folder) is any SQLAlchemy
    URL. Joining an existing study adds trials to it. ``data_from`` is a run whose data stage the
    trials reuse (notebook 03 passes its own run). ``pruner`` and ``sampler`` replace the median
    pruner (``sweep.pruning``) and the seeded TPE sampler. With ``quiet`` each trial's output goes
    into its trial.log; one line per trial is logged."""
    params = RunConfig.search_space(config.sweep.space, "sweep")
    if not params:
        raise ConfigError("the config's sweep.space is empty: name the settings to search and their ranges, "
                          f"e.g. in the config file\n{SWEEP_SPACE_EXAMPLE}\nor with -p 'sweep.space={{train."
                          "learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}}'")
    keys = {p.key for p in params}
    if "train.epochs" in keys and config.train.max_steps is not None:
        raise ConfigError(f"sweep.space varies train.epochs, but train.max_steps={config.train.max_steps} overrides "
                          "the epochs: set train.max_steps: null, or sweep train.max_steps instead")
    if config.train.nproc > 1 or config.train.nnodes > 1 or keys & {"train.nproc", "train.nnodes"}:
        raise ConfigError("sweep trials train in this process, where the pruning callback follows the validation "
                          "metric: set train.nproc: 1 and train.nnodes: 1 (and leave them out of sweep.space); "
                          "to use several machines, run a sweep worker on each with one --storage")
    if config.train.budget or "train.budget" in keys:
        raise ConfigError(f"train.budget={config.train.budget} runs the automatic recipe in each trial's stage 02, "
                          "which would replace the values the sweep tries: set train.budget: null for a sweep")
    trials = config.sweep.trials if trials is None else trials
    if trials < 1:
        raise SettingError(f"a sweep needs at least 1 trial, got {trials}")
    name = check_run_name(name or config.sweep.study_name or default_run_name("sweep"))
    root = (Path(runs_dir) / name).resolve()
    study_name = config.sweep.study_name or name
    storage = storage or config.sweep.storage or default_storage(root)
    opened_storage = study_storage(storage)
    shown = str(journal_path(storage) or shown_storage(storage))
    root.mkdir(parents=True, exist_ok=True)

    with _sweep_lock(root):
        shared = _shared_data(config, root, data_from) if data_is_shared(params) else None
    if shared is not None:
        shape = data.read_report(shared)["shape"]
    else:
        shape = config.data.shape if config.data.shape != "auto" else data.load_data(config.data).decision.shape
    metric, direction = _direction(config, shape)
    if pruner is None:
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS) if config.sweep.pruning
                  else optuna.pruners.NopPruner())

    with _quiet_libraries(quiet):
        with _sweep_lock(root):
            study = _open_study(opened_storage, study_name, direction, pruner, shown)
            # Seeded for a replayable sweep; offset by the trials already stored and the workers that
            # joined before, so that a second worker, even one starting at once, samples other values.
            joined = study.user_attrs.get("workers_joined", 0)
            study.set_user_attr("workers_joined", joined + 1)
            study.sampler = sampler or optuna.samplers.TPESampler(seed=config.seed + len(study.trials) + joined)
            study.set_user_attr("metric", metric)
            study.set_user_attr("space", config.sweep.space)
        log.info(f"sweep {name}: study {study_name!r} in {shown} ({len(study.trials)} trials so far); "
             f"{trials} trials to {direction} {metric.removeprefix('eval_')} over {', '.join(sorted(keys))}")

        def objective(trial: optuna.Trial) -> float:
            values = {p.key: p.suggest(trial) for p in params}
            trial_config = config.with_overrides(values)
            run = prepare_run_dir(root, f"trial-{trial.number:03d}", trial_config, continuing=False, overwrite=True)
            trial.set_user_attr("run_dir", str(run.root))
            trial.set_user_attr("config_path", str(run.config_path))
            try:
                with _trial_output(run, quiet):
                    if shared is not None:
                        link_data_stage(run, shared)
                    else:
                        data_prep.run(run)
                    loss_selection.run(run)
                    summary = train_stage(run, trial, metric, keep_checkpoints=config.sweep.keep_checkpoints)
            except optuna.TrialPruned:
                raise
            except Exception as exc:
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
                raise
            value = summary["best_metric"]
            trial.set_user_attr("global_step", summary["global_step"])
            if value is None or not math.isfinite(value):
                error = (f"training ended without a finite {metric.removeprefix('eval_')} (best_metric {value}): "
                         f"see {run.training_summary_path}")
                trial.set_user_attr("error", error)
                raise SweepTrialError(error)
            return float(value)

        def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
            log.info(describe_trial(trial))
            write_summary(study, root, name)

        try:
            study.optimize(objective, n_trials=trials, catch=(*TRIAL_ERRORS, SweepTrialError),
                           callbacks=[after_trial], gc_after_trial=True)
        finally:
            summary = write_summary(study, root, name)
    return SweepResult(study, root, summary)


# --- results -----------------------------------------------------------------------------------


def _value_text(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def describe_trial(trial: FrozenTrial) -> str:
    """One line: the trial's number, its values and its outcome."""
    values = ", ".join(f"{key}={_value_text(value)}" for key, value in trial.params.items())
    if trial.state == TrialState.COMPLETE:
        outcome = f"{trial.value:.4f}"
    elif trial.state == TrialState.PRUNED:
        at = trial.user_attrs.get("pruned_at") or {}
        outcome = (f"pruned at evaluation {at['evaluation']} (step {at['step']}, {at['value']:.4f})" if at
                   else "pruned")
    else:
        outcome = f"{trial.state.name.lower()}: {trial.user_attrs.get('error', 'see its trial.log')}"
    return f"trial {trial.number:3d}  {values}  ->  {outcome}"


def replay_command(config_path: str | Path, name: str) -> str:
    return f"sttune run --config {shlex.quote(shown_path(config_path))} --name {shlex.quote(name)}"


def _trial_record(trial: FrozenTrial) -> dict[str, Any]:
    seconds = ((trial.datetime_complete - trial.datetime_start).total_seconds()
               if trial.datetime_complete and trial.datetime_start else None)
    return {"number": trial.number, "state": trial.state.name.lower(), "value": trial.value,
            "params": trial.params, "run_dir": trial.user_attrs.get("run_dir"),
            "config_path": trial.user_attrs.get("config_path"), "seconds": seconds,
            "pruned_at": trial.user_attrs.get("pruned_at"), "error": trial.user_attrs.get("error")}


def write_summary(study: optuna.Study, root: Path, name: str) -> dict[str, Any]:
    """sweep.json: the best trial (its values, run directory, config and the command that replays it)
    and a record of every trial in the study."""
    trials = study.trials
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    best = None
    if completed:
        trial = study.best_trial
        best = {**_trial_record(trial), "replay": replay_command(trial.user_attrs.get("config_path", "?"),
                                                                   f"{name}-best")}
    states: dict[str, int] = {}
    for trial in trials:
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    summary = {
        "study_name": study.study_name,
        "direction": study.direction.name.lower(),
        "metric": study.user_attrs.get("metric"),
        "space": study.user_attrs.get("space"),
        "n_trials": len(trials),
        "states": states,
        "best": best,
        "trials": [_trial_record(t) for t in trials],
    }
    atomic_write_json(Path(root) / SUMMARY_FILE, summary)
    return summary


def _study(study_or_result) -> optuna.Study:
    return getattr(study_or_result, "study", study_or_result)


def trials_table(study):
    """Every trial of the study (a Study or a SweepResult): number, state, value, the sampled values,
    the evaluation a pruned trial stopped at, seconds and run directory; best first."""
    import pandas as pd

    study = _study(study)
    metric = (study.user_attrs.get("metric") or "value").removeprefix("eval_")
    rows = []
    for trial in study.trials:
        record = _trial_record(trial)
        at = record["pruned_at"] or {}
        rows.append({"trial": trial.number, "state": record["state"], metric: trial.value, **trial.params,
                     "pruned_at_evaluation": at.get("evaluation"), "seconds": record["seconds"],
                     "run_dir": shown_path(record["run_dir"]) if record["run_dir"] else None})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    ascending = study.direction == optuna.study.StudyDirection.MINIMIZE
    return table.sort_values(metric, ascending=ascending, na_position="last", ignore_index=True)


def importance_unavailable(study) -> str | None:
    """Why the parameter importance cannot be computed yet (None when it can)."""
    study = _study(study)
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    varied = {key for key in {k for t in completed for k in t.params}
              if len({repr(t.params.get(key)) for t in completed}) > 1}
    if len(completed) < 2 or not varied:
        return (f"parameter importance needs at least 2 completed trials whose values differ; study "
                f"{study.study_name!r} has {len(completed)} completed of {len(study.trials)} trials: run more trials")
    return None


def plot_importance(study, path: str | Path | None = None):
    """A bar chart of optuna.importance.get_param_importances for a Study or a SweepResult; with too
    few completed trials, prints why and returns None."""
    import matplotlib.pyplot as plt

    study = _study(study)
    reason = importance_unavailable(study)
    if reason is not None:
        log.info(reason)
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna warns that few trials make rough estimates; the title says so
        importances = optuna.importance.get_param_importances(study)
    completed = sum(t.state == TrialState.COMPLETE for t in study.trials)
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.6 + 0.45 * len(names)))
    ax.barh(names, [importances[n] for n in names], color="#2f6fde")
    ax.set_xlabel("importance (share of the variation of the objective)")
    ax.set_title(f"parameter importance over {completed} completed trials")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
