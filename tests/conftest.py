import gc
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"  # small real data sets (tests/data/README.md)

# Nothing in the tests may reach a network; the hub probe is tested separately.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# UMAP runs interpreted in the tests (here and in the smoke run's kernel, which inherits this):
# compiling pynndescent's numba kernels on import costs 15+ minutes on a fresh 2-core machine,
# interpreting them on the tests' hundred points costs seconds. `make run` and the benchmarks
# compile as usual; NUMBA_DISABLE_JIT=0 make test compiles here too.
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")
# The smoke run trains on one core while the tests run on the other: with torch's default of a
# thread per core, the two processes' OpenMP threads spin against each other and each step takes
# minutes instead of seconds on a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Generous: on a contended 2-core machine the run's kernel spends minutes importing torch.
SMOKE_TIMEOUT_S = 3600


def sttune_command(*args):
    return [sys.executable, "-m", "sttune_helpers.cli", *args]


def sttune_env():
    return {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}


def sttune(*args, cwd, timeout=SMOKE_TIMEOUT_S):
    """Run the sttune command in a subprocess, as a user would."""
    return subprocess.run(sttune_command(*args), cwd=cwd, env=sttune_env(), capture_output=True, text=True,
                          timeout=timeout)


# Where the background runs live, shared by every test process: with pytest-xdist (-n, set in
# pyproject.toml) the main process makes it before the workers start, and they inherit the variable.
SHARED_ENV = "STTUNE_TESTS_SHARED_DIR"
_owns_shared_dir = pytest.StashKey[bool]()


def pytest_configure(config):
    if not hasattr(config, "workerinput") and SHARED_ENV not in os.environ:
        os.environ[SHARED_ENV] = tempfile.mkdtemp(prefix="sttune-tests-")
        config.stash[_owns_shared_dir] = True


class BackgroundRun:
    """A command started when collection ends, so that it runs on a core the tests leave free; the
    tests that need it are ordered last and wait for it. Every test process collects the same tests:
    the first to create the run's folder starts it, the others wait for the exit code it writes."""

    def __init__(self, prefix, command):
        self.workdir = Path(os.environ[SHARED_ENV]) / prefix.strip("-")
        self.stdout_path = self.workdir / "stdout.txt"
        self.stderr_path = self.workdir / "stderr.txt"
        self.returncode_path = self.workdir / "returncode.txt"
        self.process = None
        try:
            self.workdir.mkdir()
        except FileExistsError:
            return  # another test process started it
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen([part.replace("{workdir}", str(self.workdir)) for part in command],
                                            cwd=self.workdir, env=sttune_env(), stdout=out, stderr=err, text=True)
        # The exit code is written the moment the run ends, not when this test process next looks:
        # the other test process may be waiting for it while this one runs other files.
        self.recorder = threading.Thread(target=self._record_when_done, daemon=True)
        self.recorder.start()

    def _record_when_done(self):
        returncode = self.process.wait()
        partial = self.returncode_path.with_suffix(".partial")
        partial.write_text(str(returncode))
        partial.replace(self.returncode_path)

    def wait(self):
        if self.process is not None:
            try:
                returncode = self.process.wait(timeout=SMOKE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise
        else:
            deadline = time.monotonic() + SMOKE_TIMEOUT_S
            while not self.returncode_path.is_file():
                assert time.monotonic() < deadline, f"no exit code in {self.workdir} after {SMOKE_TIMEOUT_S} s"
                time.sleep(1)
            returncode = int(self.returncode_path.read_text())
        return subprocess.CompletedProcess(str(self.workdir), returncode, self.stdout_path.read_text(),
                                           self.stderr_path.read_text())

    def finish(self, others_may_wait: bool):
        """At the end of this test process: let the run finish for the test processes that may still
        wait for it, else stop it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            if others_may_wait:
                self.wait()
            else:
                self.process.kill()
        self.recorder.join(timeout=60)  # the exit code is on disk before this process ends


# fixture name -> (folder name, command); {workdir} is the run's own folder.
BACKGROUND_COMMANDS = {
    # `sttune run --preset smoke`: the real model through every stage.
    "smoke_run": ("smoke", sttune_command("run", "--preset", "smoke", "--name", "smoke")),
    # Every other task shape through every stage on a tiny model (tests/helpers/every_shape_runs.py).
    "every_shape_runs": ("shapes", [sys.executable, str(REPO / "tests" / "helpers" / "every_shape_runs.py"),
                                    "{workdir}"]),
    # Two uninterrupted runs of one config (tests/helpers/uninterrupted_runs.py), for the reproducibility
    # and recovery tests.
    "uninterrupted_runs": ("uninterrupted", [sys.executable,
                                             str(REPO / "tests" / "helpers" / "uninterrupted_runs.py"), "{workdir}"]),
}
_background: dict[str, BackgroundRun] = {}
BACKGROUND_PRIORITY_GAP = 5  # niceness the test processes add once the background runs have started


@pytest.hookimpl(trylast=True)  # after -k/-m deselection
def pytest_collection_modifyitems(session, config, items):
    # Files with a test that needs a background run go last, so that it runs beside the others (with
    # pytest-xdist's --dist loadfile a worker takes a whole file: one that came early would wait there).
    waiting = {item.path for item in items if set(BACKGROUND_COMMANDS) & set(item.fixturenames)}

    def order(item):
        return (item.path in waiting, bool(set(BACKGROUND_COMMANDS) & set(item.fixturenames)))

    items.sort(key=order)
    if config.option.collectonly:
        return
    for name, (prefix, command) in BACKGROUND_COMMANDS.items():
        if any(name in item.fixturenames for item in items):
            _background[name] = BackgroundRun(prefix, command)
    if _background:
        # The background runs gate the last files: they get the cores first, the tests (and what they
        # start) what is left, so that no test process ends up idle, waiting for them.
        os.nice(BACKGROUND_PRIORITY_GAP)


def pytest_sessionfinish(session, exitstatus):
    workers = hasattr(session.config, "workerinput")
    for name in list(_background):
        _background.pop(name).finish(others_may_wait=workers and exitstatus != pytest.ExitCode.INTERRUPTED)
    if session.config.stash.get(_owns_shared_dir, False):
        shared = os.environ.pop(SHARED_ENV)
        if exitstatus == 0:
            shutil.rmtree(shared, ignore_errors=True)
        else:  # kept after a failure, so that the executed notebooks can be read
            print(f"\nthe background runs are kept in {shared}")


def pytest_runtest_setup(item):
    # torch is imported only when a gpu-marked test is about to run.
    if item.get_closest_marker("gpu") is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA GPU: torch.cuda.is_available() is False here")


@pytest.fixture(autouse=True, scope="session")
def console_reporting():
    """The package's progress and warnings on stdout, as a notebook and the CLI show them."""
    from sttune_helpers.core.reporting import show_on_console

    show_on_console()


@pytest.fixture(autouse=True)
def frozen_heap():
    """accelerate runs gc.collect() at the start and end of every trainer.train(); with torch and
    transformers loaded that walks half a million objects, seconds each time on a small machine.
    Objects alive before a test move to the permanent generation, so collections walk only the
    test's own."""
    gc.freeze()
    yield


@pytest.fixture(scope="session")
def smoke_run():
    """The smoke run started at collection, shared by the pipeline tests."""
    run = _background["smoke_run"]
    result = run.wait()
    assert result.returncode == 0, f"smoke run failed:\n{result.stdout}\n{result.stderr}"
    return run.workdir / "runs" / "smoke", result


@pytest.fixture(scope="session")
def uninterrupted_runs():
    """Runs a and b of one config and seed (tests/helpers/uninterrupted_runs.py), started at
    collection: (run a, run b, the tiny model folder)."""
    run = _background["uninterrupted_runs"]
    result = run.wait()
    assert result.returncode == 0, f"an uninterrupted run failed:\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    return run.workdir / "runs" / "a", run.workdir / "runs" / "b", run.workdir / "tiny"


@pytest.fixture(scope="session")
def every_shape_runs():
    """The runs of every other task shape, started at collection (tests/helpers/every_shape_runs.py)."""
    run = _background["every_shape_runs"]
    result = run.wait()
    assert result.returncode == 0, f"a shape's run failed:\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    return run.workdir / "runs"
