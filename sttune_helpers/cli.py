"""The ``sttune`` command: run the notebook pipeline headlessly, or open it in JupyterLab."""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .config import preset_names, resolve_config
from .core.errors import SettingError, SttuneError
from .core.reporting import show_on_console
from .rundir import STAGES, RunDirError

# Errors of the machine that the user fixes (space, permissions, a read-only or missing path).
USER_FIXABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                       errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG}


def text_argument(text: str) -> str:
    """An option's value that must say something: empty text (or only spaces) would silently mean
    the option's default (``--name ''`` a generated name, ``--from ''`` every stage)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (or only spaces): give a value, or leave the option out")
    return text


def path_argument(text: str) -> Path:
    """A path option's value; empty text would silently be the current folder (Path('') is '.')."""
    return Path(text_argument(text))


def override_argument(text: str) -> str:
    """One -p KEY=VALUE; the value may be empty (null), the key may not."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} must look like KEY=VALUE, e.g. -p train.learning_rate=3e-5")
    return text


def _stage_list() -> str:
    return ", ".join(f"{i:02d} {s}" for i, s in enumerate(STAGES, start=1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sttune",
        description="Fine-tune Sentence Transformers through five parameterized notebooks "
                    "(data prep, loss selection, training, evaluation, embedding maps).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run", help="run the notebooks with papermill into runs/<name>/",
        description="Execute the stage notebooks in order with papermill into RUNS_DIR/NAME/, which then holds "
                    "config.yaml, manifest.json, data/, plan.json, model/, eval/, viz/ and the executed notebooks. "
                    f"Stages: {_stage_list()}.",
        epilog="examples:\n  sttune run --preset smoke\n  sttune run --preset default -p train.learning_rate=3e-5\n"
               "  sttune run --config runs/a/config.yaml --name b\n  sttune run --name b --from evaluation",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = run.add_mutually_exclusive_group()
    source.add_argument("--preset", type=text_argument,
                        help=f"a shipped preset: {', '.join(preset_names())} (default: default)")
    source.add_argument("--config", type=path_argument, help="a RunConfig YAML file, e.g. a run's own config.yaml")
    run.add_argument("--name", type=text_argument, help="run name (letters, digits, . _ -); default: PRESET-DATE-TIME")
    run.add_argument("--runs-dir", type=path_argument, default=Path("runs"),
                     help="where runs are kept (default: ./runs)")
    run.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     type=override_argument,
                     help="override a setting by its dotted key, e.g. -p train.learning_rate=3e-5 (repeatable)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--from", dest="from_stage", metavar="STAGE", type=text_argument,
                       help="continue an existing run from this stage (name or number)")
    where.add_argument("--only", dest="only_stage", metavar="STAGE", type=text_argument,
                       help="run just this stage of an existing run")
    where.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its first unfinished stage; training continues from "
                            "its last checkpoint")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    run.add_argument("--log-output", action="store_true", help="stream the notebooks' output while they run")
    run.add_argument("--kernel-per-stage", action="store_true",
                     help="start a fresh kernel for each notebook instead of one shared kernel whose variables are "
                          "cleared between stages (slower: each kernel imports torch again)")

    train = commands.add_parser(
        "train", help="(re)run the training stage of an existing run, in one or more processes",
        description="Run the training stage of RUNS_DIR/NAME (after data_prep and loss_selection completed) "
                    "without papermill, marking it in the manifest as the notebook does; the later stages become "
                    "pending. With --nproc N > 1 training runs data-parallel under torchrun: one process per GPU "
                    "(nccl), or N CPU processes (gloo); train.batch_size is per process.",
        epilog="examples:\n  sttune train --name a --nproc 2\n  sttune train --name a -p train.batch_size=64 --resume",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--name", required=True, type=text_argument, help="the run to train")
    train.add_argument("--runs-dir", type=path_argument, default=Path("runs"),
                       help="where runs are kept (default: ./runs)")
    train.add_argument("--nproc", type=int, metavar="N",
                       help="processes for data-parallel training (sets train.nproc; default: the run's config)")
    train.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       type=override_argument,
                       help="override a setting by its dotted key, written to the run's config.yaml (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in checkpoints/")

    sweep = commands.add_parser(
        "sweep", help="search hyperparameters with Optuna over the config's sweep.space",
        description="Run an Optuna study over the settings named in the config's sweep.space: each trial is a run "
                    "directory RUNS_DIR/NAME/trial-NNN/ (data, loss selection and training, pruned early when its "
                    "validation metric falls below the median of earlier trials), scored by its best validation "
                    "metric. The study lives in --storage (default sqlite:///RUNS_DIR/NAME/study.db); machines given "
                    "the same SQLAlchemy URL and --name work on one study. RUNS_DIR/NAME/sweep.json has the best "
                    "trial and every trial.",
        epilog="examples:\n  sttune sweep --config sweep.yaml --trials 20\n"
               "  sttune sweep --preset smoke --trials 3 -p 'sweep.space={train.learning_rate: "
               "{low: 1.0e-5, high: 1.0e-4, log: true}}'\n"
               "  sttune sweep --config sweep.yaml --name lr --storage postgresql://user@host/optuna",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep_source = sweep.add_mutually_exclusive_group()
    sweep_source.add_argument("--preset", type=text_argument,
                              help=f"a shipped preset: {', '.join(preset_names())} (default: default)")
    sweep_source.add_argument("--config", type=path_argument, help="a RunConfig YAML file with a sweep section")
    sweep.add_argument("--name", type=text_argument,
                       help="the sweep's folder in RUNS_DIR and its study name (default: sweep.study_name, "
                            "else sweep-DATE-TIME)")
    sweep.add_argument("--runs-dir", type=path_argument, default=Path("runs"),
                       help="where runs are kept (default: ./runs)")
    sweep.add_argument("--trials", type=int, metavar="N", help="trials to run here (default: sweep.trials)")
    sweep.add_argument("--storage", metavar="URL", type=text_argument,
                       help="an SQLAlchemy URL (default: sweep.storage, else SQLite in the sweep's folder)")
    sweep.add_argument("-p", "--param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       type=override_argument,
                       help="override a setting by its dotted key, e.g. -p sweep.trials=10 (repeatable)")

    timing = commands.add_parser(
        "time", help="print where a run's time went, and the settings that cut the largest parts",
        description="Print a run's time by part: data, loss selection, training steps, validation during "
                    "training, checkpoint saving, the choice of checkpoint and model selection after training, "
                    "evaluation, viz, and papermill's and the kernel's overhead (a stage's wall time minus its own "
                    "work), each with its share of the run, from RUN's manifest.json and training.json. `sttune run` "
                    "prints the same at its end and writes it to RUN/time_report.json.",
        epilog="examples:\n  sttune time runs/smoke-20250101-120000\n  sttune time smoke-20250101-120000 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.add_argument("run", type=text_argument, help="a run directory, or a run's name in --runs-dir")
    timing.add_argument("--runs-dir", type=path_argument, default=Path("runs"),
                        help="where runs are kept (default: ./runs)")
    timing.add_argument("--json", action="store_true", help="print the report as JSON, as in time_report.json")

    lab = commands.add_parser("lab", help="open the notebooks in JupyterLab",
                              description="Start JupyterLab on the stage notebooks with this environment's kernel. "
                                          "Extra arguments go to `jupyter lab` (e.g. --port 8899 --no-browser).")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER, help="arguments for jupyter lab")

    commands.add_parser("presets", help="list the shipped presets", description="List the shipped presets.")

    data = commands.add_parser("data", help="check a data set before a run",
                               description="Work with data outside a run.")
    data_commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    inspect = data_commands.add_parser(
        "inspect", help="print the detected shape, counts and problems of a data source",
        description="Load a data source as the data stage would (a CSV/TSV/JSONL/Parquet file, a folder of split "
                    "files, a folder saved with datasets' save_to_disk, a BEIR folder, or embedded:NAME) and print "
                    "the detected task shape and why, counts, labels or score range, duplicates, cross-split "
                    "overlap, and every problem with its file, row and column. Exits 1 when the data cannot be "
                    "used as it is.",
        epilog="examples:\n  sttune data inspect pairs.csv\n  sttune data inspect faq.tsv --map question=anchor "
               "--map answer=positive\n  sttune data inspect snli.tsv --shape pair_class",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    inspect.add_argument("path", type=text_argument, help="data source")
    inspect.add_argument("--shape", default="auto", type=text_argument, help="task shape (default: detect it)")
    inspect.add_argument("--map", dest="mapping", action="append", default=[], metavar="USER_COL=CANONICAL",
                         help="map a column to a canonical one, e.g. --map question=anchor (repeatable)")
    inspect.add_argument("--labels", type=text_argument,
                         help="the declared label set of pair_class data, comma-separated")
    return parser


def command_data_inspect(args: argparse.Namespace) -> int:
    from .data import inspect_data
    from .shapes import SHAPES

    if args.shape not in ("auto", *SHAPES):
        raise SettingError(f"--shape must be auto or one of {', '.join(SHAPES)}, got {args.shape!r}")
    mapping = {}
    for item in args.mapping:
        user, sep, canonical = item.partition("=")
        if not sep or not user or not canonical:
            raise SettingError(f"--map {item!r} must look like user_column=canonical_column, e.g. question=anchor")
        mapping[user] = canonical
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    inspection = inspect_data(args.path, shape=args.shape, columns=mapping, labels=labels)
    print(inspection.render())
    return 0 if inspection.usable else 1


def command_resume(args: argparse.Namespace) -> int:
    from .runner.pipeline import first_unfinished_stage, prepare_run_dir, run_stages

    if not args.name:
        raise RunDirError("--resume continues an existing run: name it with --name")
    if args.config or args.preset:
        raise RunDirError("--resume keeps the run's own config.yaml; drop --preset/--config")
    run = prepare_run_dir(args.runs_dir, args.name, None, continuing=True, overwrite=False)
    first = first_unfinished_stage(run)
    if first is None:
        print(f"run {args.name}: every stage has completed; nothing to resume")
        return 0
    from .runner.pipeline import preflight

    preflight(run.load_config(), STAGES[STAGES.index(first):])
    print(f"run {args.name}: resuming at stage {first!r}")
    started = time.perf_counter()
    results = run_stages(run, STAGES[STAGES.index(first):], log_output=args.log_output,
                         shared_kernel=not args.kernel_per_stage, parameters={"resume": True})
    return report_results(args.name, run, results, time.perf_counter() - started)


def command_run(args: argparse.Namespace) -> int:
    from .runner.pipeline import default_run_name, prepare_run_dir, run_stages, select_stages

    if args.resume:
        return command_resume(args)
    stages = select_stages(args.from_stage, args.only_stage)
    if args.overwrite and stages[0] != STAGES[0]:
        raise RunDirError(f"--overwrite starts the run again from {STAGES[0]!r}, and --from/--only {stages[0]!r} "
                          "continues it: pass one of them")
    # --only data_prep may start a new run (or, with --overwrite, replace one); every other --only /
    # --from continues an existing one.
    continuing = stages[0] != STAGES[0] or (bool(args.only_stage) and bool(args.name) and not args.overwrite
                                              and (args.runs_dir / args.name / "config.yaml").is_file())
    name = args.name or (None if continuing else default_run_name(args.preset or "default"))
    if name is None:
        raise RunDirError("--from and --only continue an existing run: name it with --name")

    if continuing and not (args.config or args.preset):
        # Keep the run's own config; overrides still apply and are written back.
        config = None
        if args.overrides:
            from .config import load_config
            config = load_config(args.runs_dir / name / "config.yaml").with_overrides(args.overrides)
    else:
        config = resolve_config(args.preset or "default", args.config, args.overrides)
    from .runner.pipeline import preflight

    existing_config = args.runs_dir / name / "config.yaml"
    if config is not None or (continuing and existing_config.is_file()):
        # A missing model or data source stops here, before a run directory or a kernel exists.
        from .config import load_config as load_config_file

        preflight(config if config is not None else load_config_file(existing_config), stages)
    run = prepare_run_dir(args.runs_dir, name, config, continuing, args.overwrite)
    print(f"run {name}: {run.root}")
    started = time.perf_counter()
    results = run_stages(run, stages, log_output=args.log_output, shared_kernel=not args.kernel_per_stage)
    return report_results(name, run, results, time.perf_counter() - started)


def report_results(name: str, run, results, total: float) -> int:
    """Print how the run went, then where its time went (also written to RUN/time_report.json); the exit code."""
    from .runner.time_report import write_time_report

    if results and results[-1].status == "failed":
        print(f"run {name} stopped: stage {results[-1].stage!r} failed after {total:.1f} s "
              f"(manifest: {run.manifest_path})", file=sys.stderr)
        print(write_time_report(run))
        return 1
    print(f"run {name} completed in {total:.1f} s: " + ", ".join(f"{r.stage} {r.seconds:.0f} s" for r in results))
    if run.metrics_path.is_file():
        from .evaluation import metrics_table

        print(metrics_table(json.loads(run.metrics_path.read_text())).to_string(index=False))
    print(write_time_report(run))
    return 0


def command_time(args: argparse.Namespace) -> int:
    from .rundir import RunDir
    from .runner.time_report import format_time_report, report_dict, time_report, untimed_stages

    folder = Path(args.run)
    if not (folder / "manifest.json").is_file() and (args.runs_dir / args.run / "manifest.json").is_file():
        folder = args.runs_dir / args.run
    run = RunDir(folder.resolve())
    rows = time_report(run)
    print(json.dumps(report_dict(run, rows), indent=2) if args.json else format_time_report(rows, untimed_stages(run)))
    return 0


def command_train(args: argparse.Namespace) -> int:
    from .runner.pipeline import prepare_run_dir
    from .runner.progress_view import ProgressView, showing_progress
    from .stages import training

    if args.nproc is not None and args.nproc < 1:
        raise SettingError(f"--nproc must be at least 1, got {args.nproc}")
    where = f"--name {args.name} --runs-dir {args.runs_dir}"
    # `sttune train` has no --from/--only: name the commands that create the run and its first stages.
    existing = prepare_run_dir(
        args.runs_dir, args.name, None, continuing=True, overwrite=False,
        missing_hint=f"create it and run the stages before training with `sttune run {where} --only data_prep` "
                     f"then `sttune run {where} --only loss_selection`, or run every stage with `sttune run {where}`")
    overrides = [*args.overrides, *([f"train.nproc={args.nproc}"] if args.nproc is not None else [])]
    run, config, _ = training.start(existing.root, overrides=overrides)
    print(f"run {args.name}: training in {config.train.nproc} process{'es' if config.train.nproc > 1 else ''}")
    try:
        with showing_progress(ProgressView()), run.stage(training.NAME) as recorded:
            summary = training.train(run, config, resume=args.resume)
            recorded.update(training.outcome(summary))
    except Exception as exc:  # recorded in the manifest by run.stage; an interrupt propagates
        print(f"sttune: error: training failed: {exc}", file=sys.stderr)
        return 1
    seconds = recorded["seconds"]
    processes = summary.get("world_size", 1)
    print(f"batch: {summary['per_device_batch_size']} per device x {processes} process{'es' if processes > 1 else ''} "
          f"x {summary['gradient_accumulation_steps']} accumulation = {summary['global_batch_size']} global")
    print(f"training completed in {seconds:.1f} s: {summary['global_step']} of {summary['max_steps']} steps, "
          f"best {summary['metric_for_best_model']} = {summary['best_metric']}; model in {run.model_dir} "
          f"(weights of {summary['kept_checkpoint']})\n"
          f"the later stages are pending: sttune run --name {args.name} --runs-dir {args.runs_dir} --from evaluation")
    return 0


def command_sweep(args: argparse.Namespace) -> int:
    from .runner.progress_view import ProgressView, showing_progress
    from .runner.sweep import run_sweep

    config = resolve_config(args.preset or "default", args.config, args.overrides)
    with showing_progress(ProgressView()):  # each trial's training, as `sttune train` shows it
        result = run_sweep(config, args.name, args.runs_dir, trials=args.trials, storage=args.storage)
    best = result.summary["best"]
    if best is None:
        print(f"sweep {result.root.name}: no trial has completed (states: {result.summary['states']}); "
              f"see {result.summary_path}", file=sys.stderr)
        return 1
    values = ", ".join(f"{key}={value}" for key, value in best["params"].items())
    print(f"best: trial {best['number']} with {(result.summary['metric'] or 'value').removeprefix('eval_')} "
          f"{best['value']:.4f}: {values}\n  run directory: {best['run_dir']}\n  replay: {best['replay']}\n"
          f"summary: {result.summary_path}")
    return 0


def command_lab(args: argparse.Namespace) -> int:
    from .runner.pipeline import ensure_kernel, notebooks_dir

    ensure_kernel()
    folder = notebooks_dir()
    extra = [a for a in args.lab_args if a != "--"]
    return subprocess.call([sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}", *extra],
                           env=os.environ.copy())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_on_console()
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "train":
            return command_train(args)
        if args.command == "sweep":
            return command_sweep(args)
        if args.command == "time":
            return command_time(args)
        if args.command == "lab":
            return command_lab(args)
        if args.command == "data":
            return command_data_inspect(args)
        if args.command == "presets":
            for name in preset_names():
                print(name)
            return 0
    except SttuneError as exc:  # what the user can fix; anything else is a bug and keeps its traceback
        print(f"sttune: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in USER_FIXABLE_ERRNOS:
            raise
        print(f"sttune: error: {exc}", file=sys.stderr)  # the message names the file (core.io)
        return 2
    except KeyboardInterrupt as exc:  # pipeline.StageInterrupted says which stage and how to resume
        print(f"sttune: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
