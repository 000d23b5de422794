"""Data-parallel training: starting the training stage in several processes under torchrun, and
saying which rank failed and why when it does.

With ``train.nproc > 1``, ``train.train_model`` calls :func:`launch_training`, which starts

    python -m torch.distributed.run --standalone --nproc_per_node N -m sttune_helpers.runner.worker RUN_DIR

Each process (rank) runs ``train_model`` on its own share of the batches (``worker.py``); the
sentence-transformers trainer (through accelerate) sets up DDP from torchrun's environment, with
gloo on CPU and nccl on CUDA (one GPU per rank). ``train.batch_size`` is per process, so the global
batch is batch_size x nproc x gradient_accumulation_steps. Rank 0 alone writes the model, the
checkpoints, training.json and the TensorBoard logs (the trainer adds each rank's RNG state to a
checkpoint, for resuming); the launcher then reads training.json back. A failing rank's error and
the tail of its stderr come back as a :class:`DistributedTrainingError`; torchrun stops the other
ranks, so nothing hangs.

With ``train.nnodes > 1`` each machine runs the same launcher with its own ``train.node_rank``;
torchrun's c10d rendezvous at ``train.rdzv_endpoint`` (host:port of node 0, which hosts its store)
joins them into one process group of nproc x nnodes ranks (only `sttune train` launches it:
:func:`refuse_several_nodes` stops the other entry points):

    python -m torch.distributed.run --nnodes 2 --node-rank R --nproc-per-node N --rdzv-backend c10d
        --rdzv-endpoint HOST:PORT --rdzv-id RUN_NAME --rdzv-conf join_timeout=T,read_timeout=T,is_host=0|1
        --max-restarts 0 -m sttune_helpers.runner.worker RUN_DIR

The run directory is shared (one filesystem); global rank 0, on whichever node the rendezvous put
it, writes into it. A node that cannot reach the rendezvous, or whose peers do not come, fails after
``train.rdzv_timeout`` seconds with a message naming the endpoint; a rank failing while it starts
stops the others within ``train.rdzv_timeout`` (``rank_startup.py``, before the process group forms);
a failing rank breaks the process group, so the ranks on the other nodes fail too instead of hanging.

The launcher names the worker module and never imports it (nor ``train.py``): the dependency runs
one way, worker -> train -> launch -> ranks. This file imports no torch: the launching side needs none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..config import save_config
from ..core import progress
from ..core.hardware import pick_device
from ..core.reporting import get_logger
from .errors import DistributedTrainingError, TrainingError
from .ranks import ddp_backend

log = get_logger(__name__)

# The module each rank runs (python -m WORKER_MODULE).
WORKER_MODULE = "sttune_helpers.runner.worker"
# Lines of a failed rank's stderr shown in the error.
STDERR_TAIL_LINES = 30
# A Python exception's last line in torchrun's output, e.g. "torch.distributed.DistNetworkError: ...".
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout)\w*: ")
# torchrun's summary of a failed rank, e.g. "  rank      : 1 (local_rank: 0)": its global rank, which a
# rank's log folder (named by local rank) does not say on a node other than node 0.
FAILED_RANK_LINE = re.compile(r"^\s*rank\s*:\s*(\d+) \(local_rank: (\d+)\)")
# A rank's error when the rank it was exchanging with went away (gloo; nccl): the failure began there.
PEER_LOST = re.compile(r"closed by peer|reset by peer|remote worker|remote process", re.IGNORECASE)
# How often rank 0 prints a training step's progress event (evaluations and the end always).
RANK_STEP_INTERVAL_S = 2.0


def check_devices(device: str, nproc: int) -> None:
    """Fail before launching when the machine cannot hold ``nproc`` ranks on ``device``."""
    if nproc < 1:
        raise TrainingError(f"train.nproc must be at least 1, got {nproc}")
    ddp_backend(device)
    if device == "cuda":
        import torch

        available = torch.cuda.device_count()
        if nproc > available:
            raise TrainingError(f"train.nproc={nproc} needs one GPU per process, but torch sees {available} CUDA "
                                "device(s); lower train.nproc or set CUDA_VISIBLE_DEVICES")


def runs_distributed(train) -> bool:
    """True when ``train`` (a TrainConfig) trains in several processes, on this machine or several."""
    return train.nproc > 1 or train.nnodes > 1


def check_nodes(train) -> tuple[str, int] | None:
    """Refuse a multi-node setting that cannot work, naming it; the rendezvous (host, port) with
    ``train.nnodes > 1``, else None."""
    if train.nnodes < 1:
        raise TrainingError(f"train.nnodes must be at least 1, got {train.nnodes}")
    if not 0 <= train.node_rank < train.nnodes:
        raise TrainingError(f"train.node_rank must be from 0 to train.nnodes - 1 = {train.nnodes - 1}, "
                            f"got {train.node_rank}")
    if train.nnodes == 1:
        return None
    endpoint = (train.rdzv_endpoint or "").strip()
    if not endpoint:
        raise TrainingError(f"train.nnodes={train.nnodes} needs train.rdzv_endpoint (--rdzv-endpoint): host:port "
                            "of node 0, the same on every node, e.g. node0.cluster:29400")
    host, sep, port = endpoint.rpartition(":")
    host = host.strip("[]")  # [::1]:29400
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise TrainingError(f"train.rdzv_endpoint {endpoint!r} must look like host:port with a port from 1 to "
                            "65535, e.g. node0.cluster:29400")
    return host, int(port)


def refuse_several_nodes(train, run_dir: Path) -> None:
    """Training on several machines is launched per node by `sttune train`, whose flags set the node
    settings of that launch; `sttune run`, the notebooks and the stage functions start one machine.
    With ``train.nnodes > 1``, refuse, naming the commands for each node and for this machine alone."""
    if train.nnodes <= 1:
        return
    run = f"--name {run_dir.name} --runs-dir {run_dir.parent}"
    endpoint = train.rdzv_endpoint or "HOST:PORT"
    raise TrainingError(
        f"train.nnodes={train.nnodes} (in {run_dir / 'config.yaml'} or the overrides): training on several machines "
        f"is started by `sttune train` on each of them, with its own --node-rank from 0 to {train.nnodes - 1}: "
        f"`sttune train {run} --nnodes {train.nnodes} --node-rank R --rdzv-endpoint {endpoint} [--resume]`. "
        f"To train on this machine alone: `sttune train {run} --nnodes 1 [--resume]` (--nproc N to keep the "
        f"global batch of {train.nproc * train.nnodes} processes), "
        f"then `sttune run --resume {run}` for the stages after training.")


def torchrun_command(run_dir: Path, config_path: Path, train, log_dir: Path, resume: bool) -> list[str]:
    """torchrun for this machine: standalone for one node, else a c10d rendezvous named after the run,
    hosted by node 0, with train.rdzv_timeout for joining and for reaching the store, and no
    restarts (a failed rank fails the run, as on one machine)."""
    if train.nnodes == 1:
        placement = ["--standalone", f"--nproc-per-node={train.nproc}"]
    else:
        timeout = train.rdzv_timeout
        placement = [f"--nnodes={train.nnodes}", f"--node-rank={train.node_rank}",
                     f"--nproc-per-node={train.nproc}", "--rdzv-backend=c10d",
                     f"--rdzv-endpoint={train.rdzv_endpoint.strip()}", f"--rdzv-id={run_dir.name}",
                     f"--rdzv-conf=join_timeout={timeout},read_timeout={timeout},"
                     f"is_host={int(train.node_rank == 0)}", "--max-restarts=0"]
    return [sys.executable, "-m", "torch.distributed.run", *placement, f"--log-dir={log_dir}", "--tee=3",
            "--module", WORKER_MODULE, "--config", str(config_path), *(["--resume"] if resume else []),
            str(run_dir)]


def where(train) -> str:
    """"2 processes" or "2 processes on each of 3 nodes (node 1)", for messages."""
    processes = f"{train.nproc} process{'es' if train.nproc > 1 else ''}"
    if train.nnodes == 1:
        return processes
    return f"{processes} on each of {train.nnodes} nodes (this is node {train.node_rank})"


def launch_training(run, config, resume: bool = False, work_dir: str | Path | None = None,
                    timeout_s: float | None = None) -> dict[str, Any]:
    """Train in ``config.train.nproc`` processes under torchrun; returns the summary that rank 0
    wrote to training.json. ``work_dir`` keeps the ranks' config and logs
    (``logs/<run id>/attempt_0/<rank>/{stdout,stderr}.log``); by default a temporary folder, removed
    after a success and kept (and named in the error) after a failure. Each rank's output is
    reported, prefixed with its rank, as it arrives. ``timeout_s`` stops every process after that long."""
    train = config.train
    nproc = train.nproc
    device = pick_device(config.model.device)
    check_devices(device, nproc)
    check_nodes(train)
    keep = work_dir is not None
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="sttune-torchrun-"))
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "config.yaml"
    save_config(config, config_path)  # the in-memory config (the panel's edits included), not the run's file
    log_dir = work / "logs"
    command = torchrun_command(run.root, config_path, train, log_dir, resume)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TQDM_MININTERVAL", "10")  # progress bars arrive line by line here: fewer of them
    # Rank 0's progress events come back as lines, passed on to this process's view (core/progress.py);
    # where a view here shows them (`sttune train`), the ranks' own bars would only repeat them.
    env.setdefault(progress.ENV, f"{RANK_STEP_INTERVAL_S:g}")
    if progress.shown_here():
        env.setdefault("TQDM_DISABLE", "1")
    log.info(f"training in {where(train)} on {device} ({ddp_backend(device)}) under torchrun; logs in {log_dir}")
    started = time.time()
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    exceptions: deque[str] = deque(maxlen=4)  # torchrun's own, e.g. why the rendezvous failed
    global_ranks: dict[str, str] = {}  # local rank -> global rank, of the ranks that failed
    # A session of its own, so an interrupt can stop torchrun and every rank together.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    timed_out = threading.Event()

    def stop_on_timeout():
        timed_out.set()
        _stop(process)

    timer = threading.Timer(timeout_s, stop_on_timeout) if timeout_s else None
    if timer:
        timer.start()
    try:
        for line in process.stdout:
            line = line.rstrip("\n")
            if progress.relay(line):
                continue
            tail.append(line)
            if EXCEPTION_LINE.match(line):
                exceptions.append(line)
            if failed_rank := FAILED_RANK_LINE.match(line):
                global_ranks[failed_rank[2]] = failed_rank[1]
            log.info(line)
        returncode = process.wait()
    except BaseException:
        _stop(process)
        raise
    finally:
        if timer:
            timer.cancel()
    if timed_out.is_set():
        raise DistributedTrainingError(f"training in {where(train)} did not finish within {timeout_s:g} s and "
                                       f"was stopped; the ranks' logs are in {log_dir}")
    if returncode != 0:
        if train.nnodes > 1 and not rank_dirs(log_dir):  # torchrun starts the ranks after the rendezvous
            raise DistributedTrainingError(rendezvous_failure_message(train, time.time() - started, list(exceptions)))
        raise DistributedTrainingError(failure_message(where(train), returncode, log_dir, list(tail),
                                                       global_ranks if train.nnodes > 1 else None))
    path = run.training_summary_path
    if train.node_rank != 0:
        # Global rank 0 may train on another node; node 0's launcher checks and records its summary.
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if not path.is_file() or path.stat().st_mtime < started:
        raise DistributedTrainingError(f"training in {where(train)} ended without rank 0 writing {path}; "
                                       f"the ranks' logs are in {log_dir}")
    summary = json.loads(path.read_text(encoding="utf-8"))
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _error_message(path: Path) -> str | None:
    """The exception torchrun's @record wrote for a rank ("TypeName: message")."""
    try:
        message = json.loads(path.read_text(encoding="utf-8")).get("message")
    except (OSError, ValueError):
        return None
    if isinstance(message, dict):
        message = message.get("message")
    return str(message) if message else None


def rank_dirs(log_dir: Path) -> list[Path]:
    """torchrun's log folder of each rank it started on this machine (named by local rank)."""
    return sorted((p for p in log_dir.glob("*/attempt_*/*") if p.is_dir() and p.name.isdigit()),
                  key=lambda p: int(p.name))


def rendezvous_failure_message(train, seconds: float, exceptions: list[str]) -> str:
    """Why this node started no rank: it could not reach the rendezvous, or the others never came.
    ``exceptions``: the exception lines of torchrun's output."""
    lines = [f"node {train.node_rank} of {train.nnodes} could not join the rendezvous at {train.rdzv_endpoint} "
             f"within train.rdzv_timeout={train.rdzv_timeout} s (gave up after {seconds:.0f} s)."]
    if train.node_rank == 0:
        lines.append(f"This node hosts the rendezvous: start `sttune train` on the other {train.nnodes - 1} node(s) "
                     f"with the same --nnodes {train.nnodes} and --rdzv-endpoint {train.rdzv_endpoint}.")
    else:
        lines.append(f"Check that node 0 runs `sttune train` with --node-rank 0 and --rdzv-endpoint "
                     f"{train.rdzv_endpoint}, that this is node 0's address, and that its port is open to this node.")
    lines += [f"torchrun: {line.strip()}" for line in dict.fromkeys(exceptions)]
    return "\n".join(lines)


def failure_message(processes: str, returncode: int, log_dir: Path, output_tail: list[str],
                    global_ranks: dict[str, str] | None = None) -> str:
    """Which rank failed, with what, and the tail of its stderr. ``processes``: e.g. "2 processes".
    ``global_ranks``: on one of several nodes, each failed local rank's global rank (torchrun's summary)."""
    started = rank_dirs(log_dir)
    failed = [p for p in started if (p / "error.json").is_file()]
    if not failed:  # killed by a signal (out of memory, say): whichever rank said something on stderr
        failed = [p for p in started if _tail(p / "stderr.log")]

    def rank_name(rank_dir: Path) -> str:
        if global_ranks is None:  # one node: the local rank is the rank
            return f"rank {rank_dir.name}"
        if rank_dir.name in global_ranks:
            return f"rank {global_ranks[rank_dir.name]} (local rank {rank_dir.name} on this node)"
        return f"local rank {rank_dir.name} on this node"

    lines = [f"training in {processes} failed (torchrun exit code {returncode})."]
    errors = []
    for rank_dir in failed:
        errors.append(error := _error_message(rank_dir / "error.json"))
        lines.append(f"{rank_name(rank_dir)} failed" + (f": {error}" if error else ""))
    if global_ranks is not None and errors and all(error and PEER_LOST.search(error) for error in errors):
        lines.append("This node's ranks lost a rank on another node: the failure began there, and the output of "
                     "`sttune train` on that node names its error.")
    if failed:
        first = failed[0]
        lines += [f"--- {rank_name(first)} stderr, last lines ---", _tail(first / "stderr.log") or "(empty)"]
    else:
        lines += ["--- torchrun output, last lines ---", *output_tail]
    lines.append(f"logs of every rank: {log_dir}")
    return "\n".join(lines)
