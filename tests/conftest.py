import gc
import os
import shutil
import subprocess
import sys
import tempfile
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


class BackgroundRun:
    """A command started when collection ends, so that it runs on the core the unit tests leave
    free; the tests that need it are ordered last and wait for it."""

    def __init__(self, prefix, command):
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self.stdout_path = self.workdir / "stdout.txt"
        self.stderr_path = self.workdir / "stderr.txt"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen([part.replace("{workdir}", str(self.workdir)) for part in command],
                                            cwd=self.workdir, env=sttune_env(), stdout=out, stderr=err, text=True)

    def wait(self):
        try:
            returncode = self.process.wait(timeout=SMOKE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return subprocess.CompletedProcess(self.process.args, returncode, self.stdout_path.read_text(),
                                           self.stderr_path.read_text())

    def stop(self, keep: bool):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


# fixture name -> (temporary directory prefix, command); {workdir} is the run's own directory.
BACKGROUND_COMMANDS = {
    # `sttune run --preset smoke`: the real model through every stage.
    "smoke_run": ("sttune-smoke-", sttune_command("run", "--preset", "smoke", "--name", "smoke")),
    # Every other task shape through every stage on a tiny model (tests/helpers/every_shape_runs.py).
    "every_shape_runs": ("sttune-shapes-", [sys.executable, str(REPO / "tests" / "helpers" / "every_shape_runs.py"),
                                            "{workdir}"]),
}
_background: dict[str, BackgroundRun] = {}


@pytest.hookimpl(trylast=True)  # after -k/-m deselection
def pytest_collection_modifyitems(session, config, items):
    # Tests that need a background run go last, so that it runs beside the others.
    def order(item):
        return 1 if set(BACKGROUND_COMMANDS) & set(item.fixturenames) else 0

    items.sort(key=order)
    if config.option.collectonly:
        return
    for name, (prefix, command) in BACKGROUND_COMMANDS.items():
        if any(name in item.fixturenames for item in items):
            _background[name] = BackgroundRun(prefix, command)


def pytest_sessionfinish(session, exitstatus):
    for name in list(_background):
        run = _background.pop(name)
        # Kept after a failure, so the executed notebooks can be read.
        run.stop(keep=exitstatus != 0)
        if exitstatus != 0:
            print(f"\n{name} kept in {run.workdir}")


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
def every_shape_runs():
    """The runs of every other task shape, started at collection (tests/helpers/every_shape_runs.py)."""
    run = _background["every_shape_runs"]
    result = run.wait()
    assert result.returncode == 0, f"a shape's run failed:\n{result.stdout[-20000:]}\n{result.stderr[-5000:]}"
    return run.workdir / "runs"
