"""Wall time of `sttune train` on the tiny model: two "nodes" on this machine (--nnodes 2, one gloo
rank each, a c10d rendezvous on 127.0.0.1) against one node with one process, the same global batch.
On a machine with few cores this measures the overhead of the rendezvous and the second process
(start-up, gloo all-reduces), not a speed-up.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/multinode.py [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from helpers.tiny_model import build_tiny_model_folder, prepared_run  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_command(runs_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sttune_helpers.cli", "train", "--name", "bench", "--runs-dir", str(runs_dir),
            *extra]


def timed(commands: list[list[str]]) -> float:
    started = time.perf_counter()
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    for process in processes:
        _, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"failed: {' '.join(process.args)}\n{err[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sttune-bench-multinode-"))
    model = str(build_tiny_model_folder(work / "model"))
    settings = [f"train.max_steps={args.steps}", "train.evaluations_per_epoch=1", "train.early_stopping_patience=null",
                "data.max_train_rows=128"]
    prepared_run(work / "one", model, [*settings, "train.batch_size=8"], name="bench")
    prepared_run(work / "two", model, [*settings, "train.batch_size=4"], name="bench")
    one = timed([train_command(work / "one")])
    endpoint = f"127.0.0.1:{free_port()}"
    two = timed([train_command(work / "two", "--nnodes", "2", "--node-rank", str(rank), "--rdzv-endpoint", endpoint)
                 for rank in (1, 0)])
    summaries = {name: json.loads((work / name / "bench" / "training.json").read_text()) for name in ("one", "two")}
    result = {"steps": args.steps, "global_batch": summaries["two"]["global_batch_size"],
              "one_node_wall_s": round(one, 1), "two_nodes_wall_s": round(two, 1),
              "one_node_train_s": summaries["one"]["train_seconds"],
              "two_nodes_train_s": summaries["two"]["train_seconds"],
              "work_dir": str(work)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
