import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Nothing in the tests may reach a network; the hub probe is tested separately.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def sttune(*args, cwd, timeout=3600):
    """Run the sttune command in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "sttune_helpers.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One `sttune run --preset smoke` shared by the pipeline tests."""
    workdir = tmp_path_factory.mktemp("smoke")
    # Generous: on a contended 2-core machine the five kernels spend minutes importing torch and compiling UMAP.
    result = sttune("run", "--preset", "smoke", "--name", "smoke", cwd=workdir, timeout=3600)
    assert result.returncode == 0, f"smoke run failed:\n{result.stdout}\n{result.stderr}"
    return workdir / "runs" / "smoke", result
