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
from .rundir import STAGES, RunDir, RunDirError

# Errors of the machine that the user fixes (space, permissions, a read-only or missing path).
USER_FIXABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                       errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG}
PLOT_FORMATS = (".png", ".svg", ".pdf")


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


def add_runs_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", type=path_argument, default=Path("runs"),
                        help="where runs are kept (default: ./runs)")


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
    add_runs_dir_option(run)
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
                    "(nccl), or N CPU processes (gloo); train.batch_size is per process. With --nnodes M > 1 the "
                    "same command runs on each of M machines sharing RUNS_DIR, each with its own --node-rank and "
                    "the same --rdzv-endpoint (node 0's host:port); only node 0 writes the manifest.",
        epilog="examples:\n  sttune train --name a --nproc 2\n  sttune train --name a -p train.batch_size=64 --resume\n"
               "  on node0: sttune train --name a --nnodes 2 --node-rank 0 --rdzv-endpoint node0:29400\n"
               "  on node1: sttune train --name a --nnodes 2 --node-rank 1 --rdzv-endpoint node0:29400",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--name", required=True, type=text_argument, help="the run to train")
    add_runs_dir_option(train)
    train.add_argument("--nproc", type=int, metavar="N",
                       help="processes for data-parallel training (sets train.nproc; default: the run's config); "
                            "per node with --nnodes")
    train.add_argument("--nnodes", type=int, metavar="M", help="machines training together (sets train.nnodes)")
    train.add_argument("--node-rank", type=int, metavar="R",
                       help="this machine's number, 0 to M-1; node 0 hosts the rendezvous (sets train.node_rank)")
    train.add_argument("--rdzv-endpoint", type=text_argument, metavar="HOST:PORT",
                       help="node 0's address and a free port, the same on every node (sets train.rdzv_endpoint)")
    train.add_argument("--rdzv-timeout", type=int, metavar="SECONDS",
                       help="how long a node waits for the others at the rendezvous (sets train.rdzv_timeout)")
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
                    "the same storage and --name work on one study: a journal file on a shared filesystem "
                    "(journal:PATH, or a path ending in .log) or a PostgreSQL URL, not SQLite. "
                    "RUNS_DIR/NAME/sweep.json has the best trial and every trial.",
        epilog="examples:\n  sttune sweep --config sweep.yaml --trials 20\n"
               "  sttune sweep --preset smoke --trials 3 -p 'sweep.space={train.learning_rate: "
               "{low: 1.0e-5, high: 1.0e-4, log: true}}'\n"
               "  sttune sweep --config sweep.yaml --name lr --storage journal:/shared/runs/lr/study.log   "
               "# on each machine\n"
               "  sttune sweep --config sweep.yaml --name lr --storage postgresql://user@host/optuna",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep_source = sweep.add_mutually_exclusive_group()
    sweep_source.add_argument("--preset", type=text_argument,
                              help=f"a shipped preset: {', '.join(preset_names())} (default: default)")
    sweep_source.add_argument("--config", type=path_argument, help="a RunConfig YAML file with a sweep section")
    sweep.add_argument("--name", type=text_argument,
                       help="the sweep's folder in RUNS_DIR and its study name (default: sweep.study_name, "
                            "else sweep-DATE-TIME)")
    add_runs_dir_option(sweep)
    sweep.add_argument("--trials", type=int, metavar="N", help="trials to run here (default: sweep.trials)")
    sweep.add_argument("--storage", metavar="URL", type=text_argument,
                       help="journal:PATH (or PATH.log), a file several machines can share, or an SQLAlchemy URL "
                            "(default: sweep.storage, else SQLite in the sweep's folder)")
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
    add_runs_dir_option(timing)
    timing.add_argument("--json", action="store_true", help="print the report as JSON, as in time_report.json")

    runs = commands.add_parser(
        "runs", help="list the runs: status, task, loss, test metric, time and the settings that differ",
        description="One line per run directory in RUNS_DIR (a sweep's trials as SWEEP/trial-NNN), oldest first: "
                    "its date, status (completed, failed at STAGE, running STAGE, incomplete), task shape, loss, "
                    "primary test metric of the fine-tuned model with its 95% interval, time, and the settings of "
                    "its config.yaml that differ between the runs listed. A run that cannot be read is listed with "
                    "what is wrong.",
        epilog="examples:\n  sttune runs\n  sttune runs --runs-dir experiments --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_runs_dir_option(runs)
    runs.add_argument("--json", action="store_true", help="print the runs as JSON")

    compare = commands.add_parser(
        "compare", help="show two or more runs side by side: settings, metrics, time and a plot",
        description="Side by side: the settings that differ between the runs (every setting with --all), each "
                    "model's test metrics with 95% intervals, the fine-tuned model's difference from the base, the "
                    "general reference's parts, and where the time went; and a bar plot of each run's primary "
                    "test metric with its interval.",
        epilog="examples:\n  sttune compare smoke-20250101-120000 smoke-20250102-090000\n"
               "  sttune compare runs/a other/runs/b --all --plot ab.png\n"
               "  sttune compare lr/trial-000 lr/trial-003 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("runs", nargs="+", metavar="RUN", type=text_argument,
                         help="a run directory, or a run's name in --runs-dir (two or more)")
    add_runs_dir_option(compare)
    compare.add_argument("--all", dest="all_settings", action="store_true",
                         help="show every setting, not only those that differ")
    compare.add_argument("--plot", type=path_argument, metavar="FILE",
                         help="where to save the plot (PNG; default: ./compare-RUN-vs-RUN.png)")
    compare.add_argument("--no-plot", action="store_true", help="make no plot")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")

    lab = commands.add_parser(
        "lab", help="open the notebooks in JupyterLab, in a workspace of your own",
        description="Start JupyterLab, with this environment's kernel, on a workspace folder: the first start\n"
                    "copies the five stage notebooks there (and any missing one later), and never overwrites your\n"
                    "copies; the package's notebooks stay the templates that `sttune run` executes. The workspace's\n"
                    "lab.yaml sets the run that all five open (written on the first start: run ./runs/lab, preset\n"
                    "smoke); --run, --preset and --config rewrite it. Arguments after -- go to `jupyter lab`.",
        epilog="examples:\n  sttune lab\n  sttune lab --run first-try --preset default\n"
               "  sttune lab --workspace ~/sttune-lab -- --port 8899 --no-browser",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    lab.add_argument("--workspace", type=path_argument, default=Path("lab"), metavar="DIR",
                     help="the folder with your copies of the notebooks and lab.yaml (default: ./lab)")
    lab.add_argument("--run", type=text_argument, metavar="NAME",
                     help="set lab.yaml's run to RUNS_DIR/NAME (a new name starts a new run)")
    lab.add_argument("--runs-dir", type=path_argument, default=Path("runs"),
                     help="where --run's run is kept (default: ./runs)")
    lab.add_argument("--preset", choices=preset_names(), help="set lab.yaml's preset for a new run (smoke is the "
                     "quick one, default the long main job); clears lab.yaml's config")
    lab.add_argument("--config", type=path_argument, metavar="PATH",
                     help="set lab.yaml's config file for a new run (it replaces the preset)")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER, help="arguments for jupyter lab, after --")

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

    preflight(run.load_config(), STAGES[STAGES.index(first):], run.root)
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

        preflight(config if config is not None else load_config_file(existing_config), stages,
                  (args.runs_dir / name).resolve())
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


def command_runs(args: argparse.Namespace) -> int:
    from .runner.runs import format_runs, list_runs, runs_json

    summaries = list_runs(args.runs_dir)
    print(json.dumps(runs_json(summaries), indent=2) if args.json else format_runs(summaries, args.runs_dir))
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from .runner.compare import compare_runs, default_plot_path, format_comparison

    if args.plot and args.plot.suffix.lower() not in PLOT_FORMATS:
        raise SettingError(f"--plot {args.plot}: name a {', '.join(PLOT_FORMATS)} file, e.g. --plot compare.png")
    comparison = compare_runs(args.runs, args.runs_dir, all_settings=args.all_settings)
    plot = None
    if not args.no_plot:
        import matplotlib.pyplot as plt

        from .runner.compare_plot import plot_runs

        plot = args.plot or default_plot_path(comparison.labels)
        plt.close(plot_runs(comparison.runs, comparison.labels, plot))
    if args.json:
        print(json.dumps({**comparison.as_dict(), "plot": str(plot) if plot else None}, indent=2))
    else:
        print(format_comparison(comparison) + (f"\n\nplot: {plot}" if plot else ""))
    return 0


def command_train(args: argparse.Namespace) -> int:
    from .config import check_value
    from .runner.pipeline import prepare_run_dir
    from .runner.progress_view import ProgressView, showing_progress
    from .stages import training

    flags = {"nproc": args.nproc, "nnodes": args.nnodes, "node_rank": args.node_rank,
             "rdzv_endpoint": args.rdzv_endpoint, "rdzv_timeout": args.rdzv_timeout}
    for key, value in flags.items():
        if isinstance(value, int):
            try:
                check_value(f"train.{key}", value)
            except ValueError as exc:
                raise SettingError(f"--{key.replace('_', '-')}: {exc}") from None
    overrides = [*args.overrides, *(f"train.{key}={value}" for key, value in flags.items() if value is not None)]
    shared = RunDir((args.runs_dir / args.name).resolve())
    if shared.config_path.is_file():
        config = shared.load_config().with_overrides(overrides)
        if config.train.node_rank != 0:
            # Node 0 may already have marked the stage running, which prepare_run_dir would refuse.
            shared.require_completed(training.NAME)  # i.e. data_prep and loss_selection
            return train_other_node(args, shared, config)
    where = f"--name {args.name} --runs-dir {args.runs_dir}"
    # `sttune train` has no --from/--only: name the commands that create the run and its first stages.
    existing = prepare_run_dir(
        args.runs_dir, args.name, None, continuing=True, overwrite=False,
        missing_hint=f"create it and run the stages before training with `sttune run {where} --only data_prep` "
                     f"then `sttune run {where} --only loss_selection`, or run every stage with `sttune run {where}`")
    run, config, _ = training.start(existing.root, overrides=overrides, on_each_node=True)
    print(f"run {args.name}: training in {where_training(config.train)}")
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


def where_training(train) -> str:
    from .training.launch import where

    return where(train)


def train_other_node(args: argparse.Namespace, run, config) -> int:
    """A node other than node 0: trains its ranks and writes nothing itself; node 0 records the stage
    in the manifest and global rank 0 (on whichever node) writes the model and training.json."""
    from .stages import training as training_stage
    from .training import check_nodes, train_model

    check_nodes(config.train)
    config = run.stage_config(config, training_stage.NAME)
    print(f"run {args.name}: training in {where_training(config.train)}; node 0 records the run")
    try:
        train_model(run, config, resume=args.resume)  # not the stage's train: it would write training.json
    except Exception as exc:
        print(f"sttune: error: training failed: {exc}", file=sys.stderr)
        return 1
    print(f"node {config.train.node_rank}: training completed; node 0 records it in {run.manifest_path}")
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
    from .runner.lab_workspace import prepare_workspace
    from .runner.pipeline import ensure_kernel

    workspace = prepare_workspace(args.workspace, run=args.run, runs_dir=args.runs_dir, preset=args.preset,
                                  config_path=args.config)
    print(workspace.summary(), flush=True)
    ensure_kernel()
    extra = [a for a in args.lab_args if a != "--"]
    return subprocess.call([sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={workspace.folder}", *extra],
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
        if args.command == "runs":
            return command_runs(args)
        if args.command == "compare":
            return command_compare(args)
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
