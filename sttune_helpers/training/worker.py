"""The entry point of each rank of a data-parallel run, started by torchrun (see ``launch.py``):

    python -m sttune_helpers.training.worker [--config CONFIG] [--resume] RUN_DIR

It loads the config and calls ``train_model`` in this process. Only this module imports both the
rank's environment and ``train.py``; the package ``__init__`` does not import it, so running it with
``-m`` loads it once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import load_config
from ..core.reporting import show_on_console
from ..rundir import RunDir
from .ranks import world_size
from .train import train_model


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sttune_helpers.training.worker",
                                     description="One rank of the training stage (started by torchrun).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", type=Path, help="the RunConfig YAML (default: the run's config.yaml)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    import torch.distributed as dist

    show_on_console()  # the stage's progress on stdout, which torchrun hands to the launcher
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
