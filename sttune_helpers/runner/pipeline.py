"""Run the stage notebooks in order with papermill, into a run directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

from ..config import RunConfig
from ..core.errors import SettingError
from ..core.reporting import get_logger
from ..rundir import NOTEBOOKS, STAGES, RunDir, RunDirError, check_run_name
from .console import KernelConsole, drop_progress_lines, kernels_report_progress
from .progress_view import ProgressView, showing_progress
from .time_report import record_stage_wall

log = get_logger(__name__)
KERNEL_NAME = "sttune"
KERNEL_DISPLAY_NAME = "Python (sttune)"
NOTEBOOKS_ENV = "STTUNE_NOTEBOOKS"


def notebooks_dir() -> Path:
    """The stage notebooks: $STTUNE_NOTEBOOKS, else those installed with the package (a wheel ships
    them as sttune_helpers/notebooks/, see setup.py), else the source checkout's notebooks/ (an
    editable install or a checkout on the path)."""
    configured = os.environ.get(NOTEBOOKS_ENV)
    if configured:
        candidates = [Path(configured)]
    else:
        candidates = [Path(str(resources.files("sttune_helpers") / "notebooks")),
                      Path(__file__).resolve().parents[2] / "notebooks"]
    for folder in candidates:
        if all((folder / nb).is_file() for nb in NOTEBOOKS.values()):
            return folder
    raise RunDirError(f"the stage notebooks are not in {' nor in '.join(map(str, candidates))}; set {NOTEBOOKS_ENV} "
                      f"to the folder that holds {', '.join(NOTEBOOKS.values())}")


def parse_stage(text: str) -> str:
    """Accept 'training', '03', '3' or '03_training'."""
    text = text.strip().lower().removesuffix(".ipynb")
    for number, stage in enumerate(STAGES, start=1):
        if text in {stage, str(number), f"{number:02d}", NOTEBOOKS[stage].removesuffix(".ipynb")}:
            return stage
    raise SettingError(f"unknown stage {text!r}; the stages are: " +
                     ", ".join(f"{i:02d} {s}" for i, s in enumerate(STAGES, start=1)))


def ensure_kernel() -> str:
    """Register this environment's Python as the 'sttune' kernel inside the environment (not in
    the user's home), so that papermill and JupyterLab run the project's interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def ours(spec) -> bool:
        return Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()

    manager = KernelSpecManager()
    try:
        if ours(manager.get_kernel_spec(KERNEL_NAME)):
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME, prefix=sys.prefix)
    # A kernel of the same name elsewhere (e.g. in the user's home) would shadow this one.
    env_path = str(Path(sys.prefix) / "share" / "jupyter")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([env_path, *filter(None, [os.environ.get("JUPYTER_PATH")])])
    if not ours(KernelSpecManager().get_kernel_spec(KERNEL_NAME)):
        raise RunDirError(f"the Jupyter kernel {KERNEL_NAME!r} does not run {sys.executable}; "
                          f"remove the other one with `jupyter kernelspec remove {KERNEL_NAME}`")
    return KERNEL_NAME


@dataclass
class StageResult:
    stage: str
    status: str  # completed or failed
    seconds: float
    notebook: Path
    error: str | None = None


def default_run_name(preset: str | None) -> str:
    return f"{preset or 'run'}-{datetime.now():%Y%m%d-%H%M%S}"


def prepare_run_dir(runs_dir: Path, name: str, config: RunConfig | None, continuing: bool, overwrite: bool,
                    missing_hint: str = "start it without --from/--only/--resume") -> RunDir:
    """Create (or, when continuing, reuse) the run directory and write its config. ``missing_hint``
    ends the error for a run to continue that does not exist: what the calling command should say."""
    check_run_name(name)
    run = RunDir((runs_dir / name).resolve())
    if continuing:
        if not run.config_path.is_file():
            raise RunDirError(f"run {name!r} does not exist in {runs_dir}; {missing_hint}")
    elif run.root.exists():
        if not overwrite:
            raise RunDirError(f"run {name!r} already exists in {runs_dir}: pass --overwrite to replace it, "
                              "or --from STAGE to continue it")
        if any(run.root.iterdir()) and not (run.manifest_path.exists() or run.config_path.exists()):
            raise RunDirError(f"{run.root} is not a run directory (no manifest.json or config.yaml); not deleting it")
        shutil.rmtree(run.root)
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        probe = run.root / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"cannot write to the run directory {run.root}: {exc.strerror or exc}") from None
    if config is not None:
        run.save_config(config)
    if continuing:
        for stage in run.recover_interrupted():
            log.info(f"stage {stage!r} was left running by a process that no longer exists: marked interrupted")
    return run


def preflight(config: RunConfig, stages: Sequence[str], run_dir: Path) -> None:
    """Fail within seconds, before a run directory or a kernel exists, on what would otherwise stop
    a stage minutes in: a data source or a model that is not there (each error says what was tried),
    or training on several machines, which `sttune train` starts on each of them."""
    if "training" in stages and config.train.nnodes > 1:  # importing the training stage costs seconds
        from ..training.launch import refuse_several_nodes

        refuse_several_nodes(config.train, run_dir)
    # Imported here: `sttune run` starts faster without pandas and the hub client at import.
    if STAGES[0] in stages:
        from ..data import resolve_source

        resolve_source(config.data.source)
    from ..modeling import check_model_folder, resolve_model_source

    check_model_folder(config.model.name)  # a local folder that holds no model: whatever the stages (open_run's check)
    augment = config.data.augment
    needs_model = bool({"training", "evaluation"} & set(stages)) or (
        STAGES[0] in stages and (config.data.negatives.enabled is True or augment.synonyms or augment.augmented_sbert))
    if needs_model:
        resolve_model_source(config.model.name)
    if STAGES[0] in stages and augment.augmented_sbert and augment.cross_encoder_model:
        resolve_model_source(augment.cross_encoder_model, key="data.augment.cross_encoder_model")


class StageInterrupted(KeyboardInterrupt):
    """A run stopped by a signal (Ctrl-C, SIGTERM, SIGHUP); the manifest marks the stage interrupted."""

    def __init__(self, signal_name: str, stage: str | None = None, run: RunDir | None = None):
        self.signal_name, self.stage, self.run = signal_name, stage, run
        where = f" during stage {stage!r}" if stage else ""
        resume = (f"; continue with `sttune run --resume --name {run.root.name} --runs-dir {run.root.parent}`"
                  if run is not None else "")
        super().__init__(f"interrupted by {signal_name}{where}{resume}")


INTERRUPTING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise StageInterrupted, so that a run stopped by `kill`, a closed
    terminal or a scheduler's time limit is recorded like Ctrl-C (in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise StageInterrupted(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, interrupt) for signum in INTERRUPTING_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_stage_process(run: RunDir, stage: str, manager) -> None:
    """Stop the kernel that runs ``stage`` before recording the interruption, so that nothing it
    would still write (a model, metrics) lands after the record."""
    if manager is not None:
        pid = getattr(getattr(manager, "provisioner", None), "pid", None)
        if pid:  # not shutdown_kernel: it would run the asyncio loop that still holds the interrupted cell
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return
    # A kernel of papermill's own (--kernel-per-stage): the process the stage recorded, if it is our child.
    pid = run.manifest()["stages"].get(stage, {}).get("pid")
    if not pid or pid == os.getpid():
        return
    with contextlib.suppress(Exception):
        import psutil

        process = psutil.Process(pid)
        if process.ppid() == os.getpid():
            process.kill()
            process.wait(timeout=30)


# Run in the shared kernel before each stage notebook, so that a notebook sees none of the previous
# one's variables (each must also run on its own in JupyterLab) while the imported modules stay.
RESET_NAMESPACE = """
get_ipython().run_line_magic("reset", "-f")
import gc as _gc, sys as _sys
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
_gc.collect()
if "torch" in _sys.modules and _sys.modules["torch"].cuda.is_available():
    _sys.modules["torch"].cuda.empty_cache()
get_ipython().execution_count = 1
del _gc, _sys
"""


# The namespace reset restarts the execution count, which IPython's history database refuses
# ("Session/line number was not unique"); a headless run has no use for that history.
SHARED_KERNEL_ARGUMENTS = ["--HistoryManager.enabled=False"]


@contextlib.contextmanager
def kernel_transport() -> Iterator[dict]:
    """KernelManager settings for a kernel reached over local IPC sockets, in a private temporary
    folder (removed afterwards), instead of TCP ports on localhost, over which ipykernel warns that
    nothing is encrypted on every start. On Windows, where zmq has no IPC transport: TCP ({})."""
    if os.name == "nt":
        yield {}
        return
    folder = tempfile.mkdtemp(prefix="sttune-")  # short: a socket's path has ~100 characters at most
    try:
        yield {"transport": "ipc", "ip": os.path.join(folder, "kernel")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def stage_kernel(kernel_name: str, shared: bool = True) -> Iterator[object | None]:
    """A started kernel for all the stage notebooks of a run (None with ``shared=False``: a fresh
    kernel per notebook). Importing torch and sentence-transformers costs from seconds to minutes
    depending on the machine; a shared kernel pays it once per run instead of once per stage."""
    if not shared:
        yield None
        return
    from jupyter_client.manager import KernelManager

    # nbclient executes with the manager's client(): an asynchronous one, because the blocking one's
    # get_msg blocks the event loop, so that after an interrupt (or a dead kernel) nbclient never
    # returns and `sttune run` hangs.
    with kernel_transport() as transport:
        manager = KernelManager(kernel_name=kernel_name, client_class="jupyter_client.asynchronous.AsyncKernelClient",
                                **transport)
        with kernels_report_progress(terminal=ProgressView().tty):
            manager.start_kernel(cwd=os.getcwd(), extra_arguments=SHARED_KERNEL_ARGUMENTS)
        try:
            yield manager
        finally:
            if manager.has_kernel:  # stop_stage_process may have stopped it already
                with contextlib.suppress(KeyboardInterrupt):
                    manager.shutdown_kernel(now=True)


def reset_kernel_namespace(manager) -> None:
    """Clear the shared kernel's variables between stage notebooks; restart it if it died."""
    if not manager.is_alive():
        manager.start_kernel(cwd=os.getcwd(), extra_arguments=SHARED_KERNEL_ARGUMENTS)
        return
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        reply = client.execute_interactive(RESET_NAMESPACE, silent=True, timeout=300)
        if reply["content"]["status"] != "ok":
            raise RunDirError(f"could not reset the shared kernel between stages: {reply['content'].get('evalue')}")
    finally:
        client.stop_channels()


@contextlib.contextmanager
def outside_jupyter_session() -> Iterator[None]:
    """Start the stage kernels without Jupyter Server's session variable, even when `sttune run` is
    called from a JupyterLab notebook: with it, a notebook would read the workspace's lab.yaml
    (stages/lab.py), which only interactive notebooks follow."""
    from ..stages.lab import SESSION_ENV

    session = os.environ.pop(SESSION_ENV, None)
    try:
        yield
    finally:
        if session is not None:
            os.environ[SESSION_ENV] = session


def notebook_parameters(notebook: Path, run: RunDir, extra: dict | None) -> dict:
    """run_dir, interactive=False (no widgets headless) and ``extra``, each only where the notebook's
    parameters cell declares it, so that papermill injects nothing a notebook does not use."""
    import papermill

    declared = set(papermill.inspect_notebook(str(notebook)))
    wanted = {"interactive": False, **(extra or {})}
    return {"run_dir": str(run.root), **{k: v for k, v in wanted.items() if k in declared}}


def run_stages(run: RunDir, stages: Sequence[str], log_output: bool = False,
               shared_kernel: bool = True,
               kernel=None, parameters: dict | None = None) -> list[StageResult]:
    """Execute the notebooks of ``stages`` in order; stop at the first failure.

    With ``shared_kernel`` (the default) the notebooks run one after another in one kernel, its
    variables cleared between them; otherwise each gets a fresh kernel, as papermill does alone.
    ``kernel``, a started kernel manager from :func:`stage_kernel`, lets several runs share one.
    ``parameters`` go to every notebook besides run_dir (e.g. resume=True)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = notebooks_dir()
    kernel_name = ensure_kernel()
    run.notebooks_dir.mkdir(parents=True, exist_ok=True)
    run.require_completed(stages[0])
    results: list[StageResult] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(interrupts_as_exceptions())
        stack.enter_context(outside_jupyter_session())
        # Training and the other long steps report progress from the kernel; papermill's own log lines
        # (log_output) would break an updating line, so those runs get plain lines.
        view = stack.enter_context(showing_progress(ProgressView(tty=False if log_output else None)))
        stack.enter_context(kernels_report_progress(terminal=view.tty))
        kernel_started = time.perf_counter()
        manager = kernel if kernel is not None else stack.enter_context(stage_kernel(kernel_name, shared_kernel))
        # Starting the shared kernel: the time report counts it as overhead (papermill starts the others).
        kernel_seconds = time.perf_counter() - kernel_started if kernel is None and manager is not None else 0.0
        for position, stage in enumerate(stages, start=1):
            output = run.notebooks_dir / NOTEBOOKS[stage]
            log.info(f"[{position}/{len(stages)}] {stage:<15} {NOTEBOOKS[stage]} ...")
            started = time.perf_counter()
            error = None
            try:
                engine_options = {}
                if manager is not None:
                    if position > 1 or kernel is not None:
                        reset_kernel_namespace(manager)
                    engine_options["km"] = manager
                else:  # papermill starts the kernel: the same transport as a shared one's
                    from traitlets.config import Config

                    engine_options["config"] = Config({"KernelManager": stack.enter_context(kernel_transport())})
                # With log_output papermill prints every line already, the warnings among them.
                console = KernelConsole(warnings=not log_output)
                try:
                    papermill.execute_notebook(
                        str(source / NOTEBOOKS[stage]), str(output),
                        parameters=notebook_parameters(source / NOTEBOOKS[stage], run, parameters),
                        kernel_name=kernel_name, cwd=os.getcwd(), progress_bar=False, log_output=log_output,
                        stdout_file=console, **engine_options,
                    )
                finally:
                    console.flush()
                    view.break_line()
            except KeyboardInterrupt as exc:
                signal_name = getattr(exc, "signal_name", "SIGINT")
                for signum in INTERRUPTING_SIGNALS:  # a second Ctrl-C must not cut the clean-up short
                    signal.signal(signum, signal.SIG_IGN)
                stop_stage_process(run, stage, manager)
                if run.stage_status(stage) == "running":
                    run.fail_stage(stage, f"interrupted by {signal_name}", notebook=str(output), status="interrupted")
                log.info(f"stage {stage!r} interrupted by {signal_name}\nexecuted notebook: {output}")
                raise StageInterrupted(signal_name, stage, run) from None
            except PapermillExecutionError as exc:
                source_lines = "\n".join("    " + line for line in exc.source.splitlines())
                error = f"{exc.ename}: {exc.evalue}"
                log.info(f"stage {stage!r} failed in cell {exc.exec_count}:\n{source_lines}\n{error}\n"
                     f"executed notebook: {output}")
            except Exception as exc:  # the kernel died, a notebook could not be read, ...
                error = f"{type(exc).__name__}: {exc}"
                log.info(f"stage {stage!r} failed: {error}\nexecuted notebook: {output}")
            if output.is_file():
                drop_progress_lines(output)
            seconds = time.perf_counter() - started
            record_stage_wall(run, stage, seconds, kernel_seconds if position == 1 else 0.0)
            if error is not None:
                # KeyboardInterrupt in the kernel (JupyterLab's interrupt, a signal sent to the kernel).
                status = "interrupted" if error.startswith("KeyboardInterrupt") else "failed"
                run.fail_stage(stage, error, notebook=str(output), status=status)
                results.append(StageResult(stage, "failed", seconds, output, error))
                break
            if run.stage_status(stage) != "completed":
                error = "the notebook ended without marking its stage completed"
                run.fail_stage(stage, error, notebook=str(output))
                log.info(f"stage {stage!r} failed: {error}\nexecuted notebook: {output}")
                results.append(StageResult(stage, "failed", seconds, output, error))
                break
            log.info(f"      {stage:<15} done in {seconds:.1f} s")
            results.append(StageResult(stage, "completed", seconds, output))
    return results


def first_unfinished_stage(run: RunDir) -> str | None:
    """The first stage of the run that has not completed (None when all have)."""
    for stage in STAGES:
        if run.stage_status(stage) != "completed":
            return stage
    return None


def select_stages(from_stage: str | None, only_stage: str | None) -> list[str]:
    if only_stage:
        return [parse_stage(only_stage)]
    if from_stage:
        return list(STAGES[STAGES.index(parse_stage(from_stage)):])
    return list(STAGES)
