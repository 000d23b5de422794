"""Data-parallel training: the training stage in several processes under torchrun.

With ``train.nproc > 1``, ``training.train_model`` calls :func:`launch_training`, which starts

    python -m torch.distributed.run --standalone --nproc_per_node N -m sttune_helpers.distributed RUN_DIR

Each process (rank) runs ``training.train_model`` on its own share of the batches; the
sentence-transformers trainer (through accelerate) sets up DDP from torchrun's environment, with
gloo on CPU and nccl on CUDA (one GPU per rank). ``train.batch_size`` is per process, so the global
batch is batch_size x nproc x gradient_accumulation_steps. Rank 0 alone writes the model, the
checkpoints, training.json and the TensorBoard logs (the trainer adds each rank's RNG state to a
checkpoint, for resuming); the launcher then reads training.json back. A failing rank's error and the tail of its stderr come back as a
:class:`DistributedTrainingError`; torchrun stops the other ranks, so nothing hangs.

This module stays light at import (no torch) because the launching side needs none of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from .core.errors import SttuneError

# Lines of a failed rank's stderr shown in the error.
STDERR_TAIL_LINES = 30


class DistributedTrainingError(SttuneError, RuntimeError):
    """A training process failed (or torchrun could not start them)."""


# --- inside a rank -----------------------------------------------------------------------------


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def in_worker() -> bool:
    """True inside a process that torchrun (or accelerate launch) started as one of several."""
    return "LOCAL_RANK" in os.environ and world_size() > 1


def is_rank_zero() -> bool:
    return rank() == 0


def rank_device(device: str) -> str:
    """The device this rank trains on: its own GPU (cuda:LOCAL_RANK) when several share a machine."""
    if device == "cuda" and in_worker():
        return f"cuda:{local_rank()}"
    return device


def ddp_backend(device: str) -> str:
    if device.startswith("cuda"):
        return "nccl"
    if device == "cpu":
        return "gloo"
    raise ValueError(f"training in several processes (train.nproc > 1) runs on CUDA GPUs or on the CPU, "
                     f"not on {device!r} (model.device)")


def gather_from_ranks(value: Any) -> list[Any]:
    """``value`` from every rank, in rank order (a one-item list outside a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


class RankRecorder:
    """What one rank trained on: the texts its model encoded in training mode and a digest of its
    first training batch (the ranks of a data-parallel run see different batches)."""

    def __init__(self, model):
        self.forward_calls = 0
        self.texts_encoded = 0
        self.first_batch_digest: str | None = None
        self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs):
        if not module.training:  # encode() for validation and the collapse probe switches to eval mode
            return
        features = args[0] if args else kwargs.get("input")
        input_ids = features.get("input_ids") if isinstance(features, dict) else None
        if input_ids is None:
            return
        self.forward_calls += 1
        self.texts_encoded += int(input_ids.shape[0])
        if self.first_batch_digest is None:
            self.first_batch_digest = hashlib.sha1(input_ids.detach().cpu().numpy().tobytes()).hexdigest()[:16]

    def record(self, **extra: Any) -> dict[str, Any]:
        self._handle.remove()
        return {"rank": rank(), "forward_calls": self.forward_calls, "texts_encoded": self.texts_encoded,
                "first_batch_digest": self.first_batch_digest, **extra}


# --- the launcher ------------------------------------------------------------------------------


def check_devices(device: str, nproc: int) -> None:
    """Fail before launching when the machine cannot hold ``nproc`` ranks on ``device``."""
    if nproc < 1:
        raise ValueError(f"train.nproc must be at least 1, got {nproc}")
    ddp_backend(device)
    if device == "cuda":
        import torch

        available = torch.cuda.device_count()
        if nproc > available:
            raise ValueError(f"train.nproc={nproc} needs one GPU per process, but torch sees {available} CUDA "
                             "device(s); lower train.nproc or set CUDA_VISIBLE_DEVICES")


def torchrun_command(run_dir: Path, config_path: Path, nproc: int, log_dir: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            f"--log_dir={log_dir}", "--tee=3", "--module", "sttune_helpers.distributed",
            "--config", str(config_path), *(["--resume"] if resume else []), str(run_dir)]


def launch_training(run, config, resume: bool = False, work_dir: str | Path | None = None,
                    echo: Callable[[str], None] = print, timeout_s: float | None = None) -> dict[str, Any]:
    """Train in ``config.train.nproc`` processes under torchrun; returns the summary that rank 0
    wrote to training.json. ``work_dir`` keeps the ranks' config and logs
    (``logs/<run id>/attempt_0/<rank>/{stdout,stderr}.log``); by default a temporary folder, removed
    after a success and kept (and named in the error) after a failure. Each rank's output is echoed,
    prefixed with its rank, as it arrives. ``timeout_s`` stops every process after that long."""
    from .config import save_config
    from .core.hardware import pick_device

    nproc = config.train.nproc
    device = pick_device(config.model.device)
    check_devices(device, nproc)
    keep = work_dir is not None
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="sttune-torchrun-"))
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "config.yaml"
    save_config(config, config_path)  # the in-memory config (the panel's edits included), not the run's file
    log_dir = work / "logs"
    command = torchrun_command(run.root, config_path, nproc, log_dir, resume)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TQDM_MININTERVAL", "10")  # progress bars arrive line by line here: fewer of them
    echo(f"training in {nproc} processes on {device} ({ddp_backend(device)}) under torchrun; logs in {log_dir}")
    started = time.time()
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
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
            tail.append(line)
            echo(line)
        returncode = process.wait()
    except BaseException:
        _stop(process)
        raise
    finally:
        if timer:
            timer.cancel()
    if timed_out.is_set():
        raise DistributedTrainingError(f"training in {nproc} processes did not finish within {timeout_s:g} s and "
                                       f"was stopped; the ranks' logs are in {log_dir}")
    if returncode != 0:
        raise DistributedTrainingError(failure_message(nproc, returncode, log_dir, list(tail)))
    path = run.training_summary_path
    if not path.is_file() or path.stat().st_mtime < started:
        raise DistributedTrainingError(f"training in {nproc} processes ended without rank 0 writing {path}; "
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


def failure_message(nproc: int, returncode: int, log_dir: Path, output_tail: list[str]) -> str:
    """Which rank failed, with what, and the tail of its stderr."""
    rank_dirs = sorted((p for p in log_dir.glob("*/attempt_*/*") if p.is_dir() and p.name.isdigit()),
                       key=lambda p: int(p.name))
    failed = [p for p in rank_dirs if (p / "error.json").is_file()]
    if not failed:  # killed by a signal (out of memory, say): whichever rank said something on stderr
        failed = [p for p in rank_dirs if _tail(p / "stderr.log")]
    lines = [f"training in {nproc} processes failed (torchrun exit code {returncode})."]
    for rank_dir in failed:
        error = _error_message(rank_dir / "error.json")
        lines.append(f"rank {rank_dir.name} failed" + (f": {error}" if error else ""))
    if failed:
        first = failed[0]
        lines += [f"--- rank {first.name} stderr, last lines ---", _tail(first / "stderr.log") or "(empty)"]
    else:
        lines += ["--- torchrun output, last lines ---", *output_tail]
    lines.append(f"logs of every rank: {log_dir}")
    return "\n".join(lines)


# --- the entry point of each rank ----------------------------------------------------------------


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sttune_helpers.distributed",
                                     description="One rank of the training stage (started by torchrun).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", type=Path, help="the RunConfig YAML (default: the run's config.yaml)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    import torch.distributed as dist

    from .config import load_config
    from .rundir import RunDir
    from .training import train_model

    run = RunDir(args.run_dir.resolve())
    config = load_config(args.config) if args.config else run.load_config()
    if config.data.shape == "auto" and run.data_report_path.is_file():
        config.data.shape = json.loads(run.data_report_path.read_text(encoding="utf-8"))["shape"]
    config.train.nproc = world_size()
    try:
        train_model(run, config, resume=args.resume)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    sys.exit(record(worker_main)())
