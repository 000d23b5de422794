"""On a CUDA GPU: the whole pipeline through papermill with bf16 (marked gpu: skipped, with the
reason, where torch sees no CUDA device). On every machine: bench/gpu_check.sh parses and each
sttune command in it is accepted by the CLI and the config."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, sttune

GPU_CHECK = REPO / "bench" / "gpu_check.sh"


@pytest.mark.gpu
@pytest.mark.slow
def test_pipeline_on_the_gpu_with_bf16(tmp_path):
    result = sttune("run", "--preset", "smoke", "--name", "gpu", "-p", "model.device=cuda", "-p",
                    "train.precision=bf16", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    run = tmp_path / "runs" / "gpu"
    summary = json.loads((run / "training.json").read_text())
    assert summary["device"] == "cuda" and summary["precision"] == "bf16"
    assert summary["peak_gpu_memory_bytes"] > 0 and summary["train_samples_per_second"] > 0
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert {stage: entry["status"] for stage, entry in stages.items()} == {stage: "completed" for stage in stages}
    assert len(stages) == 5


def test_gpu_check_script_parses_and_its_commands_are_accepted(tmp_path):
    assert subprocess.run(["bash", "-n", str(GPU_CHECK)], capture_output=True, text=True).returncode == 0
    summary = tmp_path / "summary.txt"
    env = {**os.environ, "GPU_CHECK_DRY_RUN": "1", "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(GPU_CHECK), str(summary)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    accepted = [line for line in result.stdout.splitlines() if line.startswith("accepted: ")]
    # pair_score with and without gradient checkpointing, retrieval with CachedMNRL likewise, and
    # pair_score in 2 processes (run only where there are 2 GPUs).
    assert len(accepted) == 5, result.stdout
    assert sum("train.batch_size=128" in line for line in accepted) == 3
    assert sum("train.gradient_checkpointing=true" in line for line in accepted) == 2
    assert sum("train.nproc=2" in line for line in accepted) == 1
    assert sum("loss.name=CachedMultipleNegativesRankingLoss" in line and "train.batch_size=1024" in line
               for line in accepted) == 2
    assert all("model.device=cuda" in line and "train.precision=bf16" in line for line in accepted)
    assert not summary.exists()  # a dry run trains nothing and reports nothing
